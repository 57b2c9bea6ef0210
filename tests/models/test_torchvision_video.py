"""torchvision's MViT-v2-S, Swin3D-T and S3D as registry baselines: their keys and logits are
torchvision's own (a torchvision state dict loads through the fine-tuning path, the head
replaced when the class count differs), their profile is torchvision's published one, and
non-local placement is refused with one clear line."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model, insert_nonlocal_blocks, profile_model
from snl_video.models.torchvision_video import TORCHVISION_BASELINES

NUM_CLASSES = 5


def _torchvision(name, num_classes):
    import torchvision.models.video as tv

    return getattr(tv, name)(weights=None, num_classes=num_classes)


# MViT-v2-S is tied to 16x224² and S3D's head needs >= 14x224²: a forward there costs 18-64 GMACs
# in float64 on CPU, so those two run in the slow suite; Swin3D-T takes any clip.
PARITY = [
    pytest.param("swin3d_t", (4, 64), id="swin3d_t"),
    pytest.param("s3d", (16, 224), id="s3d", marks=pytest.mark.slow),
    pytest.param("mvit_v2_s", (16, 224), id="mvit_v2_s", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, clip", PARITY)
def test_logits_are_torchvisions(name, clip):
    """A torchvision model's state dict loads into ours through build_model(pretrained=...)
    with nothing converted, missing or unexpected, and the float64 logits are equal."""
    torch.manual_seed(0)
    reference = _torchvision(name, NUM_CLASSES)
    with torch.no_grad():  # non-trivial norm statistics where the model has BatchNorm (S3D)
        for module in reference.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = build_model(name, num_classes=NUM_CLASSES, pretrained=reference.state_dict())
    report = ours.load_report
    assert not (report.missing or report.unexpected or report.mismatched or report.reinitialised_head)
    assert set(ours.state_dict()) == set(reference.state_dict())
    reference.double().eval()
    ours.double().eval()
    frames, size = clip
    x = torch.randn(1, 3, frames, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    assert expected.abs().max() > 1e-3
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("name", list(TORCHVISION_BASELINES))
def test_kinetics_head_is_replaced_for_fine_tuning(name):
    with torch.device("meta"):
        kinetics = _torchvision(name, 400).state_dict()
    head = TORCHVISION_BASELINES[name][0]
    state = {k: torch.zeros(v.shape) for k, v in kinetics.items()}
    model = build_model(name, num_classes=NUM_CLASSES, pretrained=state)
    assert model.load_report.reinitialised_head and all(k.startswith(head) for k in model.load_report.reinitialised_head)
    assert not (model.load_report.missing or model.load_report.unexpected)
    assert all(not k.startswith(head) for k in model.load_report.loaded)
    # the rest came from the checkpoint (zeros), the new head did not
    assert all(float(model.state_dict()[k].abs().sum()) == 0 for k in model.load_report.loaded if "num_batches" not in k)


# torchvision's own published figures (weights meta: num_params, _ops in GFLOPs = multiply-adds
# for one 16x224² view, counted by the same torch.utils.flop_counter our profile uses).
PUBLISHED = {"mvit_v2_s": (34537744, 64.224), "swin3d_t": (28158070, 43.882), "s3d": (8320048, 17.979)}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_profile_is_torchvisions_published(name):
    import torchvision.models.video as tv

    weights = {"mvit_v2_s": tv.MViT_V2_S_Weights, "swin3d_t": tv.Swin3D_T_Weights, "s3d": tv.S3D_Weights}[name]
    meta = weights.KINETICS400_V1.meta
    assert (meta["num_params"], meta["_ops"]) == PUBLISHED[name]
    with torch.device("meta"):
        model = build_model(name, num_classes=400)
    profile = profile_model(model, input_shape=(1, 3, 16, 224, 224), device="meta")
    assert profile.params == PUBLISHED[name][0]
    assert profile.macs / 1e9 == pytest.approx(PUBLISHED[name][1], abs=5e-4)


@pytest.mark.parametrize("name", list(TORCHVISION_BASELINES))
def test_nonlocal_placement_is_refused_with_a_clear_line(name):
    with pytest.raises(ValueError, match=rf"^non-local blocks cannot be placed in {name}: it is .*leave nonlocal_blocks out") as info:
        build_model(name, num_classes=3, nonlocal_blocks="snl")
    assert "\n" not in str(info.value)
    with torch.device("meta"):
        model = build_model(name, num_classes=3)
    with pytest.raises(ValueError, match="cannot be placed"):
        insert_nonlocal_blocks(model, {"kind": "nl", "positions": {"layer3": [0]}})
