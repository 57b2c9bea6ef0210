"""The prepare job: statuses of broken videos, missing videos, resume, interruption, parallel determinism."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from snl_video.cli import main
from snl_video.data.decoding import decode_all
from snl_video.data.prepare import MissingVideosError, PrepareSettings, prepare_ucf101
from snl_video.data.synthetic import encode_avi

REPO = Path(__file__).resolve().parents[2]


def _videos(tree: Path) -> list[str]:
    return sorted(p.relative_to(tree / "UCF-101").as_posix() for p in (tree / "UCF-101").rglob("*.avi"))


def _run(tree: Path, out: Path, *, settings: PrepareSettings = PrepareSettings(storage="npy"), **kwargs) -> dict:
    """``prepare_ucf101`` on ``tree``; raw ``.npy`` frames unless ``settings`` say otherwise (the
    tests here compare stored pixels exactly; the ``.jpegs`` tests ask for that storage)."""
    return prepare_ucf101(tree / "UCF-101", tree / "ucfTrainTestlist", out, progress=False, settings=settings, **kwargs)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _garble_payloads(path: Path) -> None:
    """Keep the AVI structure, replace every video packet's bytes with noise."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    pos = data.find(b"movi") + 4
    while (j := data.find(b"00dc", pos)) >= 0:
        size = int.from_bytes(data[j + 4 : j + 8], "little")
        data[j + 8 : j + 8 + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        pos = j + 8 + size
    path.write_bytes(bytes(data))


def _reference_prepared(path: Path, short_side=128) -> np.ndarray:
    """Independent of the job: decode sequentially, resize with torchvision."""
    frames = torch.from_numpy(decode_all(path)).permute(0, 3, 1, 2)
    return F.resize(frames, [short_side, 171], antialias=True).permute(0, 2, 3, 1).numpy()


def test_every_broken_kind_gets_its_status_and_never_stops_the_run(tree, tmp_path):
    videos = _videos(tree)
    root = tree / "UCF-101"
    empty, text, truncated, garbled, short = videos[0], videos[3], videos[5], videos[7], videos[9]
    (root / empty).write_bytes(b"")
    (root / text).write_text("this is not a video\n")
    full = (root / truncated).read_bytes()
    original_truncated = tmp_path / "orig.avi"
    original_truncated.write_bytes(full)
    (root / truncated).write_bytes(full[: len(full) // 2])
    _garble_payloads(root / garbled)
    encode_avi(np.full((10, 240, 320, 3), 90, np.uint8), root / short)

    out = tmp_path / "out"
    report = _run(tree, out)
    by_path = {r["path"]: r for r in report["videos"]}
    assert sorted(by_path) == videos  # an entry for every listed, found video
    expected = {empty: "empty_file", text: "not_a_video", truncated: "truncated", garbled: "undecodable", short: "short"}
    assert {v: by_path[v]["status"] for v in expected} == expected
    assert all(by_path[v]["status"] == "ok" for v in videos if v not in expected)
    assert all(by_path[v]["reason"] for v in expected)
    assert report["counts"] == {"ok": 7, "empty_file": 1, "not_a_video": 1, "truncated": 1, "undecodable": 1, "short": 1}
    assert json.loads((out / "report.json").read_text()) == report

    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert sorted(index["path"]) == sorted(v for v in videos if by_path[v]["status"] in ("ok", "short", "truncated"))
    # the truncated video keeps exactly the frames before the damage
    kept = np.load(out / "videos" / Path(truncated).with_suffix(".npy"))
    reference = _reference_prepared(original_truncated)
    assert 0 < len(kept) < len(reference)
    np.testing.assert_array_equal(kept, reference[: len(kept)])
    assert not (out / "videos" / Path(garbled).with_suffix(".npy")).exists()


def test_prepared_frames_equal_an_independent_decode_and_resize(tree, tmp_path):
    out = tmp_path / "out"
    _run(tree, out, splits=[1])
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert set(index.columns) >= {"subset_1"} and "subset_2" not in index.columns
    for row in index.itertuples():
        stored = np.load(out / row.frames_file)
        assert stored.shape == (row.video_frames, 128, 171, 3) == (row.video_frames, row.height, row.width, 3)
        np.testing.assert_array_equal(stored, _reference_prepared(tree / "UCF-101" / row.path))


def test_missing_videos_are_an_error_listing_them_unless_allowed(tree, tmp_path):
    gone = _videos(tree)[2]
    (tree / "UCF-101" / gone).unlink()
    with pytest.raises(MissingVideosError, match=gone.replace(".", r"\.")):
        _run(tree, tmp_path / "out")
    assert not (tmp_path / "out" / "index.csv").exists()
    report = _run(tree, tmp_path / "out", allow_missing=True)
    assert report["missing"] == [gone] and len(report["videos"]) == 11
    assert gone not in set(pd.read_csv(tmp_path / "out" / "index.csv")["path"])
    # the CLI turns it into one line and exit code 2
    code = main(["prepare", "ucf101", "--videos", str(tree / "UCF-101"), "--splits", str(tree / "ucfTrainTestlist"),
                 "--out", str(tmp_path / "cli"), "--no-progress"])
    assert code == 2


def test_rerun_skips_finished_videos_and_writes_the_same_files(tree, tmp_path):
    out = tmp_path / "out"
    _run(tree, out)
    first = _snapshot(out)
    # Back-date every finished file instead of sleeping: a rewrite then shows as a new mtime on
    # any filesystem, whatever its timestamp granularity and however loaded the machine is.
    old = 1_000_000_000 * 10**9  # 2001-09-09, in ns
    for p in first:
        if p.startswith("videos/"):
            os.utime(out / p, ns=(old, old))
    mtimes = {p: (out / p).stat().st_mtime_ns for p in first if p.startswith("videos/")}
    assert mtimes and set(mtimes.values()) == {old}
    _run(tree, out)
    assert _snapshot(out) == first
    assert {p: (out / p).stat().st_mtime_ns for p in mtimes} == mtimes  # nothing re-done


def test_workers_give_the_same_files_as_one_process(tree, tmp_path):
    _run(tree, tmp_path / "one", workers=1)
    _run(tree, tmp_path / "two", workers=2)
    assert _snapshot(tmp_path / "one") == _snapshot(tmp_path / "two")


def test_leftovers_of_a_killed_run_are_never_taken_for_complete(tree, tmp_path):
    clean = tmp_path / "clean"
    _run(tree, clean)
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    videos = _videos(tree)
    # killed while writing a frames file: a partial temporary, no record
    npy = out / "videos" / Path(videos[0]).with_suffix(".npy")
    (npy.parent / (npy.name + ".tmp-999")).write_bytes(npy.read_bytes()[:1000])
    npy.unlink()
    (out / "videos" / Path(videos[0]).with_suffix(".json")).unlink()
    # killed between the frames file and its record
    (out / "videos" / Path(videos[1]).with_suffix(".json")).unlink()
    # killed while writing the index
    (out / "index.csv.tmp-999").write_text("path\n")
    _run(tree, out)
    assert _snapshot(out) == _snapshot(clean)


def test_sigkill_at_a_random_moment_then_resume(tree, tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys; from snl_video.data.prepare import PrepareSettings, prepare_ucf101; "
        f"prepare_ucf101({str(tree / 'UCF-101')!r}, {str(tree / 'ucfTrainTestlist')!r}, {str(out)!r}, progress=False, "
        "settings=PrepareSettings(storage='npy'))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 60  # a bound on the wait only: the kill comes whenever it ends
    while not list(out.rglob("*.json"))[3:] and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # whatever exists under a final name is complete
    for npy in out.rglob("*.npy"):
        assert np.load(npy).ndim == 4
    for record in (out / "videos").rglob("*.json"):
        rec = json.loads(record.read_text())
        if rec["status"] == "ok":
            assert np.load(record.with_suffix(".npy")).shape[0] == rec["video_frames"]
    _run(tree, out)
    _run(tree, tmp_path / "clean")
    assert _snapshot(out) == _snapshot(tmp_path / "clean")


def test_settings_must_match_on_resume_and_skip_policy(tree, tmp_path):
    root = tree / "UCF-101"
    short = _videos(tree)[4]
    encode_avi(np.full((10, 240, 320, 3), 90, np.uint8), root / short)
    out = tmp_path / "out"
    report = _run(tree, out, settings=PrepareSettings(short_videos="skip", storage="npy"))
    assert {r["path"]: r["status"] for r in report["videos"]}[short] == "too_short"
    assert short not in set(pd.read_csv(out / "index.csv")["path"])
    with pytest.raises(ValueError, match="use a new --output-dir or the same settings"):
        _run(tree, out)


def test_a_second_prepare_on_the_same_out_is_refused(tree, tmp_path, capsys):
    import subprocess
    import sys

    from snl_video.data.prepare import PrepareBusyError

    out = tmp_path / "out"
    # another live process holds the folder's lock (snl_video.locking.output_lock)
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom snl_video.locking import output_lock\n"
                               f"with output_lock({str(out)!r}, 'prepare'):\n print('held', flush=True)\n "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PrepareBusyError, match=f"in use by `snl-video prepare` \\(PID {holder.pid} "):
            _run(tree, out)
        args = ["prepare", "ucf101", "--videos", str(tree / "UCF-101"), "--splits", str(tree / "ucfTrainTestlist"),
                "--out", str(out), "--no-progress"]
        assert main(args) == 2
        assert f"PID {holder.pid}" in capsys.readouterr().err
        assert not (out / "index.csv").exists()
    finally:
        holder.communicate("")
    assert main(args) == 0  # lock released
    assert not (out / ".snl_video.lock").exists()


def test_handstand_quirk_end_to_end(tmp_path):
    # folder HandstandPushups, files v_HandStandPushups_*: the label comes from the folder
    root = tmp_path / "UCF-101"
    frames = np.full((18, 240, 320, 3), 70, np.uint8)
    for rel in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi",
                "HandstandPushups/v_HandStandPushups_g01_c01.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        encode_avi(frames, root / rel)
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    for split in (1, 2, 3):
        (lists / f"trainlist0{split}.txt").write_bytes(
            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n")
        (lists / f"testlist0{split}.txt").write_bytes(b"HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n")
    prepare_ucf101(root, lists, tmp_path / "out", progress=False)
    index = pd.read_csv(tmp_path / "out" / "index.csv", keep_default_na=False).set_index("path")
    assert index.loc["HandstandPushups/v_HandStandPushups_g01_c01.avi", "label"] == 1
    assert index.loc["HandstandPushups/v_HandStandPushups_g01_c01.avi", "subset_1"] == "test"
    assert (tmp_path / "out" / index.loc["HandstandPushups/v_HandStandPushups_g08_c01.avi", "frames_file"]).is_file()


def _parse_jpegs_by_hand(path: Path) -> list[bytes]:
    """The documented .jpegs layout, restated: magic, uint32 T, uint16 H, uint16 W, int64 offsets[T+1], bytes."""
    import struct

    data = path.read_bytes()
    assert data[:8] == b"SNLJPEG1"
    count, _height, _width = struct.unpack("<IHH", data[8:16])
    offsets = struct.unpack(f"<{count + 1}q", data[16 : 16 + 8 * (count + 1)])
    start = 16 + 8 * (count + 1)
    assert start + offsets[-1] == len(data)
    return [data[start + a : start + b] for a, b in zip(offsets, offsets[1:])]


def test_jpeg_storage_holds_the_raw_frames_as_jpegs(tree, tmp_path):
    import warnings

    import torch
    from torchvision.io import decode_jpeg

    from snl_video.data.prepared import read_clip

    _run(tree, tmp_path / "npy", splits=[1])
    code = main(["prepare", "ucf101", "--videos", str(tree / "UCF-101"), "--splits", str(tree / "ucfTrainTestlist"),
                 "--out", str(tmp_path / "jpeg"), "--split", "1", "--storage", "jpeg", "--jpeg-quality", "90",
                 "--no-progress"])
    assert code == 0
    raw = pd.read_csv(tmp_path / "npy" / "index.csv", keep_default_na=False)
    packed = pd.read_csv(tmp_path / "jpeg" / "index.csv", keep_default_na=False)
    assert packed.drop(columns="frames_file").equals(raw.drop(columns="frames_file"))
    assert all(f.endswith(".jpegs") for f in packed["frames_file"])
    raw_bytes = packed_bytes = 0
    for r, p in zip(raw.itertuples(), packed.itertuples()):
        frames = np.load(tmp_path / "npy" / r.frames_file)
        path = tmp_path / "jpeg" / p.frames_file
        raw_bytes += frames.nbytes
        packed_bytes += path.stat().st_size
        everything = read_clip(path, list(range(p.video_frames))).numpy()
        assert everything.shape == frames.shape and everything.dtype == np.uint8
        error = np.abs(everything.astype(np.float64) - frames)
        psnr = 10 * np.log10(255.0**2 / (error**2).mean())
        assert psnr > 30.0, psnr  # lossy, but close to the raw frames at quality 90
        # the container is what the docs say: another JPEG decoder (torchvision's libjpeg-turbo)
        # reads every frame of the hand-parsed file as read_clip (PIL) does
        blobs = _parse_jpegs_by_hand(path)
        assert len(blobs) == p.video_frames
        for k in (0, p.video_frames // 2, p.video_frames - 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                other = decode_jpeg(torch.frombuffer(bytearray(blobs[k]), dtype=torch.uint8)).permute(1, 2, 0).numpy()
            assert np.abs(other.astype(int) - everything[k]).max() <= 2  # IDCT rounding of two libjpeg builds
        # a strided, loop-padded clip is the same frames, in order, with repeats
        clip = [3, 0, 5, 5, p.video_frames - 1, 0]
        assert np.array_equal(read_clip(path, clip).numpy(), everything[clip])
    assert packed_bytes < 0.35 * raw_bytes, packed_bytes / raw_bytes


@pytest.mark.parametrize("decoder", ["default", "pil"])
def test_jpeg_clip_reads_match_pil_on_the_hand_parsed_container(tmp_path, monkeypatch, decoder):
    """The fast reader (positioned reads of the clip's byte range, torchcodec's batched decode)
    and its PIL fallback return, for any index pattern, exactly what PIL decodes from the
    hand-parsed container; 600 frames put the offsets table past the reader's first read."""
    import io

    from PIL import Image

    import snl_video.data.prepared as prepared

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (600, 16, 24, 3), dtype=np.uint8)
    path = tmp_path / "v.jpegs"
    prepared.save_jpeg_frames(path, frames)
    assert 16 + 8 * 601 > prepared.HEAD_READ_BYTES
    expected = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in _parse_jpegs_by_hand(path)])
    if decoder == "pil":  # also the seek + read path of platforms without os.pread/preadv (Windows)
        monkeypatch.setattr(prepared, "jpeg_decoder", lambda: prepared.pil_decode)
        monkeypatch.delattr(os, "preadv")
        monkeypatch.delattr(os, "pread")
    for clip in ([0], list(range(584, 600)), list(range(100, 132, 2)), [7, 3, 3, 599, 0, 7]):
        got = prepared.read_clip(path, clip)
        assert got.dtype == torch.uint8 and got.is_contiguous() and tuple(got.shape) == (len(clip), 16, 24, 3)
        assert np.array_equal(got.numpy(), expected[clip]), clip


def test_a_damaged_jpegs_file_is_a_clear_decode_error(tree, tmp_path):
    from snl_video.data.datasets import prepared_dataset
    from snl_video.data.decoding import DecodeError
    from snl_video.data.prepared import read_clip

    out = tmp_path / "jpeg"
    _run(tree, out, splits=[1], settings=PrepareSettings(storage="jpeg"))
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    files = [out / f for f in index[index["subset_1"] == "train"]["frames_file"]]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated .jpegs file; prepare the video again"):
        read_clip(files[0], [0, 1])
    files[1].write_bytes(b"not a frame file at all")
    with pytest.raises(DecodeError, match="not a .jpegs frame file"):
        read_clip(files[1], [0])
    blobs = _parse_jpegs_by_hand(files[2])
    damaged = bytearray(files[2].read_bytes())
    start = len(damaged) - sum(len(b) for b in blobs)
    damaged[start:] = b"\x00" * (len(damaged) - start)  # every JPEG zeroed, the container intact
    files[2].write_bytes(bytes(damaged))
    with pytest.raises(DecodeError, match="does not decode"):
        read_clip(files[2], [0, 1])
    with pytest.raises(IndexError, match="outside"):
        read_clip(files[3], [10**6])
    # in training, damaged files are counted and replaced like undecodable videos
    ds = prepared_dataset(out, subset="train", max_failure_fraction=0.5)
    assert ds[0]["index"] == 3 and ds.failure_report()["failures"] == 3


def test_storage_settings_are_validated_and_fixed_per_directory(tree, tmp_path):
    with pytest.raises(ValueError, match="storage must be one of"):
        PrepareSettings(storage="png")
    with pytest.raises(ValueError, match="jpeg_quality"):
        PrepareSettings(storage="jpeg", jpeg_quality=0)
    # every prepared folder records its storage (and the JPEG quality, which only .jpegs has)
    assert PrepareSettings(storage="npy").as_dict()["storage"] == "npy"
    assert "jpeg_quality" not in PrepareSettings(storage="npy").as_dict()
    _run(tree, tmp_path / "out", splits=[1], settings=PrepareSettings(storage="jpeg"))
    assert json.loads((tmp_path / "out" / "settings.json").read_text())["storage"] == "jpeg"
    with pytest.raises(ValueError, match=r"was prepared with other settings: jpeg_quality 90 \(prepared\) vs None "
                                         r"\(now\), storage 'jpeg' \(prepared\) vs 'npy' \(now\).*--storage jpeg"):
        _run(tree, tmp_path / "out", splits=[1], settings=PrepareSettings(storage="npy"))


def test_a_folder_prepared_before_storage_was_recorded_is_read_as_npy(tree, tmp_path):
    out = tmp_path / "old"
    _run(tree, out, splits=[1], settings=PrepareSettings(storage="npy"))
    # settings.json as written before the storage was recorded: no storage key
    settings = json.loads((out / "settings.json").read_text())
    del settings["storage"]
    (out / "settings.json").write_text(json.dumps(settings))
    before = {f: b for f, b in _snapshot(out).items() if f != "settings.json"}
    # the new default (.jpegs) is refused, naming the storage to re-run with
    with pytest.raises(ValueError, match=r"storage 'npy' \(prepared\) vs 'jpeg' \(now\).*--storage npy"):
        _run(tree, out, splits=[1], settings=PrepareSettings())
    # re-run as .npy: resumed, nothing rewritten, the storage now recorded
    _run(tree, out, splits=[1], settings=PrepareSettings(storage="npy"))
    assert {f: b for f, b in _snapshot(out).items() if f != "settings.json"} == before
    assert json.loads((out / "settings.json").read_text())["storage"] == "npy"


def test_prepare_defaults_to_jpegs_and_npy_is_an_option(tree, tmp_path):
    import inspect

    import snl_video

    assert PrepareSettings().storage == "jpeg"
    assert inspect.signature(snl_video.prepare).parameters["storage"].default == "jpeg"
    inputs = {"videos": str(tree / "UCF-101"), "splits": str(tree / "ucfTrainTestlist"), "split": "1"}
    cli = ["prepare", "ucf101", "--videos", inputs["videos"], "--splits", inputs["splits"], "--split", "1",
           "--no-progress", "--output-dir"]
    # the Python API and the command line, no storage named: packed JPEGs
    snl_video.prepare("ucf101", output_dir=tmp_path / "api", options=inputs, progress=False)
    assert main([*cli, str(tmp_path / "cli")]) == 0
    # --storage npy / storage="npy": raw frames
    assert main([*cli, str(tmp_path / "cli_npy"), "--storage", "npy"]) == 0
    snl_video.prepare("ucf101", output_dir=tmp_path / "api_npy", options=inputs, storage="npy", progress=False)
    for name, storage, suffix in [("api", "jpeg", ".jpegs"), ("cli", "jpeg", ".jpegs"), ("cli_npy", "npy", ".npy"),
                                  ("api_npy", "npy", ".npy")]:
        out = tmp_path / name
        assert json.loads((out / "settings.json").read_text())["storage"] == storage, name
        index = pd.read_csv(out / "index.csv", keep_default_na=False)
        assert len(index) > 0 and all(f.endswith(suffix) for f in index["frames_file"]), name
        assert all((out / f).is_file() for f in index["frames_file"]), name
        assert not list((out / "videos").rglob("*.npy" if storage == "jpeg" else "*.jpegs")), name
    code = main(["prepare", "ucf101", "--videos", str(tree / "UCF-101"), "--splits", str(tree / "ucfTrainTestlist"),
                 "--out", str(tmp_path / "q"), "--storage", "jpeg", "--jpeg-quality", "101", "--no-progress"])
    assert code == 2


def test_a_format_1_folder_reads_under_the_new_names_and_a_rerun_upgrades_it(tree, tmp_path):
    from snl_video.data.prepare import read_prepared_settings
    from snl_video.data.prepared import FORMAT_VERSION, load_index

    out = tmp_path / "old"
    _run(tree, out, splits=[1])
    current = _snapshot(out)
    assert FORMAT_VERSION == 2 and json.loads(current["settings.json"])["num_frames"] == 16
    # the folder as format 1 wrote it: the clip length was clip_len, a video's frame count num_frames
    splits = json.loads(current["settings.json"])["splits"]
    (out / "settings.json").write_text(json.dumps({"clip_len": 16, "format_version": 1, "short_side": 128,
                                                   "short_videos": "loop", "storage": "npy", "splits": splits}))
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    index.rename(columns={"video_frames": "num_frames"}).to_csv(out / "index.csv", index=False)
    for record in (out / "videos").rglob("*.json"):
        data = json.loads(record.read_text())
        data["num_frames"] = data.pop("video_frames")
        record.write_text(json.dumps(data))

    settings = read_prepared_settings(out)
    assert settings["num_frames"] == 16 and "clip_len" not in settings and settings["format_version"] == 2
    pd.testing.assert_frame_equal(load_index(out), index)
    # a re-run with the same settings resumes (nothing decoded again) and writes format 2
    old = 1_000_000_000 * 10**9
    frames = [p for p in out.rglob("*.npy")]
    for p in frames:
        os.utime(p, ns=(old, old))
    _run(tree, out, splits=[1])
    assert all(p.stat().st_mtime_ns == old for p in frames)
    assert _snapshot(out) == current


def test_prepare_settings_accept_the_old_name_of_the_clip_length_for_one_release():
    with pytest.warns(DeprecationWarning, match="'clip_len' is deprecated, use 'num_frames'"):
        settings = PrepareSettings(clip_len=8, storage="npy")
    assert settings == PrepareSettings(num_frames=8, storage="npy")
    assert settings.as_dict()["num_frames"] == 8 and "clip_len" not in settings.as_dict()
    with pytest.warns(DeprecationWarning, match=r"PrepareSettings\.clip_len"):
        assert settings.clip_len == 8
