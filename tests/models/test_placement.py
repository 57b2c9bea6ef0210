"""Non-local placement: positions, identity at insertion, unchanged backbone keys, errors."""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model, default_positions, load_backbone_weights, resolve_placement
from snl_video.nonlocal_blocks import list_nonlocal_kinds

from ..helpers import randomize_batchnorm

FIVE_BLOCK_NL = {"layer2": [1, 3], "layer3": [1, 3, 5]}  # the NL paper: res3 after 1, 3; res4 after 1, 3, 5
R50_DEPTHS = {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}


def test_paper_default_is_res4_before_its_last_block():
    model = build_model("r3d50", num_classes=10, nonlocal_blocks="snl")
    assert list(model.nonlocal_blocks) == ["layer3_after_4"]  # layer3 has blocks 0..5
    block = model.nonlocal_blocks["layer3_after_4"]
    assert (block.in_channels, block.inter_channels) == (1024, 512)
    assert sum(p.numel() for p in block.parameters()) == 2_623_488  # 2.62 M, Table 7
    assert default_positions({"layer1": 2, "layer2": 2, "layer3": 1, "layer4": 2}) == {"layer3": (0,)}


def test_position_means_after_that_residual_block():
    """The block at layer3_after_4 receives exactly what layer3[4] outputs, and layer3[5]
    receives what the block outputs."""
    model = build_model("r3d18", num_classes=3, nonlocal_blocks={"kind": "nl", "positions": {"layer3": [0]}}).eval()
    with torch.no_grad():
        model.nonlocal_blocks["layer3_after_0"].out_norm.weight.fill_(1.0)  # not the identity
    seen = {}
    model.layer3[0].register_forward_hook(lambda m, i, o: seen.__setitem__("block_out", o.clone()))
    model.nonlocal_blocks["layer3_after_0"].register_forward_hook(
        lambda m, i, o: seen.update(nl_in=i[0].clone(), nl_out=o.clone())
    )
    model.layer3[1].register_forward_pre_hook(lambda m, i: seen.__setitem__("next_in", i[0].clone()))
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 32, 32))
    assert torch.equal(seen["block_out"], seen["nl_in"])
    assert torch.equal(seen["nl_out"], seen["next_in"])
    assert not torch.equal(seen["nl_in"], seen["nl_out"])


def test_five_block_layout_and_unchanged_backbone_keys():
    plain = build_model("i3d_r50", num_classes=10)
    placed = build_model("i3d_r50", num_classes=10, nonlocal_blocks={"kind": "nl", "positions": FIVE_BLOCK_NL})
    assert sorted(placed.nonlocal_blocks) == sorted(
        ["layer2_after_1", "layer2_after_3", "layer3_after_1", "layer3_after_3", "layer3_after_5"]
    )
    assert [b.in_channels for b in placed.nonlocal_blocks.values()] == [512, 512, 1024, 1024, 1024]
    backbone_keys = [k for k in placed.state_dict() if not k.startswith("nonlocal_blocks.")]
    assert backbone_keys == list(plain.state_dict())  # same keys, same order: no renumbering
    assert list(placed.backbone_state_dict()) == list(plain.state_dict())


@pytest.fixture(scope="module")
def plain_slow_r50():
    """A plain slow_r50 with random BN statistics, a clip and its logits (shared: building
    and running a ResNet-50 dominates these tests)."""
    torch.manual_seed(0)
    plain = build_model("slow_r50", num_classes=6).eval()
    randomize_batchnorm(plain)
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = plain(clip)
    return plain, clip, logits


@pytest.mark.parametrize("kind", list_nonlocal_kinds("graph"))
@pytest.mark.parametrize(
    "positions", [None, {"layer2": [1, 3], "layer3": [1, 3, 5]}, {"res2": [0], "res5": [2]}], ids=["paper", "nl5", "ends"]
)
def test_identity_at_insertion(kind, positions, plain_slow_r50):
    """A checkpoint of the plain backbone loads into the placed model and gives the same
    logits, bit for bit, for every kind and placement (eval mode, random BN statistics)."""
    plain, clip, expected = plain_slow_r50
    spec = {"kind": kind} if positions is None else {"kind": kind, "positions": positions}
    placed = build_model("slow_r50", num_classes=6, nonlocal_blocks=spec, pretrained=plain.state_dict()).eval()
    assert len(placed.nonlocal_blocks) == (1 if positions is None else sum(len(v) for v in positions.values()))
    with torch.no_grad():
        assert torch.equal(placed(clip), expected)
    # Not vacuous: once a block leaves the identity, the logits change.
    with torch.no_grad():
        for block in placed.nonlocal_blocks.values():
            block.out_norm.weight.fill_(1.0)
            block.out_norm.bias.fill_(0.5)
        assert not torch.allclose(placed(clip), expected)


def test_checkpoint_with_blocks_loads_into_plain_backbone_and_back():
    placed = build_model("r3d18", num_classes=4, nonlocal_blocks="snl")
    plain = build_model("r3d18", num_classes=4, pretrained=placed.backbone_state_dict())
    for key, value in plain.state_dict().items():
        assert torch.equal(value, placed.state_dict()[key])
    report = load_backbone_weights(build_model("r3d18", num_classes=9, nonlocal_blocks="nl"), plain.state_dict())
    assert report.reinitialised_head == ["fc.weight", "fc.bias"]
    assert report.new and all(k.startswith("nonlocal_blocks.") for k in report.new)


def test_checkpoint_with_blocks_restores_them_and_plain_model_refuses_them():
    trained = build_model("r3d10", num_classes=4, nonlocal_blocks="snl")
    with torch.no_grad():
        trained.nonlocal_blocks["layer3_after_0"].out_norm.weight.fill_(0.7)
    restored = build_model("r3d10", num_classes=4, nonlocal_blocks="snl", pretrained=trained.state_dict())
    assert restored.nonlocal_blocks["layer3_after_0"].out_norm.weight[0].item() == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"non-local blocks \['layer3_after_0'\] that the model does not have"):
        build_model("r3d10", num_classes=4, pretrained=trained.state_dict())


def test_dataparallel_prefix_is_stripped_and_unknown_keys_are_an_error():
    model = build_model("r3d18", num_classes=4)
    prefixed = {("module." + k): v for k, v in model.state_dict().items()}
    assert load_backbone_weights(model, prefixed).ok
    bad = {("net." + k): v for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"(?s)does not fit .*UNEXPECTED"):
        load_backbone_weights(model, bad)


def test_options_and_inter_channels_reach_the_blocks():
    model = build_model(
        "r3d18",
        num_classes=3,
        nonlocal_blocks={"kind": "snl", "options": {"impl": "linear", "order": 2}, "inter_channels": 64},
    )
    block = model.nonlocal_blocks["layer3_after_0"]
    assert block.inter_channels == 64 and block.options == {"impl": "linear", "order": 2}


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "nl", "positions": {"layer3": [6]}}, r"position 6 is out of range for layer3, which has 6 .*0\.\.5"),
        ({"kind": "nl", "positions": {"layer3": [-1]}}, r"position -1 is out of range for layer3.*0\.\.5"),
        ({"kind": "nl", "positions": {"res3": [4]}}, r"position 4 is out of range for layer2, which has 4 .*0\.\.3"),
        ({"kind": "nl", "positions": {"layer5": [0]}}, r"unknown stage 'layer5'.*valid stages: layer1, layer2"),
        ({"kind": "nl", "positions": {"layer3": [1, 1]}}, r"duplicate non-local positions for layer3"),
        ({"kind": "nl", "positions": {"layer3": [True]}}, r"position True is out of range"),
        ({"kind": "nl", "positions": {"layer3": []}}, r"positions for layer3 must be a non-empty list"),
        ({"kind": "nl", "positions": {}}, r"non-empty mapping"),
        ({"kind": "nl", "positions": {"res4": [1], "layer3": [2]}}, r"stage layer3 is given twice"),
        ({"kind": "nlx"}, r"unknown non-local kind 'nlx'; valid kinds: nl, nl_dot"),
        ("snl2", r"unknown non-local kind 'snl2'"),
        ({"kind": "nl", "where": {}}, r"unknown key\(s\) \['where'\].*valid keys"),
        ({"kind": "nl", "inter_channels": 0}, r"inter_channels must be a positive int"),
        (["nl"], r"nonlocal_blocks must be a kind name"),
    ],
)
def test_bad_placements_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_placement(spec, stage_depths=R50_DEPTHS)


def test_unknown_block_option_is_an_error_naming_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['ordr'\] for non-local kind 'snl'"):
        build_model("r3d10", num_classes=2, nonlocal_blocks={"kind": "snl", "options": {"ordr": 2}})
