"""FFC backbones: structure, sizes and errors, the Fourier unit, autocast, and the released
ImageNet checkpoints inflated into ffc_c2d_r50 / ffc_i3d_r50 (parity with a 2-D restatement)."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from torch import nn

from snl_video.models import build_model
from snl_video.models.ffc import FFC3d, FFCInputSizeError, FourierUnit
from snl_video.weights import WeightsLoadError, detect_format, read_checkpoint_file

from ..helpers import randomize_batchnorm
from .ffc_reference import RefFFCResNet50


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize(
    ("options", "expected"),
    [({}, 24_873_344), ({"lfu": True}, 25_492_384), ({"ratio_global": 0.5}, 26_488_112)],
)
def test_ffc_c2d_parameter_counts_match_the_released_resnet50_with_a_400_way_head(options, expected):
    # The released 2-D FFC-ResNet-50 with a 400-way head (spectral_family.md §8: 24.87 M at
    # α = 0.25, 25.49 M with LFU, 26.49 M at α = 0.5; FFC-C2D in the paper: 24.9 M).
    with torch.device("meta"):
        model = build_model("ffc_c2d_r50", num_classes=400, **options)
    assert _params(model) == expected
    with torch.device("meta"):
        ref = RefFFCResNet50(ratio=options.get("ratio_global", 0.25), lfu=options.get("lfu", False), num_classes=400)
    assert _params(ref) == expected


@pytest.mark.parametrize("kernel", [1, 3])
def test_one_ffc_layer_has_the_papers_parameter_count(kernel):
    # (1 − α²)·C1·C2·K² + α²·C2·(C1/2 + 3·C2/2) for an α → α layer without LFU (talk, Table "FFC").
    c, a = 256, 0.25
    layer = FFC3d(c, c, (1, kernel, kernel), ratio_gin=a, ratio_gout=a)
    bn = sum(p.numel() for m in layer.modules() if isinstance(m, nn.BatchNorm3d) for p in m.parameters())
    expected = (1 - a * a) * c * c * kernel**2 + a * a * c * (c / 2 + 3 * c / 2)
    assert _params(layer) - bn == expected


def test_channel_split_and_zero_channel_paths_are_skipped():
    model = build_model("ffc_c2d_r50", num_classes=10)
    keys = set(model.state_dict())
    # res2's first block: no global input, so no g→l / g→g paths; its outputs are split 192/64.
    assert "layer1.0.conv1.ffc.convl2g.weight" in keys
    assert not any(k.startswith(("layer1.0.conv1.ffc.convg2l", "layer1.0.conv1.ffc.convg2g")) for k in keys)
    assert model.layer1[0].conv1.ffc.out_channels == (48, 16)
    assert model.layer2[0].conv1.ffc.in_channels == (192, 64)
    # res5: global in, no global out; later blocks purely local; no shortcut conv after the first block.
    assert model.layer4[0].conv1.ffc.in_channels == (768, 256)
    assert not any(k.startswith("layer4.0.conv1.ffc.convl2g") or k.startswith("layer4.0.conv1.bn_g") for k in keys)
    assert not any(k.startswith(("layer4.1.downsample", "layer1.1.downsample")) for k in keys)
    assert not any(".convg2" in k for k in keys if k.startswith(("layer4.1.", "layer4.2.")))
    # One spectral transform per FFC of res2-res4 with a global input: 40 in FFC-ResNet-50.
    spectral = {k.split(".ffc.")[0] for k in keys if ".convg2g." in k}
    assert len(spectral) == 40
    # res2: block 0 has them in conv2 and conv3 only (its conv1 and shortcut take no global input)
    assert sum(1 for s in spectral if s.startswith("layer1.")) == 2 + 3 + 3


@pytest.mark.parametrize("name", ["ffc_c2d_r50", "ffc_i3d_r50"])
@pytest.mark.parametrize("frames", [2, 4])
def test_odd_res4_maps_work_without_lfu_and_keep_their_size(name, frames):
    # 112² input: res4 (layer3) is 7×7, res5 4×4.
    model = build_model(name, num_classes=5).eval()
    seen = {}
    model.layer3[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("res4", tuple(o[0].shape)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, frames, 112, 112))
    assert out.shape == (1, 5)
    assert seen["res4"] == (1, 768, frames // 2, 7, 7)


def test_lfu_on_an_odd_map_is_a_clear_error():
    model = build_model("ffc_c2d_r50", num_classes=5, lfu=True).eval()
    with pytest.raises(FFCInputSizeError, match=r"lfu=True .* 7x7 .*lfu=False.*multiples of 32"):
        with torch.no_grad():
            model(torch.randn(1, 3, 2, 112, 112))


def test_sizes_where_the_global_pooling_and_strided_conv_disagree_are_a_clear_error():
    model = build_model("ffc_c2d_r50", num_classes=5).eval()
    # 120² input: res3 is 15×15 and res4's first block halves it (avg-pool 7, strided conv 8).
    with pytest.raises(FFCInputSizeError, match=r"H = 15 .*stride 2.*give 7 .*conv 8.*112, 128, 160, 224"):
        with torch.no_grad():
            model(torch.randn(1, 3, 2, 120, 120))


def test_ffc_r3d50_runs_on_the_hara_trunk():
    model = build_model("ffc_r3d50", num_classes=7).eval()
    assert model.layer2[0].conv2.ffc.convg2g.stride == (2, 2, 2)  # Hara's temporal stride: pooled by 2 in t too
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 64, 64)).shape == (1, 7)


def test_invalid_options_are_errors():
    with pytest.raises(ValueError, match="ratio_global must be a number in"):
        build_model("ffc_c2d_r50", num_classes=5, ratio_global=1.0)
    with pytest.raises(ValueError, match="fft must be"):
        build_model("ffc_c2d_r50", num_classes=5, fft="4d")
    with pytest.raises(ValueError, match="divisible by 4"):
        build_model("ffc_c2d_r50", num_classes=5, ratio_global=0.3, lfu=True)


# ----------------------------------------------------------------------------- Fourier unit


def _dense_fourier_unit(unit: FourierUnit, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """The unit written out: complex channels → interleaved real channels → matrix → BN (eval) → ReLU."""
    spectrum = torch.fft.rfftn(x, dim=dims, norm="ortho")
    b, c = x.shape[:2]
    real = torch.empty(b, 2 * c, *spectrum.shape[2:], dtype=x.dtype)
    real[:, 0::2], real[:, 1::2] = spectrum.real, spectrum.imag
    w = unit.conv_layer.weight.flatten(1)
    y = torch.einsum("oi,bi...->bo...", w, real)
    bn = unit.bn
    shape = (1, -1, 1, 1, 1)
    y = (y - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(
        shape
    ) + bn.bias.view(shape)
    y = y.clamp_min(0)
    z = torch.complex(y[:, 0::2], y[:, 1::2])
    return torch.fft.irfftn(z, s=[x.shape[d] for d in dims], dim=dims, norm="ortho")


@pytest.mark.parametrize(("fft", "dims"), [("2d", (-2, -1)), ("3d", (-3, -2, -1))])
def test_fourier_unit_equals_the_dense_formula_on_odd_maps(fft, dims):
    torch.manual_seed(0)
    unit = FourierUnit(4, 4, fft=fft).double().eval()
    randomize_batchnorm(unit)
    x = torch.randn(2, 4, 3, 7, 7, dtype=torch.float64)
    out = unit(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _dense_fourier_unit(unit, x, dims), rtol=1e-10, atol=1e-12)


def test_fft_2d_acts_per_frame_and_fft_3d_mixes_frames():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 4, 8, 8, dtype=torch.float64)
    for fft, per_frame in (("2d", True), ("3d", False)):
        unit = FourierUnit(4, 4, fft=fft).double().eval()
        randomize_batchnorm(unit)
        y = x.clone()
        y[:, :, 1] += 1.0  # change frame 1 only
        changed = (unit(y) - unit(x)).abs().amax(dim=(0, 1, 3, 4)) > 1e-9
        assert changed.tolist() == ([False, True, False, False] if per_frame else [True] * 4)


def test_bf16_autocast_runs_the_ffts_in_float32_and_stays_close():
    torch.manual_seed(0)
    model = build_model("ffc_c2d_r50", num_classes=10).eval()
    x = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low).all()
    err = (low.float() - ref).norm() / ref.norm()
    assert err < 0.1, err
    # A bf16 tensor reaching the unit directly comes back bf16 (computed in float32 inside).
    unit = FourierUnit(4, 4).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = unit(torch.randn(1, 4, 2, 7, 7).bfloat16())
    assert out.dtype == torch.bfloat16


# ----------------------------------------------------------------------------- non-local blocks


def test_nonlocal_blocks_on_an_ffc_backbone_see_the_full_stage_width():
    torch.manual_seed(0)
    plain = build_model("ffc_c2d_r50", num_classes=10).eval()
    placed = build_model(
        "ffc_c2d_r50", num_classes=10, nonlocal_blocks={"kind": "nl", "positions": {"layer2": [1, 3], "layer3": [1, 3, 5]}}
    ).eval()
    placed.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(placed.nonlocal_blocks) == [
        "layer2_after_1", "layer2_after_3", "layer3_after_1", "layer3_after_3", "layer3_after_5"
    ]
    seen = {}
    block = placed.nonlocal_blocks["layer3_after_1"]
    block.register_forward_hook(lambda m, i, o: seen.__setitem__("in", tuple(i[0].shape)))
    x = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(placed(x), plain(x))  # identity at initialisation
        assert seen["in"] == (1, 1024, 1, 4, 4)  # local 768 + global 256 channels
        # A block that is not the identity changes both parts of the map it sees.
        for m in block.modules():
            if isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
        assert not torch.allclose(placed(x), plain(x))


# ----------------------------------------------------------------------------- released checkpoints


def _fake_cuda_locations(raw: bytes) -> bytes:
    """Rewrite a torch zip so every storage says it was saved on ``cuda:0`` (as GPU-trained
    checkpoints are): the pickle stores the location string once and refers back to it."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):  # protocol 2: BINUNICODE, 4-byte length
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            dst.writestr(info, data)
    return out.getvalue()


def _released_ffc_checkpoint(tmp_path, ref: nn.Module, name: str) -> str:
    """``main.py``'s container: DataParallel keys, epoch, arch, best_acc1 (a CUDA tensor), optimizer state."""
    optimizer = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for p in ref.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates momentum buffers (the weights only feel the weight decay)
    container = {
        "epoch": 90,
        "arch": "ffc_resnet50",
        "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()},
        "best_acc1": torch.tensor(77.6),
        "optimizer": optimizer.state_dict(),
    }
    buffer = io.BytesIO()
    torch.save(container, buffer)
    path = tmp_path / name
    path.write_bytes(_fake_cuda_locations(buffer.getvalue()))
    return str(path)


@pytest.mark.parametrize("lfu", [False, True])
def test_released_imagenet_checkpoint_inflates_into_ffc_c2d_with_the_2d_logits(tmp_path, lfu):
    torch.manual_seed(0)
    ref = RefFFCResNet50(ratio=0.25, lfu=lfu)
    randomize_batchnorm(ref)
    path = _released_ffc_checkpoint(tmp_path, ref, f"ffc_resnet50{'_lfu' if lfu else ''}.pth.tar")
    if not torch.cuda.is_available():  # the fake really says "cuda": a plain load fails on a CPU machine
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    detected = detect_format(read_checkpoint_file(path), source=path)
    assert detected.format == "ffc" and detected.metadata["best_acc1"] == pytest.approx(77.6)

    model = build_model("ffc_c2d_r50", num_classes=1000, lfu=lfu, pretrained=path)
    report = model.load_report
    assert report.ok and not report.reinitialised_head and not report.new
    assert len(report.loaded) == len(model.state_dict())

    ref = ref.double().eval()
    model = model.double().eval()
    frame = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    clip = frame.unsqueeze(2).repeat(1, 1, 2, 1, 1)  # identical frames
    with torch.no_grad():
        torch.testing.assert_close(model(clip), ref(frame), rtol=1e-9, atol=1e-10)


def test_released_checkpoint_fine_tunes_ffc_i3d_with_a_new_head(tmp_path):
    torch.manual_seed(0)
    ref = RefFFCResNet50(ratio=0.25)
    path = _released_ffc_checkpoint(tmp_path, ref, "ffc_resnet50.pth.tar")
    model = build_model("ffc_i3d_r50", num_classes=101, pretrained=path)
    report = model.load_report
    assert report.ok and report.reinitialised_head == ["fc.weight", "fc.bias"]
    # A temporal 3×1×1 conv holds the 2-D 1×1 kernel averaged over its 3 slices.
    w2d = ref.state_dict()["layer2.0.conv1.ffc.convl2l.weight"]
    w3d = model.state_dict()["layer2.0.conv1.ffc.convl2l.weight"]
    assert w3d.shape[2] == 3
    torch.testing.assert_close(w3d, w2d.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)


def test_a_checkpoint_with_another_global_ratio_is_a_clear_error():
    ref = RefFFCResNet50(ratio=0.5)
    with pytest.raises(WeightsLoadError, match=r"ratio_global ≈ 0.5 .*model has ratio_global=0.25: build it with ratio_global=0.5"):
        build_model("ffc_c2d_r50", num_classes=1000, pretrained={f"module.{k}": v for k, v in ref.state_dict().items()})


def test_a_checkpoint_with_the_other_lfu_setting_is_a_clear_error(tmp_path):
    ref = RefFFCResNet50(ratio=0.25, lfu=True)
    path = _released_ffc_checkpoint(tmp_path, ref, "ffc_resnet50_lfu.pth.tar")
    with pytest.raises(WeightsLoadError, match=r"has local Fourier units, .*lfu=False: build it with lfu=True"):
        build_model("ffc_c2d_r50", num_classes=1000, pretrained=path)


def test_registry_entry_in_the_offline_cache_loads_into_both_trunks_with_its_options(tmp_path, monkeypatch):
    from snl_video.weights import eval_transform_params, get_weights

    entry = get_weights("ffc_c2d_r50.ffc_lfu_imagenet")
    assert entry.url is None and "drive.google.com" in entry.notes  # Google Drive: offline cache only
    assert eval_transform_params(entry).mean == (0.485, 0.456, 0.406)
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    ref = RefFFCResNet50(ratio=0.25, lfu=True)
    cached = _released_ffc_checkpoint(tmp_path, ref, entry.file_name)
    assert cached == str(tmp_path / entry.file_name)
    for name in ("ffc_c2d_r50", "ffc_i3d_r50"):  # lfu=True comes from the entry
        model = build_model(name, num_classes=101, pretrained=entry.name)
        assert model.spec.fourier.lfu and model.load_report.ok
    with pytest.raises(Exception, match=r"are for ffc_c2d_r50.*the model is ffc_r3d50"):
        build_model("ffc_r3d50", num_classes=101, pretrained=entry.name)


@pytest.mark.parametrize(
    ("recipe", "model_name", "blocks"),
    [("ffc_c2d_r50", "ffc_c2d_r50", 0), ("ffc_i3d_r50", "ffc_i3d_r50", 0), ("ffc_c2d_r50_nl", "ffc_c2d_r50", 1),
     ("ffc_i3d_r50_nl", "ffc_i3d_r50", 1)],
)  # fmt: skip
def test_ffc_recipes_build_and_run_at_their_clip_size(recipe, model_name, blocks):
    from pathlib import Path

    from snl_video.config import load_config
    from snl_video.engine.builders import build_model_from_config, normalization_from_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "ucf101" / f"{recipe}.yaml")
    assert cfg.model.name == model_name and cfg.pretrained.source == "ffc_c2d_r50.ffc_imagenet"
    assert normalization_from_config(cfg).mean == (0.485, 0.456, 0.406)  # the ImageNet entry's
    model = build_model_from_config(cfg, load_weights=False).eval()
    assert len(model.nonlocal_blocks) == blocks and not model.spec.fourier.lfu
    assert (cfg.data.num_frames, cfg.data.crop_size) == (16, 112)
    with torch.no_grad():  # 2 frames (not 16) keep the test short; the 112² crop gives res4 7×7
        out = model(torch.randn(1, 3, 2, cfg.data.crop_size, cfg.data.crop_size))
    assert out.shape == (1, 101)


def test_feature_and_gradcam_hooks_read_ffc_pairs():
    from snl_video.engine.explain import gradcam
    from snl_video.models.resnet3d import feature_map

    model = build_model("ffc_c2d_r50", num_classes=4).eval()
    x = torch.randn(1, 3, 2, 64, 64)
    seen = {}
    model.layer3[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("res4", feature_map(o)))
    with torch.no_grad():
        model(x)
    assert seen["res4"].shape == (1, 1024, 1, 4, 4)  # 768 local + 256 global channels
    cam = gradcam(model, x, class_index=1)
    assert cam.shape == (1, 2, 2) and torch.isfinite(cam).all()


@pytest.mark.parametrize("fft", ["2d", "3d"])
@pytest.mark.parametrize("frames", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [7, 14])
def test_ffc_layer_shapes_over_frames_and_map_sizes(fft, frames, size):
    layer = FFC3d(64, 64, (3, 3, 3), ratio_gin=0.25, ratio_gout=0.25, fft=fft).eval()
    x_l, x_g = torch.randn(1, 48, frames, size, size), torch.randn(1, 16, frames, size, size)
    with torch.no_grad():
        y_l, y_g = layer((x_l, x_g))
    assert y_l.shape == x_l.shape and y_g.shape == x_g.shape
    strided = FFC3d(64, 64, (1, 3, 3), ratio_gin=0.25, ratio_gout=0.25, stride=(1, 2, 2), fft=fft).eval()
    lfu = FFC3d(64, 64, (1, 3, 3), ratio_gin=0.25, ratio_gout=0.25, fft=fft, lfu=True).eval()
    if size % 2:  # 7: halving disagrees between the paths, and the LFU cannot quarter it
        with pytest.raises(FFCInputSizeError, match="stride"):
            strided((x_l, x_g))
        with pytest.raises(FFCInputSizeError, match="lfu=True"):
            lfu((x_l, x_g))
    else:
        with torch.no_grad():
            y_l, y_g = strided((x_l, x_g))
            assert y_l.shape[2:] == y_g.shape[2:] == (frames, size // 2, size // 2)
            assert lfu((x_l, x_g))[1].shape == x_g.shape
