from __future__ import annotations

import pytest
import torch

from snl_video.data.transforms import NormalizationSpec, ThreeCrop, eval_transform, train_transform
from snl_video.errors import InvalidValueError

SPEC = NormalizationSpec(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))


def _clip(t=8, h=128, w=171):
    torch.manual_seed(0)
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8)


@pytest.mark.parametrize("crop", ["random_resized", "multiscale"])
def test_train_output_layout_and_same_crop_in_every_frame(crop):
    frame = _clip(1)[0]
    clip = frame.expand(6, *frame.shape).clone()  # six identical frames
    torch.manual_seed(1)
    out = train_transform(SPEC, crop=crop)(clip)
    assert out.shape == (3, 6, 112, 112) and out.dtype == torch.float32
    # identical input frames stay identical: one crop/flip for the whole clip
    assert all(torch.equal(out[:, 0], out[:, t]) for t in range(6))


def test_flip_mirrors_the_clip():
    clip = _clip(4, 112, 112)
    no_flip = train_transform(SPEC, scale=(1.0, 1.0), flip=False)
    torch.manual_seed(0)
    a = no_flip(clip)
    assert torch.allclose(a, eval_transform(SPEC)(clip))  # full-frame crop of a 112x112 clip = no-op
    flips = set()
    for seed in range(12):
        torch.manual_seed(seed)
        b = train_transform(SPEC, scale=(1.0, 1.0))(clip)
        flips.add(torch.allclose(b, a.flip(-1)))
        assert torch.allclose(b, a) or torch.allclose(b, a.flip(-1))
    assert flips == {True, False}


def test_normalisation_values():
    clip = torch.full((2, 112, 112, 3), 255, dtype=torch.uint8)
    out = eval_transform(SPEC)(clip)
    expected = torch.tensor([(1 - 0.5) / 0.5, (1 - 0.25) / 0.25, (1 - 0.0) / 1.0])
    assert torch.allclose(out[:, 0, 0, 0], expected)
    # value_scale: the same normalisation written in 0..255 units
    scaled = NormalizationSpec(mean=(127.5, 63.75, 0.0), std=(127.5, 63.75, 255.0), value_scale=255)
    assert torch.allclose(eval_transform(scaled)(clip), out, atol=1e-6)
    assert torch.allclose(eval_transform({"mean": SPEC.mean, "std": SPEC.std})(clip), out)


def test_test_transform_resizes_short_side_then_centre_crops():
    # a 60x80 clip whose left and right quarters are black and centre white
    clip = torch.zeros((2, 60, 80, 3), dtype=torch.uint8)
    clip[:, :, 20:60] = 255
    out = eval_transform({"mean": (0, 0, 0), "std": (1, 1, 1)}, size=30)(clip)
    # resize to 30x40, centre crop 30x30 = columns 5..35 of the resized frame = 10..70 of the source
    assert out.shape == (3, 2, 30, 30)
    assert out[:, :, :, 6:24].min() > 0.99 and out[:, :, :, :3].max() < 0.01 and out[:, :, :, -3:].max() < 0.01


def test_three_crop_positions():
    video = torch.arange(10).repeat(3, 1, 4, 1)  # (T=3, C=1, H=4, W=10): value = column
    crops = ThreeCrop(4)(video)
    assert crops.shape == (3, 3, 1, 4, 4)
    assert [crops[k, 0, 0, 0].tolist() for k in range(3)] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    out = eval_transform(SPEC, crops=3)(_clip())
    assert out.shape == (3, 3, 8, 112, 112)


def test_spec_errors():
    with pytest.raises(ValueError, match="3 values"):
        NormalizationSpec(mean=(0.5,), std=(1, 1, 1))
    with pytest.raises(ValueError, match="mean, std"):
        eval_transform({"mean": (0, 0, 0)})
    with pytest.raises(ValueError, match="crop must be"):
        train_transform(SPEC, crop="corner")
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        eval_transform(SPEC)(torch.zeros(3, 8, 112, 112, dtype=torch.uint8))


@pytest.mark.parametrize("value_scale", [1.0, 255.0])
def test_fused_normalisation_equals_torchvision_v2(value_scale):
    from torchvision.transforms import v2

    from snl_video.data.transforms import NormalizeToModel, ToModelLayout, ToVideo

    spec = NormalizationSpec(
        mean=tuple(m * value_scale for m in (0.43, 0.39, 0.37)), std=tuple(s * value_scale for s in (0.22, 0.22, 0.21)),
        value_scale=value_scale,
    )
    video = ToVideo()(_clip())[:, :, 5:117, 9:121]  # strided, as after a crop
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), spec.normalize(), ToModelLayout()])(video)
    fused = NormalizeToModel(spec)(video)
    assert fused.shape == reference.shape == (3, 8, 112, 112) and fused.is_contiguous()
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    crops = ThreeCrop(50)(video)
    torch.testing.assert_close(NormalizeToModel(spec)(crops), reference_of(crops, spec), rtol=1e-5, atol=1e-5)


def reference_of(video, spec):
    from torchvision.transforms import v2

    from snl_video.data.transforms import ToModelLayout

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), spec.normalize(), ToModelLayout()])(video)


@pytest.mark.parametrize("resize, expected_hw", [((128, 171), (128, 171)), (128, (128, 170)), (None, (112, 149))])
def test_input_transform_resizes_as_the_input_spec_says(resize, expected_hw):
    """A registry entry's published resize (torchvision's video models: 128x171 then a 112 crop)
    is what every verb feeds; before, the short side went to the crop whatever ``resize`` said.
    Reference: torchvision's functional resize then a centre crop by slicing."""
    from torchvision.transforms.v2 import functional as TF

    from snl_video.data.transforms import input_transform
    from snl_video.inputspec import InputSpec

    spec = InputSpec(num_frames=2, sampling_stride=1, crop_size=112, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0),
                     resize=resize)
    torch.manual_seed(0)
    clip = torch.randint(0, 256, (2, 240, 320, 3), dtype=torch.uint8)
    resized = TF.resize(clip.permute(0, 3, 1, 2), list(expected_hw), antialias=True)  # (T, C, h, w) uint8
    top, left = int(round((expected_hw[0] - 112) / 2.0)), int(round((expected_hw[1] - 112) / 2.0))
    cropped = resized[:, :, top:top + 112, left:left + 112].float() / 255
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    expected = ((cropped - mean) / std).permute(1, 0, 2, 3)
    out = input_transform(spec)(clip)
    assert out.shape == (3, 2, 112, 112)
    assert torch.allclose(out, expected, atol=1e-5)


def test_a_resize_smaller_than_the_crop_is_refused():
    with pytest.raises(InvalidValueError, match="smaller than the crop"):
        eval_transform(SPEC, size=112, resize=(100, 171))
