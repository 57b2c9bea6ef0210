"""The spectrum inspector: eigenvalues of each block's affinity and its frequency response."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from snl_video.engine.spectrum import affinity_eigenvalues, compute_spectra, write_spectrum_report
from snl_video.nonlocal_blocks import build_nonlocal

from ..helpers import write_random_video
from ..nonlocal_blocks.reference import randomise


class TinyNet(nn.Module):
    """A stem and two placed blocks, as a model with ``nonlocal_blocks`` looks to the inspector."""

    def __init__(self, kinds):
        super().__init__()
        self.stem = nn.Conv3d(3, 16, kernel_size=3, stride=(1, 2, 2), padding=1)
        self.nonlocal_blocks = nn.ModuleDict({f"block{i}_{k}": build_nonlocal(k, 16, inter_channels=4, **o)
                                              for i, (k, o) in enumerate(kinds)})

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for block in self.nonlocal_blocks.values():
            x = block(x)
        return x


def test_snl_family_spectra_are_real_in_the_unit_interval_with_top_one(tmp_path):
    torch.manual_seed(0)
    kinds = [("snl", {"impl": "linear"}), ("snl", {"impl": "dense", "filter": "cayley"}), ("snl_a1", {}),
             ("nl", {}), ("snl", {"filter": "arma"}), ("cgnl", {})]
    model = TinyNet(kinds)
    clip = torch.randn(1, 3, 4, 16, 20)
    results = compute_spectra(model, clip)
    assert [r["name"] for r in results] == list(model.nonlocal_blocks)
    cgnl = results.pop()
    assert cgnl["eigenvalues"] is None and "position, channel" in cgnl["eigen_note"]
    for entry in results:
        real, imag = entry["eigenvalues"]["real"], entry["eigenvalues"]["imag"]
        assert len(real) == len(imag) == entry["num_nodes"] == 4 * 8 * 10
        if entry["kind"] == "nl":
            assert not entry["symmetric"] and np.abs(imag).max() > 1e-6  # softmax: complex (Remark 2)
            assert np.abs(real + 1j * imag).max() <= 1 + 1e-9  # row-stochastic: spectral radius 1
            continue
        assert entry["symmetric"] and np.abs(imag).max() <= 1e-6
        assert real.min() >= -1 - 1e-6 and real.max() <= 1 + 1e-6
        assert abs(real.max() - 1.0) < 1e-6
    responses = {r["name"]: r["response"] for r in results}
    assert responses["block4_snl"] is None  # ARMA with a ReLU inside: no frequency response
    gains = np.asarray(responses["block0_snl"]["gain_per_output_channel"])
    assert gains.shape == (16, 101)
    paths = write_spectrum_report(results + [cgnl], tmp_path, extra={"video": "x"})
    doc = json.loads(paths["json"].read_text())
    assert [b["name"] for b in doc["blocks"]] == list(model.nonlocal_blocks)
    assert set(doc["blocks"][0]) >= {"name", "kind", "num_nodes", "eigenvalues"}
    assert len(doc["blocks"][0]["eigenvalues"]["real"]) == 320
    for name in model.nonlocal_blocks:
        assert paths[name].stat().st_size > 1000


def test_linear_path_eigenvalues_equal_dense_eigvalsh():
    torch.manual_seed(1)
    dense = build_nonlocal("snl", 16, inter_channels=6, impl="dense").double()
    linear = build_nonlocal("snl", 16, inter_channels=6, impl="linear").double()
    linear.load_state_dict(dense.state_dict())
    x = torch.randn(1, 16, 3, 4, 5, dtype=torch.float64)
    x[:, :, 0, 0, 0] = 0  # an isolated node
    op_dense, _ = dense.filter_input(x)
    op_linear, _ = linear.filter_input(x)
    got = affinity_eigenvalues(op_linear)
    assert "12x12" in got["method"]  # rank 2·C_s, never N×N
    want = torch.linalg.eigvalsh(op_dense.dense()[0]).detach().numpy()
    assert len(got["real"]) == 60
    np.testing.assert_allclose(np.sort(got["real"]), want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(affinity_eigenvalues(op_dense)["real"], want, rtol=0, atol=1e-10)


RESPONSE_CASES = [
    ("snl", {"order": 3, "basis": "chebyshev"}),
    ("snl", {"order": 2}),
    ("snl", {"filter": "cayley", "order": 2, "zoom_init": 0.8}),
    ("snl", {"filter": "cayley_official"}),
    ("snl", {"filter": "arma", "solver": "exact", "feedback": "diagonal", "activation_inner": "none", "stacks": 2}),
    ("snl", {"filter": "arma", "layers": 2, "activation_inner": "none"}),
    ("gsnl", {"affinity": "spectral"}),
]


@pytest.mark.parametrize("kind,options", RESPONSE_CASES, ids=[str(o) for _, o in RESPONSE_CASES])
def test_frequency_response_equals_the_blocks_action_on_an_eigenvector(kind, options):
    torch.manual_seed(2)
    block = randomise(build_nonlocal(kind, 10, inter_channels=4, impl="dense", **options).double())
    x = torch.randn(1, 10, 2, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        op, _ = block.filter_input(x)
    lam, vecs = torch.linalg.eigh(op.dense()[0])
    c = torch.randn(4, dtype=torch.float64)
    for i in (0, 11, 23):  # low, middle and top (λ = 1) of the spectrum
        v = vecs[:, i]
        z = (v[:, None] * c[None, :]).unsqueeze(0)  # Z = v cᵀ, (1, N, C_s)
        with torch.no_grad():
            signals = block.filter(op, z)
        out = sum(s @ getattr(block, name).weight.flatten(1).T for name, s in signals.items())[0]  # (N, C)
        h = block.frequency_response(lam[i:i + 1])[0]  # (C, C_s)
        torch.testing.assert_close(out, v[:, None] * (h @ c)[None, :], rtol=1e-9, atol=1e-10)


def test_cli_spectrum_on_a_video(tmp_path):
    from snl_video.cli import main
    from snl_video.data.synthetic import encode_avi

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(12, 72, 96, 3), dtype=np.uint8)
    video = tmp_path / "clip.avi"
    encode_avi(frames, video)
    out = tmp_path / "spectrum"
    spec = '{"kind": "snl", "options": {"impl": "linear"}, "positions": {"layer3": [0]}}'
    assert main(["spectrum", str(video), "--model", "r3d10", "--nonlocal", spec, "--frames", "8", "--size", "64",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    (block,) = doc["blocks"]
    assert block["kind"] == "snl" and block["num_nodes"] == 1 * 4 * 4  # res4 of 8x64x64: 1x4x4
    assert len(block["eigenvalues"]["real"]) == block["num_nodes"]
    assert abs(max(block["eigenvalues"]["real"]) - 1) < 1e-6
    assert (out / f"spectrum_{block['name']}.png").is_file()
    assert main(["spectrum", str(video), "--model", "r3d10", "--out", str(out)]) == 2  # no blocks: a clear error


def test_load_clip_takes_a_container_without_a_frame_count(tmp_path):
    # .webm declares no frame count: the clip is the centre of the frames counted by decoding,
    # as predict / explain take it (before: "the container does not declare a frame count")
    from snl_video.data.decoding import read_frames
    from snl_video.data.transforms import eval_transform
    from snl_video.engine.spectrum import load_clip

    path = tmp_path / "v.webm"
    write_random_video(path, num_frames=20, codec="libvpx", seed=0)
    norm = {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    clip = load_clip(path, num_frames=8, size=32, normalization=norm)
    expected = eval_transform(norm, size=32, crops=1)(read_frames(path, list(range(6, 14)))).unsqueeze(0)
    assert clip.shape == (1, 3, 8, 32, 32)
    torch.testing.assert_close(clip, expected)


@pytest.fixture
def trained_snl(tiny_snl_checkpoint):
    """A self-describing checkpoint of the tiny recipe (one SNL block) and one of its videos."""
    return tiny_snl_checkpoint


def _expected_spectra(cfg, model, video):
    """Independently: the recipe's centre clip and normalisation, fed to the same tensors; the
    frames first resized as ``prepare`` stored the training frames (240x320 -> short side 48)."""
    from snl_video.data.decoding import probe_video, read_frames
    from snl_video.data.sampling import center_clip
    from snl_video.data.transforms import NormalizationSpec, eval_transform

    d = cfg.data
    indices = center_clip(probe_video(video).declared_frames, num_frames=d.num_frames, stride=d.sampling_stride)[0]
    frames = read_frames(video, indices).permute(0, 3, 1, 2)
    assert frames.shape[-2:] == (240, 320)
    frames = torch.nn.functional.interpolate(frames, size=(48, 64), mode="bilinear", antialias=True).permute(0, 2, 3, 1)
    x = eval_transform(NormalizationSpec(tuple(d.mean), tuple(d.std)), size=d.crop_size)(frames)
    return compute_spectra(model, x[None])


@pytest.mark.parametrize("flag", ["--checkpoint", "--weights"])
def test_cli_spectrum_of_a_trained_model_needs_no_config(trained_snl, tmp_path, flag):
    from snl_video.cli import main

    cfg, ckpt, video, model = trained_snl
    out = tmp_path / "s"
    assert main(["spectrum", str(video), flag, str(ckpt), "--out", str(out)]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc[flag.removeprefix("--")] == str(ckpt) and "config" not in doc
    (block,) = doc["blocks"]
    (expected,) = _expected_spectra(cfg, model, video)
    assert block["name"] == expected["name"] and block["num_nodes"] == expected["num_nodes"]
    # spectrum.json rounds to 8 decimals: up to 5e-9 of rounding, plus float32 noise
    np.testing.assert_allclose(block["eigenvalues"]["real"], expected["eigenvalues"]["real"], rtol=1e-6, atol=6e-9)


def test_cli_spectrum_model_sources_are_exclusive(trained_snl, tmp_path, capsys):
    from snl_video.cli import main

    cfg, ckpt, video, _ = trained_snl
    assert main(["spectrum", str(video), "--checkpoint", str(ckpt), "--model", "r3d10", "--out", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["spectrum", str(video), "--out", str(tmp_path)]) == 2
    assert "--checkpoint CKPT or --weights" in capsys.readouterr().err
