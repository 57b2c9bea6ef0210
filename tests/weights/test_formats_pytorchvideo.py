"""pytorchvideo's SlowFast R50 and X3D hub containers through snl_video's one loading path.

The issue's test: pytorchvideo's ``create_slowfast`` / ``create_x3d`` are built here with
random weights (BN statistics included), saved as the hub ``.pyth`` files are
(``{"model_state": state_dict}``), detected as their own format (not the single-pathway
``pytorchvideo`` record, which accepts any ``blocks.`` key), loaded with
``build_model(..., pretrained=FILE)`` and compared with the original in float64. The same
file through ``load_inference_model(weights=FILE)`` (what ``eval`` / ``predict --weights``
use) finds the architecture by its tensors.
"""

from __future__ import annotations

import pytest
import torch

from snl_video.models import build_model
from snl_video.models.slowfast import slow_pathway_indices
from snl_video.weights import read_checkpoint

from ..helpers import randomize_batchnorm

NUM_CLASSES = 5


def _assert_same_logits(expected: torch.Tensor, actual: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 1e-3  # not vacuous
    assert (actual - expected).abs().max().item() <= 1e-9 * scale


@pytest.fixture(scope="module")
def slowfast_file(tmp_path_factory):
    from pytorchvideo.models.slowfast import create_slowfast

    torch.manual_seed(0)
    reference = create_slowfast(model_num_class=NUM_CLASSES, head_pool=torch.nn.AdaptiveAvgPool3d,
                                head_activation=None)
    randomize_batchnorm(reference)
    path = tmp_path_factory.mktemp("ptv") / "SLOWFAST_8x8_R50_random.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    return reference.double().eval(), path


@pytest.fixture(scope="module")
def x3d_file(tmp_path_factory):
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    reference = create_x3d(input_clip_length=4, input_crop_size=64, model_num_class=NUM_CLASSES, head_activation=None)
    randomize_batchnorm(reference)
    path = tmp_path_factory.mktemp("ptv") / "X3D_S_random.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    return reference.double().eval(), path


def test_slowfast_hub_container_is_its_own_format_and_loads_with_parity(slowfast_file):
    reference, path = slowfast_file
    detected = read_checkpoint(path)
    assert detected.format == "pytorchvideo_slowfast" and detected.num_classes == NUM_CLASSES
    ours = build_model("slowfast_r50", num_classes=NUM_CLASSES, pretrained=path)
    report = ours.load_report
    assert report.ok and not report.reinitialised_head and not report.new and not report.ignored
    assert len(report.loaded) == len(reference.state_dict()) == len(ours.state_dict())
    ours.double().eval()
    clip = torch.randn(1, 3, 8, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    slow = clip.index_select(2, slow_pathway_indices(8, 4))
    with torch.no_grad():
        _assert_same_logits(reference([slow, clip]), ours(clip))


def test_x3d_hub_container_is_its_own_format_and_loads_with_parity(x3d_file):
    reference, path = x3d_file
    detected = read_checkpoint(path)
    assert detected.format == "pytorchvideo_x3d" and detected.num_classes == NUM_CLASSES
    ours = build_model("x3d_s", num_classes=NUM_CLASSES, pretrained=path)
    report = ours.load_report
    assert report.ok and not report.reinitialised_head and not report.new and not report.ignored
    assert len(report.loaded) == len(reference.state_dict()) == len(ours.state_dict())
    ours.double().eval()
    clip = torch.randn(2, 3, 4, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _assert_same_logits(reference(clip), ours(clip))


def test_fine_tuning_from_a_hub_container_replaces_only_the_head(x3d_file):
    _, path = x3d_file
    ours = build_model("x3d_s", num_classes=NUM_CLASSES + 2, pretrained=path)
    assert ours.load_report.ok and set(ours.load_report.reinitialised_head) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("which, arch", [("slowfast", "slowfast_r50"), ("x3d", "x3d_s")])
def test_inference_loader_finds_the_architecture_of_a_hub_file(which, arch, slowfast_file, x3d_file, tmp_path):
    """X3D-XS/S/M are one network fed different clips: an X3D file is named by its hub file name
    (under another name it is refused, tests/engine/test_loading_ambiguous.py)."""
    from snl_video.engine.loading import load_inference_model

    reference, path = slowfast_file if which == "slowfast" else x3d_file
    if which == "x3d":
        (tmp_path / "X3D_S.pyth").symlink_to(path)
        path = tmp_path / "X3D_S.pyth"
    loaded = load_inference_model(weights=path)
    assert loaded.architecture == arch and loaded.num_classes == NUM_CLASSES
    ours = loaded.model.double().eval()
    frames = 8 if which == "slowfast" else 4
    clip = torch.randn(1, 3, frames, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference([clip.index_select(2, slow_pathway_indices(8, 4)), clip] if which == "slowfast" else clip)
        _assert_same_logits(expected, ours(clip))


@pytest.mark.parametrize("arch", ["i3d_r50", "slow_r50", "c2d_r50"])
def test_hub_resnet50_scores_as_pytorchvideo_at_the_256_test_crop(arch, tmp_path):
    """pytorchvideo's hub ResNet-50 heads average-pool (T, 7, 7) windows at stride 1, score each
    window and average the scores: at the registry's 256² test crop (an 8x8 map) that is four
    windows, not one global average. ``load_inference_model`` builds the head that way
    (``inference_options`` of the registry entry); before, the port pooled globally and its
    logits differed from pytorchvideo's by ~3% of their scale (float64, random weights)."""
    from pytorchvideo.models import hub

    from snl_video.engine.loading import load_inference_model

    torch.manual_seed(0)
    reference = getattr(hub, arch)(pretrained=False, model_num_class=NUM_CLASSES, head_activation=None)
    randomize_batchnorm(reference)
    path = tmp_path / f"{arch}_random.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    loaded = load_inference_model(weights=path)
    assert loaded.architecture == arch and loaded.crop_size == 256
    clip = torch.randn(1, 3, 8, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference.eval()(clip)
        got = loaded.model(clip)
        scale = expected.abs().max().item()
        assert scale > 1e-3 and (got - expected).abs().max().item() <= 1e-5 * scale
        global_average = build_model(arch, num_classes=NUM_CLASSES).eval()
        global_average.load_state_dict(loaded.model.state_dict())
        assert (global_average(clip) - expected).abs().max().item() > 1e-3 * scale  # the test can fail


def test_hub_slowfast_scores_as_pytorchvideo_at_the_256_test_crop(tmp_path):
    """As for the single-pathway ResNets: pytorchvideo's SlowFast head pools each pathway in
    (T, 7, 7) windows, concatenates them per window, scores each window and averages. Built
    here for 8 fast frames (2 slow), so its pool kernels are (2, 7, 7) and (8, 7, 7); before,
    the port pooled globally and differed by ~3% of the logits' scale at 256²."""
    from pytorchvideo.models.slowfast import create_slowfast

    from snl_video.engine.loading import load_inference_model

    torch.manual_seed(0)
    reference = create_slowfast(model_num_class=NUM_CLASSES, head_activation=None,
                                head_pool_kernel_sizes=((2, 7, 7), (8, 7, 7)))
    randomize_batchnorm(reference)
    path = tmp_path / "SLOWFAST_random.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    loaded = load_inference_model(weights=path)
    assert loaded.architecture == "slowfast_r50" and loaded.crop_size == 256
    clip = torch.randn(1, 3, 8, 256, 256, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = reference.eval()([clip.index_select(2, slow_pathway_indices(8, 4)), clip])
        scale = expected.abs().max().item()
        assert scale > 1e-3 and (loaded.model(clip) - expected).abs().max().item() <= 1e-5 * scale
        global_average = build_model("slowfast_r50", num_classes=NUM_CLASSES).eval()
        global_average.load_state_dict(loaded.model.state_dict())
        assert (global_average(clip) - expected).abs().max().item() > 1e-3 * scale  # the test can fail
