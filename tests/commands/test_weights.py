"""`snl-video weights list|inspect|download`."""

from __future__ import annotations

import os

import torch
import torchvision

from snl_video.cli import main
from snl_video.weights.registry import WEIGHTS

from ..weights.layouts import randomise


def test_list_shows_every_entry(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for entry in WEIGHTS:
        assert entry.name in out
    assert "offline: resnet-50-kinetics.pth" in out and "73.27" in out


def test_list_with_a_pattern_that_matches_nothing(capsys):
    assert main(["weights", "list", "vit*"]) == 2
    assert "vit*" in capsys.readouterr().err


def test_inspect_reports_format_classes_and_counts(tmp_path, capsys):
    model = torchvision.models.video.r3d_18(weights=None)
    state = randomise(model.state_dict())
    path = tmp_path / "r3d_18.pth"
    torch.save(state, path)
    assert main(["weights", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.strip() and not line.startswith("meta."))
    assert lines["format"].strip() == "torchvision_video"
    assert lines["classes"].strip() == "400"
    assert lines["tensors"].strip() == str(len(state))
    # torchvision's own count for r3d_18 (its weights meta says 33,371,472 parameters).
    assert lines["parameters"].strip() == f"{sum(p.numel() for p in model.parameters()):,}" == "33,371,472"
    assert "ResNet-18" in lines["architecture"]


def test_inspect_refuses_a_code_running_pickle(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": Evil()}, path)
    assert main(["weights", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--allow-unsafe-pickle" in err and "Traceback" not in err
    assert not marker.exists()


def test_download_uses_a_file_placed_in_the_cache(tmp_path, capsys):
    (tmp_path / "I3D_8x8_R50.pyth").write_bytes(b"placed by hand")
    assert main(["weights", "download", "i3d_r50.pytorchvideo_k400", "--cache-dir", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "I3D_8x8_R50.pyth")


def test_download_of_an_unknown_name_lists_known_ones(capsys):
    assert main(["weights", "download", "nope"]) == 2
    assert "slow_r50.pytorchvideo_k400" in capsys.readouterr().err


def test_inspect_names_the_registered_models_the_tensors_fit(tmp_path, capsys):
    """The architecture line is a guess from key names (it reads torchvision's r3d_18 and mc3_18
    alike, and an X3D as a ResNet-80); `fits models` compares the converted tensors with each
    registered model's."""
    from pytorchvideo.models.x3d import create_x3d

    cases = [
        (torchvision.models.video.mc3_18(weights=None).state_dict(), "mc3_18.pth", "mc3_18"),
        (torchvision.models.video.r3d_18(weights=None).state_dict(), "r3d_18.pth", "r3d_18"),
        ({"model_state": create_x3d(model_num_class=400).state_dict()}, "x3d.pyth", "x3d_xs / x3d_s / x3d_m"),
    ]
    for state, name, expected in cases:
        path = tmp_path / name
        torch.save(state, path)
        assert main(["weights", "inspect", str(path)]) == 0
        out = capsys.readouterr().out
        fits = [line for line in out.splitlines() if line.startswith("fits models")]
        assert len(fits) == 1 and fits[0].split(None, 2)[2].startswith(expected), out
