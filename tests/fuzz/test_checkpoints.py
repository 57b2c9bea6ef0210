"""Fuzzing checkpoint files: dictionaries of random structure (nested containers, tensors of any
dtype and shape, odd keys) saved with ``torch.save``, and truncated/garbled bytes of real ones.

They go through both readers: ``snl_video.weights`` (``read_checkpoint`` = safe read + format
detection, then ``convert_state``) for foreign weights, and ``snl_video.engine.checkpoint``
(``load_training_checkpoint``, ``describe_checkpoint``) for training checkpoints. Property: a result,
or the project's one-line error.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import torch
from hypothesis import example, given
from hypothesis import strategies as st

from snl_video.engine.checkpoint import describe_checkpoint, load_training_checkpoint
from snl_video.weights import convert_state, read_checkpoint

from .errors import only_project_errors

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]


@st.composite
def tensors(draw) -> torch.Tensor:
    shape = draw(st.lists(st.integers(0, 3), max_size=5))
    dtype = draw(st.sampled_from(_DTYPES))
    return torch.zeros(shape, dtype=dtype) if dtype == torch.bool else torch.ones(shape).to(dtype)


# Keys a checkpoint really has (so detection gets past the first test) and arbitrary ones.
keys = st.one_of(
    st.sampled_from(["model", "state_dict", "model_state", "module", "params", "blobs", "epoch", "optimizer",
                     "snl_video", "config", "class_names", "normalization", "fc.weight", "fc.bias", "conv1.weight",
                     "module.fc.weight", "backbone.layer1.0.conv1.weight", "head.proj.weight", "blobs.conv1_w",
                     "layer4.2.bn3.running_var", "model_state.fc.weight", "arch", "format", "input_spec"]),
    st.text(max_size=10),
    st.integers(-2, 2),
)
leaves = st.one_of(tensors(), st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8),
                   st.binary(max_size=8))
structures = st.recursive(leaves, lambda inner: st.one_of(
    st.dictionaries(keys, inner, max_size=4), st.lists(inner, max_size=3), st.tuples(inner, inner)), max_leaves=12)
checkpoints = st.one_of(st.dictionaries(keys, structures, max_size=5), structures)


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _read_both_ways(path: Path) -> None:
    with only_project_errors():
        convert_state(read_checkpoint(path))
    with only_project_errors():
        state = load_training_checkpoint(path)
        describe_checkpoint(state, path=path)


@given(obj=checkpoints)
def test_random_structures(obj):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pth"
        path.write_bytes(_saved(obj))
        _read_both_ways(path)


_REAL = _saved({"model": {"conv1.weight": torch.ones(4, 3, 1, 1, 1), "fc.weight": torch.ones(5, 4),
                          "fc.bias": torch.zeros(5)}, "epoch": 3})


@given(cut=st.integers(0, len(_REAL) - 1), flips=st.lists(st.tuples(st.integers(0, len(_REAL) - 1),
                                                                       st.integers(1, 255)), max_size=6))
@example(cut=0, flips=[(0, 1)])  # the zip magic garbled: a legacy pickle whose unpickler hit IndexError
def test_truncated_and_garbled_files(cut, flips):
    data = bytearray(_REAL)
    for position, mask in flips:
        data[position] ^= mask
    if cut:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.pt"
        path.write_bytes(bytes(data))
        _read_both_ways(path)
