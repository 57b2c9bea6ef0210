"""weights list shows the cache, inspect names the shortcut, errors speak CLI/YAML."""

from __future__ import annotations

import pytest

from snl_video.cli import main
from snl_video.models import build_model
from snl_video.weights.errors import WeightsLoadError

from ..weights.sources import CLASSES, save_hara2017


def _columns(out: str) -> dict[str, str]:
    """name -> last column of `weights list`."""
    lines = [line for line in out.splitlines() if line and not line.startswith(("name", "cache directory"))]
    return {line.split()[0]: line.split()[-1] for line in lines}


def test_weights_list_shows_which_files_are_in_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    (tmp_path / "resnet-18-kinetics.pth").write_bytes(b"x")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "in cache" in out.splitlines()[0]
    cached = _columns(out)
    assert cached["r3d18.hara2017_k400"] == "yes" and cached["r3d50.hara2017_k400"] == "-"


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_weights_inspect_says_which_shortcut_a_hara_file_has(tmp_path, capsys, shortcut):
    path = tmp_path / "resnet-18-kinetics.pth"
    save_hara2017(build_model("r3d18", num_classes=CLASSES, shortcut=shortcut, widen_factor=0.25), path)
    assert main(["weights", "inspect", str(path)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line.strip())
    assert lines["shortcut"].startswith(shortcut)
    if shortcut == "A":
        assert "model.options.shortcut=A" in lines["shortcut"]


def test_weight_errors_give_the_config_spelling(tmp_path):
    path = tmp_path / "resnet-18-kinetics.pth"
    save_hara2017(build_model("r3d18", num_classes=CLASSES, shortcut="A", widen_factor=0.25), path)
    with pytest.raises(WeightsLoadError, match=r"Set model.options.shortcut=A \(YAML"):
        build_model("r3d18", num_classes=CLASSES, widen_factor=0.25, pretrained=path)
