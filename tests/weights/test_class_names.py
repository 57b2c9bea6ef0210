"""Class names of the registry entries, in head order, and predict naming Kinetics classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.video import R3D_18_Weights
from torchvision.transforms.v2 import functional as TF

from snl_video.cli import main
from snl_video.data.decoding import read_frames
from snl_video.data.sampling import center_clip
from snl_video.data.synthetic import encode_avi
from snl_video.models import build_model
from snl_video.weights.class_names import IMAGENET1K, KINETICS400, KINETICS700
from snl_video.weights.registry import WEIGHTS, get_weights, validate_entry

from .sources import save_hara2017


def test_kinetics400_is_torchvisions_list():
    assert list(KINETICS400) == R3D_18_Weights.KINETICS400_V1.meta["categories"]


def test_imagenet1k_is_torchvisions_list():
    from torchvision.models import ResNet50_Weights

    assert list(IMAGENET1K) == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def test_kinetics700_is_sorted_and_unique():
    assert len(KINETICS700) == len(set(KINETICS700)) == 700 and list(KINETICS700) == sorted(KINETICS700)
    # the 2020 release's names keep Kinetics-400's spelling where the class carried over
    assert {"abseiling", "zumba", "passing American football (in game)"} <= set(KINETICS700)


@pytest.mark.parametrize("entry", WEIGHTS, ids=lambda e: e.name)
def test_every_entry_has_its_head_order_or_says_why_not(entry):
    assert validate_entry(entry) == []
    if entry.name == "r3d50.hara2020_kmit" or entry.format == "bat_video":
        assert entry.class_names is None and "No class order" in entry.notes
        return
    expected = {"kinetics400": KINETICS400, "kinetics700": KINETICS700, "imagenet": IMAGENET1K}[entry.dataset]
    assert entry.class_names == expected and len(entry.class_names) == entry.num_classes


def _video(path, frames=20, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 255, size=(frames, 120, 160, 3), dtype=np.uint8)
    encode_avi(data, path)
    return path


def test_predict_with_a_registry_name_prints_kinetics_names_and_feeds_the_2017_input(tmp_path, monkeypatch, capsys):
    """r3d18.hara2017_k400 from the offline cache: 0-255 pixels minus the ActivityNet mean, 16 x 112."""
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    torch.manual_seed(0)
    source = build_model("r3d18", num_classes=400, shortcut="A").eval()
    torch.nn.init.normal_(source.fc.weight, std=0.5)
    save_hara2017(source, tmp_path / "resnet-18-kinetics.pth")
    video = _video(tmp_path / "v.avi")
    out = tmp_path / "p.json"
    assert main(["predict", "--weights", "r3d18.hara2017_k400", str(video), "--clips", "1", "--top-k", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    import json

    top = json.loads(out.read_text())["predictions"][0]["top_k"]
    assert all(t["class"] in KINETICS400 for t in top) and top[0]["class"] in printed
    # independent restatement of the entry's input: centre 16-frame clip, short side 112, centre crop,
    # pixels 0..255 minus the mean (no std), then softmax
    entry = get_weights("r3d18.hara2017_k400")
    frames = read_frames(video, center_clip(20, num_frames=16, stride=1)[0]).permute(0, 3, 1, 2)
    frames = TF.center_crop(TF.resize(frames, 112, antialias=True), 112).float()
    x = (frames - torch.tensor(entry.input_spec.mean).view(1, 3, 1, 1)).permute(1, 0, 2, 3)[None]
    with torch.no_grad():
        probs = torch.softmax(source(x), 1)[0]
    best = torch.argsort(probs, descending=True)[:3]
    assert [t["class"] for t in top] == [KINETICS400[i] for i in best]
    np.testing.assert_allclose([t["probability"] for t in top], probs[best].numpy(), rtol=1e-3, atol=1e-6)


def test_predict_with_a_foreign_torchvision_file_names_kinetics_classes(tmp_path, capsys, caplog):
    from torchvision.models.video import r3d_18

    torch.manual_seed(1)
    tv = r3d_18(num_classes=400).eval()
    path = tmp_path / "my_r3d18.pth"
    torch.save(tv.state_dict(), path)
    video = _video(tmp_path / "v.avi", frames=18, seed=2)
    with caplog.at_level("WARNING", logger="snl_video.engine.loading"):
        assert main(["predict", "--weights", str(path), str(video), "--clips", "1", "--crops", "1", "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split(".", 1)[1].rsplit(" ", 1)[0].strip() in KINETICS400
    # torchvision's weights were published on clips resampled to 15 fps, which is not applied: said, not silent
    (warning,) = [r.getMessage() for r in caplog.records if "resampled to 15 fps" in r.getMessage()]
    assert "16-frame clip spans 0.64 s instead of 1.07 s" in warning


def test_class_names_file_overrides_and_is_checked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNL_VIDEO_CACHE", str(tmp_path))
    names = tmp_path / "names.txt"
    names.write_text("a\nb\n")
    video = _video(tmp_path / "v.avi")
    torch.manual_seed(0)
    save_hara2017(build_model("r3d18", num_classes=400, shortcut="A"), tmp_path / "resnet-18-kinetics.pth")
    assert main(["predict", "--weights", "r3d18.hara2017_k400", str(video), "--class-names", str(names)]) == 2
    assert "lists 2 names for a 400-class head" in capsys.readouterr().err
    names.write_text("\n".join(["a", "b", "a", *(f"c{i}" for i in range(396)), "b"]) + "\n")  # 400 lines, 2 repeated
    assert main(["predict", "--weights", "r3d18.hara2017_k400", str(video), "--class-names", str(names)]) == 2
    assert "lists 'a', 'b' more than once" in capsys.readouterr().err
