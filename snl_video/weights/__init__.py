"""Pretrained weights: read checkpoints safely, recognise their format, inflate 2-D weights,
load them into a model with a report, and the registry of known Kinetics checkpoints.

This half is independent of :mod:`snl_video.models`; the per-format key converters that
map foreign names onto snl_video's models register themselves through
:func:`snl_video.weights.formats.register_converter`.
"""
