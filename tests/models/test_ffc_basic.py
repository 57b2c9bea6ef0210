"""FFC on basic-block trunks (``ffc_r3d10`` / ``ffc_r3d18``): the block against a plain basic
block, the networks against a restatement of the released 2-D basic-block FFC-ResNet, a hand
count of the parameters, training at the relations study's size, the config check, profiling
and the weights-fit hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from snl_video.models import build_model, guess_model_name, model_entry, profile_model
from snl_video.models.architectures import ffc_resnet, hara_resnet, torchvision_video_resnet18
from snl_video.models.ffc import FFCBasicBlock3D
from snl_video.models.resnet3d import ConvSpec, ResidualBlock3D
from snl_video.weights import WeightsLoadError
from snl_video.weights.errors import WrongArchitectureError

from ..helpers import randomize_batchnorm
from .ffc_reference import RefFFCResNetBasic

REPO = Path(__file__).resolve().parents[2]
# The relations study's recipe (configs/studies/relations_base.yaml) with the FFC variant's ratio.
STUDY_OPTIONS = {"widen_factor": 0.5, "conv1_t_size": 3}


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- the block


def _plain_keys(key: str) -> str:
    """An FFC basic block's key without global channels → the plain block's key."""
    for conv in ("conv1", "conv2"):
        key = key.replace(f"{conv}.ffc.convl2l.", f"{conv}.").replace(f"{conv}.bn_l.", f"bn{conv[-1]}.")
    return key.replace("downsample.ffc.convl2l.", "downsample.0.").replace("downsample.bn_l.", "downsample.1.")


@pytest.mark.parametrize(("in_channels", "width", "stride"), [(8, 16, (2, 2, 2)), (16, 16, (1, 1, 1))])
@pytest.mark.parametrize("train", [False, True])
def test_basic_block_without_global_channels_is_the_plain_basic_block(in_channels, width, stride, train):
    torch.manual_seed(0)
    ffc = FFCBasicBlock3D(in_channels, width, kernels=((3, 3, 3), (3, 3, 3)), stride=stride, ratio_gin=0.0,
                          ratio_gout=0.0).double()
    plain = ResidualBlock3D(in_channels, width, convs=(ConvSpec((3, 3, 3)),) * 2, expansion=1, stride=stride).double()
    randomize_batchnorm(ffc)
    # Only the local→local paths exist: the same tensors as the plain block, under FFC names.
    plain.load_state_dict({_plain_keys(k): v for k, v in ffc.state_dict().items()}, strict=True)
    assert (ffc.downsample is None) == (plain.downsample is None) == (stride == (1, 1, 1))
    ffc.train(train)
    plain.train(train)
    x = torch.randn(2, in_channels, 4, 8, 8, dtype=torch.float64)
    out_l, out_g = ffc(x)
    assert isinstance(out_g, int) and out_g == 0
    torch.testing.assert_close(out_l, plain(x), rtol=1e-12, atol=1e-12)


def test_basic_block_needs_two_kernels():
    with pytest.raises(ValueError, match="two kernels"):
        FFCBasicBlock3D(8, 8, kernels=((3, 3, 3),) * 3, ratio_gin=0.5, ratio_gout=0.5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the networks


@pytest.mark.parametrize(
    ("name", "options", "layers", "base_width"),
    [
        ("ffc_r3d10", {**STUDY_OPTIONS, "ratio_global": 0.5}, (1, 1, 1, 1), 32),
        ("ffc_r3d10", {**STUDY_OPTIONS, "ratio_global": 0.5, "lfu": True}, (1, 1, 1, 1), 32),
        ("ffc_r3d18", {}, (2, 2, 2, 2), 64),
    ],
    ids=["r3d10-study", "r3d10-study-lfu", "r3d18-default"],
)
def test_ffc_r3d_on_one_frame_is_the_released_2d_basic_network(name, options, layers, base_width):
    """On a one-frame clip every 3-D kernel reduces to its centre slice (the temporal padding
    holds zeros), so the network must equal the 2-D basic-block FFC-ResNet of the released
    layout whose kernels are those slices: same keys, same split, same shortcut rule, same logits."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, **options)
    randomize_batchnorm(model)
    ref = RefFFCResNetBasic(layers, ratio=options.get("ratio_global", 0.25), lfu=options.get("lfu", False),
                            num_classes=10, base_width=base_width)
    state = {k: v[:, :, v.shape[2] // 2] if v.dim() == 5 else v for k, v in model.state_dict().items()}
    ref.load_state_dict(state, strict=True)  # the released key names, one for one
    model, ref = model.double().eval(), ref.double().eval()
    frame = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(frame.unsqueeze(2)), ref(frame), rtol=1e-9, atol=1e-10)


def test_channel_split_follows_the_released_basic_network():
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5)
    keys = set(model.state_dict())
    # res2: 0 → α (its first conv has no global input, so no g→ paths); a shortcut conv because
    # the stage input has no global part, although stride and width do not change.
    assert model.layer1[0].conv1.ffc.in_channels == (32, 0) and model.layer1[0].conv1.ffc.out_channels == (16, 16)
    assert not any(k.startswith(("layer1.0.conv1.ffc.convg2", "layer1.0.downsample.ffc.convg2")) for k in keys)
    assert "layer1.0.downsample.ffc.convl2g.weight" in keys
    assert "layer1.0.conv2.ffc.convg2g.fu.conv_layer.weight" in keys
    # res3/res4: α → α, the strided conv is conv1 and its global path pools by 2 in t, h, w.
    assert model.layer2[0].conv1.ffc.convg2g.stride == (2, 2, 2)
    assert model.layer3[0].conv2.ffc.in_channels == (64, 64)
    # res5: α → 0, no global output, no spectral transform.
    assert model.layer4[0].conv1.ffc.in_channels == (64, 64) and model.layer4[0].conv1.ffc.out_channels == (256, 0)
    assert not any(".convg2g." in k or ".convl2g." in k or ".bn_g." in k for k in keys if k.startswith("layer4."))
    assert model_entry("ffc_r3d10").options() == {
        "conv1_t_size": 7, "conv1_t_stride": 1, "no_max_pool": False, "widen_factor": 1.0,
        "ratio_global": 0.25, "lfu": False, "fft": "2d",
    }  # fmt: skip


def test_trunks_an_ffc_cannot_replace_are_clear_errors():
    with pytest.raises(ValueError, match=r"factorized \(2\+1\)D convs"):
        ffc_resnet(torchvision_video_resnet18("r2plus1d"))
    with pytest.raises(ValueError, match="shortcut 'A'.*shortcut='B'"):
        ffc_resnet(hara_resnet(18, shortcut="A"))
    with pytest.raises(ValueError, match="unknown option.*'shortcut'"):
        build_model("ffc_r3d10", num_classes=4, shortcut="A")


# ----------------------------------------------------------------------------- parameters, by hand


def _spectral(in_g: int, out_g: int, lfu: bool) -> int:
    """A spectral transform's parameters: 1×1 conv to c = out/2 + BN, FU (2c → 2c conv + BN),
    [LFU, the same], 1×1 conv c → out."""
    c = out_g // 2
    unit = (2 * c) ** 2 + 2 * (2 * c)
    return in_g * c + 2 * c + unit * (2 if lfu else 1) + c * out_g


@pytest.mark.parametrize(("ratio", "lfu"), [(0.25, False), (0.5, False), (0.5, True), (0.25, True)])
def test_ffc_r3d10_parameter_count_is_the_plain_r3d10_plus_the_spectral_transforms(ratio, lfu):
    """An FFC layer keeps the plain conv's local→local, local→global and global→local blocks of
    its kernel and replaces the global→global block (in_g × out_g × K) by a spectral transform;
    its two BNs hold as many parameters as the plain BN. So the FFC network is the plain r3d10
    minus those blocks, plus the transforms, plus res2's extra shortcut conv (the stage input
    has no global part). The FFC layers of r3d10 at half width, written out:"""
    widths = (32, 64, 128, 256)
    a = ratio
    layers = [  # (in channels, out channels, kernel volume, global share in, out)
        (32, 32, 27, 0, a), (32, 32, 27, a, a), (32, 32, 1, 0, a),                   # res2: conv1, conv2, shortcut
        (32, 64, 27, a, a), (64, 64, 27, a, a), (32, 64, 1, a, a),                   # res3
        (64, 128, 27, a, a), (128, 128, 27, a, a), (64, 128, 1, a, a),               # res4
        (128, 256, 27, a, 0), (256, 256, 27, 0, 0), (128, 256, 1, a, 0),             # res5
    ]  # fmt: skip
    expected = _params(build_model("r3d10", num_classes=4, **STUDY_OPTIONS))
    expected += widths[0] * widths[0] + 2 * widths[0]  # res2's shortcut conv + BN, absent in r3d10
    for cin, cout, volume, a_in, a_out in layers:
        in_g, out_g = int(cin * a_in), int(cout * a_out)
        if in_g and out_g:
            expected += _spectral(in_g, out_g, lfu) - in_g * out_g * volume
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=ratio, lfu=lfu)
    assert _params(model) == expected
    if (ratio, lfu) == (0.5, False):
        assert expected == 3_413_812  # the study's FFC variant (r3d10 at half width: 3,599,972)


# ----------------------------------------------------------------------------- the study's size


def test_ffc_r3d10_trains_on_the_study_clip():
    torch.manual_seed(0)
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5).train()
    clip = torch.randn(4, 3, 8, 64, 64)
    logits = model(clip)
    assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert bad == []
    # The global path learns: its Fourier units and the res5 global→local conv get gradients.
    for unit in ("layer1.0.conv2", "layer3.0.conv2"):
        assert model.get_submodule(f"{unit}.ffc.convg2g.fu.conv_layer").weight.grad.abs().sum() > 0
    assert model.layer4[0].conv1.ffc.convg2l.weight.grad.abs().sum() > 0


def test_a_nonlocal_block_on_ffc_r3d10_sees_the_full_res4_width():
    torch.manual_seed(0)
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5,
                        nonlocal_blocks={"kind": "snl", "positions": {"layer3": [0]}}).eval()
    seen = {}
    model.nonlocal_blocks["layer3_after_0"].register_forward_hook(lambda m, i, o: seen.__setitem__("in", i[0].shape))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 64, 64)).shape == (1, 4)
    assert tuple(seen["in"]) == (1, 128, 1, 4, 4)  # 64 local + 64 global channels, as the study's blocks see r3d10's


def test_the_relations_recipe_validates_with_ffc_r3d10():
    from snl_video.config import load_config
    from snl_video.engine.preflight import model_problems
    from snl_video.engine.study import load_study_spec

    base = REPO / "configs" / "studies" / "relations_base.yaml"
    cfg = load_config(base, ["model.name=ffc_r3d10", "model.options.ratio_global=0.5"])
    assert cfg.model.options == {"widen_factor": 0.5, "conv1_t_size": 3, "ratio_global": 0.5}
    assert model_problems(cfg) == []
    bad = load_config(base, ["model.name=ffc_r3d10", "model.options.shortcut=A"])
    assert [k for k, _ in model_problems(bad)] == ["model.options.shortcut"]
    bad = load_config(base, ["model.name=ffc_r3d10", "model.options.ratio_global=1.5"])
    problems = model_problems(bad)
    assert [k for k, _ in problems] == ["model.options"] and "ratio_global must be a number in (0, 1)" in problems[0][1]
    spec = load_study_spec(REPO / "configs" / "studies" / "relations_family.yaml")
    assert list(spec.variants["ffc"]) == ["model.name=ffc_r3d10", "model.options.ratio_global=0.5"]


# ----------------------------------------------------------------------------- profile


def test_profile_counts_ffc_r3d10_convs_and_keeps_its_ffts_apart(capsys):
    """``snl-video profile``'s MACs are every conv's and fc's multiply-adds (counted here by
    hooks from the output sizes and kernel shapes); the FFTs are reported apart."""
    from snl_video.cli import main

    args = ["profile", "--model", "ffc_r3d10", "--num-classes", "4", "--num-frames", "8", "--size", "64", "--json"]
    args += [f"--model-option={k}={v}" for k, v in {**STUDY_OPTIONS, "ratio_global": 0.5}.items()]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["params"] == 3_413_812
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5).eval()
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        weight = module.weight
        macs += output.numel() * weight[0].numel() if isinstance(module, nn.Conv3d) else output.numel() * weight.shape[1]

    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, 8, 64, 64))
    assert result["macs"] == macs
    assert result["macs_fft"] > 0
    plain = profile_model(build_model("r3d10", num_classes=4, **STUDY_OPTIONS), input_shape=(1, 3, 8, 64, 64))
    assert result["macs"] < plain.macs  # the global→global blocks became 1×1×1 and spectral convs


# ----------------------------------------------------------------------------- weights that do not fit


def _state(name: str, **options) -> dict[str, torch.Tensor]:
    return build_model(name, num_classes=4, **options).state_dict()


def test_ffc_r3d10_weights_load_and_the_family_hints_speak_for_the_new_names():
    own = _state("ffc_r3d10", **STUDY_OPTIONS, ratio_global=0.5)
    model = build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5, pretrained=own)
    assert model.load_report.ok and not model.load_report.reinitialised_head
    with pytest.raises(WeightsLoadError, match=r"ratio_global ≈ 0.5 \(16 of res2's 32 channels global\).*"
                                               r"model has ratio_global=0.25: build it with ratio_global=0.5"):
        build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, pretrained=own)
    lfu = _state("ffc_r3d10", **STUDY_OPTIONS, ratio_global=0.5, lfu=True)
    with pytest.raises(WeightsLoadError, match=r"has local Fourier units, .*lfu=False: build it with lfu=True"):
        build_model("ffc_r3d10", num_classes=4, **STUDY_OPTIONS, ratio_global=0.5, pretrained=lfu)


def test_an_ffc_r3d18_file_into_ffc_r3d10_names_ffc_r3d18():
    r18 = _state("ffc_r3d18")
    assert guess_model_name(r18) == "ffc_r3d18"
    assert guess_model_name(_state("ffc_r3d10")) == "ffc_r3d10"
    with pytest.raises(WrongArchitectureError, match=r"backbone is that of ffc_r3d18, but the model is ffc_r3d10"):
        build_model("ffc_r3d10", num_classes=4, pretrained=r18)
