"""export: ONNX and torch.export programs give PyTorch's logits (dynamic batch), every block kind
traces in eval mode, and bad requests are one-line errors."""

from __future__ import annotations

import json
import logging
import stat

import numpy as np
import pytest
import torch
from torch import nn

from snl_video.cli import main
from snl_video.inputspec import InputSpec
from snl_video.engine.builders import build_model_from_config, normalization_from_config
from snl_video.engine.checkpoint import checkpoint_metadata, save_checkpoint
from snl_video.engine.export import export_model
from snl_video.engine.loading import InferenceModel
from snl_video.errors import InvalidValueError
from snl_video.nonlocal_blocks import build_nonlocal, list_nonlocal_kinds

from ..helpers import tiny_config


# Transform-domain kinds at the tiny 4x8x8 clip: BAT needs maps that are multiples of s
# (and T of ts), and starts as the identity only with zero_init.
_TINY_OPTIONS = {"bat": {"s": 4, "k": 2, "tk": 2, "ts": 2, "zero_init": True}}


def _output_norm(block: nn.Module) -> nn.Module:
    """The norm whose zero (or free) initialisation decides the block's output."""
    if hasattr(block, "out_norm"):
        return block.out_norm
    if block.kind == "bat":
        return block.conv2[1]
    return block.bn  # srb: the spectral BatchNorm


class _TinyNet(nn.Module):
    """A conv, one non-local block of ``kind`` (non-identity), pooling and a head: a block-centred net
    that exports in seconds. ``options`` are the block's (impl, filter, ...)."""

    def __init__(self, kind: str, **options) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 8, 3, padding=1)
        self.block = build_nonlocal(kind, 8, **{**_TINY_OPTIONS.get(kind, {}), **options})
        self.fc = nn.Linear(8, 3)
        # Move every block off its identity start so the comparisons below are not vacuous.
        nn.init.normal_(_output_norm(self.block).weight)
        nn.init.normal_(_output_norm(self.block).bias)
        if kind == "srb":
            nn.init.constant_(self.block.alpha, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block(self.stem(x)).mean((2, 3, 4)))


def _loaded(kind: str, **options) -> InferenceModel:
    torch.manual_seed(0)
    spec = InputSpec(num_frames=4, sampling_stride=1, crop_size=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    return InferenceModel(_TinyNet(kind, **options).eval(), "tiny", ["a", "b", "c"], spec, num_clips=1, num_crops=1,
                          reduce="mean_prob", source="test")


@pytest.mark.parametrize("kind", list_nonlocal_kinds())
def test_every_kind_traces_in_eval_mode_with_the_same_values(kind):
    net = _TinyNet(kind)
    x = torch.randn(2, 3, 4, 8, 8)
    net.eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, x)
        np.testing.assert_allclose(traced(x[:1]).numpy(), net(x[:1]).numpy(), rtol=1e-5, atol=1e-6)
    # training keeps the open-at-zero ReLU: the zero-initialised norm of a fresh block gets a gradient
    fresh = build_nonlocal(kind, 8, **_TINY_OPTIONS.get(kind, {})).train()
    fresh(torch.randn(2, 8, 2, 4, 4)).sum().backward()
    # srb leaves the identity through alpha (its spectral BN sits behind alpha = 0)
    leaving = fresh.alpha if kind == "srb" else _output_norm(fresh).bias
    assert leaving.grad is not None and leaving.grad.abs().sum() > 0



def test_the_preprocessing_record_describes_what_the_toolkit_feeds(tmp_path):
    """The words and the ``input_spec`` of ``.preprocessing.json`` agree with
    :meth:`InferenceModel.transform`: a model trained on prepared frames gets their resize first,
    and a size other than the model's own drops a published resize (a 182 short side cannot
    give a 256 crop). Before, both were left out, and a deployment following the record fed
    other pixels than predict does."""
    loaded = _loaded("nl")
    loaded.frame_short_side = 44
    loaded.input_spec = loaded.input_spec.replace(resize=(10, 14))
    record = json.loads(export_model(loaded, tmp_path / "m.pt2", format="pt2").preprocessing.read_text())
    assert record["preprocessing"][1].startswith("resize the short side to 44")
    # the spec's published resize is what the toolkit feeds (input_transform honours it)
    assert record["preprocessing"][3].startswith("resize to 10x14 (height x width, antialiased), centre-crop 8x8")
    assert record["input_spec"]["resize"] == [10, 14]  # the model's own size: its spec as it is
    record = json.loads(export_model(loaded, tmp_path / "s.pt2", format="pt2", size=12).preprocessing.read_text())
    assert record["input_spec"]["crop_size"] == 12 and record["input_spec"]["resize"] is None
    assert "resize the short side to 12 (antialiased), centre-crop 12x12" in record["preprocessing"]

@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_export_verifies_and_has_a_dynamic_batch(fmt, tmp_path):
    loaded = _loaded("snl")
    result = export_model(loaded, tmp_path / f"m.{fmt}", format=fmt, verify=True)
    assert result.relative_error is not None and result.relative_error <= 1e-4
    spec = json.loads(result.preprocessing.read_text())
    assert spec["input"]["shape"] == ["batch", 3, 4, 8, 8] and spec["mean"] == [0.5] * 3 and spec["class_names"] == ["a", "b", "c"]
    clip = torch.randn(1, 3, 4, 8, 8)  # batch 1: neither the example's 2 nor the verification's 3
    with torch.no_grad():
        expected = loaded.model(clip)
        if fmt == "pt2":
            got = torch.export.load(str(result.path)).module()(clip)
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
            assert session.get_inputs()[0].name == "clip"
            assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].shape[0] == "batch"
            import onnx

            graph = onnx.load(str(result.path)).graph
            assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
            got = torch.from_numpy(session.run(None, {"clip": clip.numpy()})[0])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob(".m.*"))  # no leftovers
    from snl_video.fileio import current_umask as _umask

    assert stat.S_IMODE(result.path.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's private 0600


# The export matrix: every kind × each affinity path it has (impl dense / linear) × for snl each
# graph filter (and the rational filters' second solver). A kind without those options is one row.
_IMPL_KINDS = {"nl_dot", "a2", "snl_a1"}
_SNL_FILTERS = {
    "chebyshev": {"filter": "chebyshev"},
    "cayley": {"filter": "cayley"},
    "cayley_jacobi": {"filter": "cayley", "solver": "jacobi", "jacobi_iters": 3},
    "cayley_official": {"filter": "cayley_official"},
    "arma": {"filter": "arma"},
    "arma_exact": {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none"},
}


def _export_rows() -> list:
    rows = []
    for kind in list_nonlocal_kinds():
        if kind == "snl":
            rows += [pytest.param(kind, {"impl": impl, **opts}, id=f"snl-{impl}-{name}")
                     for name, opts in _SNL_FILTERS.items() for impl in ("dense", "linear")]
        elif kind in _IMPL_KINDS:
            rows += [pytest.param(kind, {"impl": impl}, id=f"{kind}-{impl}") for impl in ("dense", "linear")]
        elif kind == "gsnl":
            rows += [pytest.param(kind, {}, id="gsnl-softmax")]
            rows += [pytest.param(kind, {"affinity": "spectral", "impl": impl}, id=f"gsnl-spectral-{impl}")
                     for impl in ("dense", "linear")]
        else:
            rows.append(pytest.param(kind, {}, id=kind))
    return rows


# The default suite: one row per kind, on the path most likely to break (dense, where a kind has
# one; for snl the dense Cayley filter, the paper-size r3d50 Cayley recipe's path), in pt2; the
# ONNX format of that snl row too (its solves need the ONNX translation of engine/onnx_ops.py).
_DEFAULT_ROWS = [
    pytest.param(kind, ({"impl": "dense", "filter": "cayley"} if kind == "snl" else
                        {"impl": "dense"} if kind in _IMPL_KINDS else {}), "pt2", id=f"{kind}-pt2")
    for kind in list_nonlocal_kinds()
] + [pytest.param("snl", {"impl": "dense", "filter": "cayley"}, "onnx", id="snl-dense-cayley-onnx")]


@pytest.mark.parametrize(("kind", "options", "fmt"), _DEFAULT_ROWS)
def test_one_export_per_kind_verifies(kind, options, fmt, tmp_path):
    result = export_model(_loaded(kind, **options), tmp_path / f"m.{fmt}", format=fmt, verify=True)
    assert result.relative_error is not None and result.relative_error <= 1e-4


def test_the_matrix_covers_every_kind_path_and_filter():
    ids = {row.id for row in _export_rows()}
    assert {row.values[0] for row in _export_rows()} == set(list_nonlocal_kinds())
    assert {f"snl-{impl}-{name}" for impl in ("dense", "linear")
            for name in ("chebyshev", "cayley", "cayley_official", "arma")} <= ids
    assert {f"{kind}-{impl}" for kind in _IMPL_KINDS for impl in ("dense", "linear")} <= ids


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize(("kind", "options"), _export_rows())
def test_every_kind_path_and_filter_exports_and_verifies(kind, options, fmt, tmp_path):
    result = export_model(_loaded(kind, **options), tmp_path / f"m.{fmt}", format=fmt, verify=True)
    assert result.relative_error is not None and result.relative_error <= 1e-4


def test_export_cli_from_a_checkpoint_and_bad_requests(tiny_prepared, tmp_path, capsys):
    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    model = build_model_from_config(cfg)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(
        cfg, class_names=None, normalization=normalization_from_config(cfg))}, tmp_path / "c.pt")
    assert main(["export", "--checkpoint", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "m.pt2"),
                 "--verify"]) == 0
    out = capsys.readouterr().out
    assert "input clip (batch, 3x6x40x40)" in out and "verified" in out
    # the ONNX exporter's optimiser passes log at INFO: kept out of the user's log unless --verbose
    assert all(logging.getLogger(n).getEffectiveLevel() == logging.WARNING for n in ("onnxscript", "onnx_ir"))
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    clip = torch.randn(3, 3, 6, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(program(clip), model.eval()(clip), rtol=1e-4, atol=1e-5)
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.pt2")]) == 2
    assert "'.onnx' file" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(ckpt), "--format", "pt2", "--output-file", str(tmp_path / "x.pt2"),
                 "--crop-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--crop-size must be a positive number of pixels, got 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt2").exists()


def test_unknown_input_size_needs_frames_and_size(tmp_path):
    loaded = _loaded("nl")
    loaded.input_known = False
    with pytest.raises(ValueError, match="input size of test is unknown.*--num-frames T --crop-size S"):
        export_model(loaded, tmp_path / "m.pt2", format="pt2")
    assert export_model(loaded, tmp_path / "m.pt2", format="pt2", num_frames=2, size=6).input_shape[1:] == (3, 2, 6, 6)


_NATIVE_BF16 = __import__("snl_video.engine.precision", fromlist=["x"]).cpu_has_native_bf16()
needs_native_bf16 = pytest.mark.skipif(not _NATIVE_BF16, reason="this CPU has no native bf16 (refused there: "
                                                                  "test_bf16_verification_is_refused_where_emulated)")


@needs_native_bf16
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize("kind", ["snl", "nl"])
def test_bf16_verification_passes_within_the_bf16_limit(kind, fmt, tmp_path):
    from snl_video.engine.export import VERIFY_TOLERANCES

    loaded = _loaded(kind)
    result = export_model(loaded, tmp_path / f"m.{fmt}", format=fmt, verify=True, precision="bf16")
    assert result.precision == "bf16" and result.tolerance == VERIFY_TOLERANCES["bf16"] == 3e-2
    # the reference really ran in bf16 (an fp32 reference gives <= 1e-4, here 0 for pt2), and within the limit
    assert 1e-4 < result.relative_error <= 3e-2
    # independent: the float32 program against the model under bf16 autocast, by hand
    clip = torch.randn(3, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = loaded.model(clip.contiguous(memory_format=torch.channels_last_3d)).float()
    if fmt == "pt2":
        with torch.no_grad():
            program = torch.export.load(str(result.path)).module()(clip)
        assert float((program - reference).abs().max() / reference.abs().max()) == pytest.approx(
            result.relative_error, rel=1e-3)


def _tamper_after_writing(monkeypatch: pytest.MonkeyPatch, scale: float) -> None:
    """Make export change the program's head weights on disk right after writing it (before --verify runs)."""
    from snl_video.engine import export as export_module

    write = export_module.atomic_output

    def write_then_tamper(path, writer):
        write(path, writer)
        program = torch.export.load(str(path))  # its own copy of the weights, read from the file
        (key,) = [k for k in program.state_dict if k.endswith("fc.weight")]
        with torch.no_grad():
            program.state_dict[key].mul_(scale)
        torch.export.save(program, str(path))

    monkeypatch.setattr(export_module, "atomic_output", write_then_tamper)


@needs_native_bf16
def test_bf16_verification_fails_with_a_clear_line_on_a_tampered_program(tmp_path, monkeypatch):
    loaded = _loaded("snl")
    _tamper_after_writing(monkeypatch, 1.25)  # every logit 25 % off: far outside bf16's rounding
    with pytest.raises(InvalidValueError) as failure:
        export_model(loaded, tmp_path / "m.pt2", format="pt2", verify=True, precision="bf16")
    message = str(failure.value)
    assert "verification failed" in message and "PyTorch (bf16)" in message and "limit 0.03" in message
    assert "does not compute the model" in message and "changed after it was written" in message
    assert (tmp_path / "m.pt2").is_file()  # kept for inspection
    # the untampered export of the same model passes
    monkeypatch.undo()
    assert export_model(loaded, tmp_path / "ok.pt2", format="pt2", verify=True, precision="bf16").relative_error <= 3e-2


@needs_native_bf16
def test_bf16_verification_says_when_bf16_itself_is_the_problem(tmp_path, monkeypatch):
    """A correct program that bf16 cannot confirm (here: a limit no bf16 forward meets) is told apart from a wrong one."""
    from snl_video.engine import export as export_module

    monkeypatch.setitem(export_module.VERIFY_TOLERANCES, "bf16", 1e-9)
    with pytest.raises(InvalidValueError, match=r"computes the float32 model \(relative error 0\.00e\+00\).*"
                                                r"verify with --precision fp32"):
        export_model(_loaded("snl"), tmp_path / "m.pt2", format="pt2", verify=True, precision="bf16")


def test_bf16_verification_is_refused_where_emulated_or_without_verify(tmp_path, monkeypatch):
    from snl_video.engine import precision

    with pytest.raises(InvalidValueError, match="--precision bf16 is the precision --verify checks.*add --verify"):
        export_model(_loaded("snl"), tmp_path / "a.pt2", format="pt2", precision="bf16")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(InvalidValueError, match="no native bf16.*--precision fp32"):
        export_model(_loaded("snl"), tmp_path / "b.pt2", format="pt2", verify=True, precision="bf16")
    assert not list(tmp_path.iterdir())  # both refused before anything was written


@needs_native_bf16
def test_export_cli_verifies_in_bf16(tiny_prepared, tmp_path, capsys):
    cfg = tiny_config(tiny_prepared, tmp_path / "run")
    model = build_model_from_config(cfg)
    ckpt = save_checkpoint({"model": model.state_dict(), "epoch": 1, **checkpoint_metadata(
        cfg, class_names=None, normalization=normalization_from_config(cfg))}, tmp_path / "c.pt")
    assert main(["export", "--checkpoint", str(ckpt), "--format", "pt2", "--out", str(tmp_path / "m.pt2"),
                 "--verify", "--precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "verified against PyTorch in bf16" in out and "(limit 0.03)" in out
