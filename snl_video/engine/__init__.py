"""The training and evaluation engine: metrics now; the train/eval loops, checkpoints and
distributed helpers build on them. Import submodules directly (``snl_video.engine.metrics``)."""
