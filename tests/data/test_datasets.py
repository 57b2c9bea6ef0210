from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from snl_video.data.datasets import ClipDataset, TooManyDecodeFailures, VideoEntry, prepared_dataset, video_file_dataset
from snl_video.data.decoding import DecodeError
from snl_video.data.prepare import PrepareSettings, prepare_ucf101
from snl_video.data.transforms import TORCHVISION_KINETICS_NORMALIZATION, eval_transform, train_transform
from snl_video.data.ucf101 import read_split


@pytest.fixture(scope="module")
def prepared(synthetic_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare_ucf101(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", out, progress=False,
                   settings=PrepareSettings(storage="npy"))  # the tests read the raw .npy files
    return out


def test_prepared_dataset_len_labels_and_shapes(prepared, synthetic_tree):
    table = read_split(synthetic_tree / "ucfTrainTestlist", 2)
    for subset in ("train", "test"):
        ds = prepared_dataset(prepared, split=2, subset=subset, transform=train_transform(TORCHVISION_KINETICS_NORMALIZATION))
        rows = table[table["subset"] == subset]
        assert len(ds) == len(rows)
        assert sorted(ds.labels) == sorted(rows["label"])
    item = ds[0]
    assert item["clip"].shape == (3, 16, 112, 112) and item["clip"].dtype == torch.float32
    assert item["label"] == ds.labels[0] and item["index"] == 0


def test_clip_and_video_modes(prepared):
    clip = prepared_dataset(prepared, subset="test", mode="clip", transform=eval_transform(TORCHVISION_KINETICS_NORMALIZATION))
    video = prepared_dataset(prepared, subset="test", mode="video", num_clips=5,
                             transform=eval_transform(TORCHVISION_KINETICS_NORMALIZATION, crops=3))
    assert clip[1]["clip"].shape == (3, 16, 112, 112)
    assert video[1]["clip"].shape == (15, 3, 16, 112, 112)
    assert torch.equal(clip[1]["clip"], clip[1]["clip"])  # test mode is deterministic


def test_prepared_clip_matches_decoding_the_avi(prepared, synthetic_tree):
    # the centre clip read from the prepared file equals the same frames decoded from the AVI
    from torchvision.transforms.v2 import functional as F

    from snl_video.data.decoding import read_frames
    from snl_video.data.sampling import center_clip

    ds = prepared_dataset(prepared, subset="test", mode="clip")
    table = read_split(synthetic_tree / "ucfTrainTestlist", 1)
    path = table[table["subset"] == "test"].iloc[0]["path"]
    entry = ds.videos[0]
    assert entry.path.endswith(Path(path).with_suffix(".npy").as_posix())
    indices = center_clip(entry.video_frames, num_frames=16)[0]
    decoded = read_frames(synthetic_tree / "UCF-101" / path, indices).permute(0, 3, 1, 2)
    expected = F.resize(decoded, [128, 171], antialias=True).permute(0, 2, 3, 1)
    assert torch.equal(ds[0]["clip"], expected)


def test_distributed_sampler_partitions_the_videos(prepared):
    ds = prepared_dataset(prepared, subset="train", transform=train_transform(TORCHVISION_KINETICS_NORMALIZATION))
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=0)
        for batch in loader:
            assert batch["clip"].shape[1:] == (3, 16, 112, 112)
            seen += batch["index"].tolist()
    assert sorted(seen) == list(range(len(ds)))  # 8 videos, 2 ranks: no padding needed


def _fake(num_videos: int, bad: set[int]):
    videos = [VideoEntry(str(i), label=i % 3, video_frames=20) for i in range(num_videos)]

    def read(entry, indices):
        if int(entry.path) in bad:
            raise DecodeError(f"video {entry.path} is broken")
        return torch.full((len(indices), 4, 4, 3), int(entry.path), dtype=torch.uint8)

    return videos, read


def test_train_failures_are_counted_replaced_and_fatal_above_threshold():
    videos, read = _fake(100, bad={3, 50})
    ds = ClipDataset(videos, read, mode="train", max_failure_fraction=0.02)
    item = ds[3]
    assert item["index"] == 4 and int(item["clip"][0, 0, 0, 0]) == 4  # replaced by the next video
    assert ds.failure_report()["failures"] == 1
    ds[50]
    assert ds.failure_report() == {"reads": 4, "failures": 2, "allowed": 2}
    with pytest.raises(TooManyDecodeFailures, match="3 decode failures, more than the 2 allowed"):
        ds[3]


def test_failure_count_is_shared_by_loader_workers():
    videos, read = _fake(10, bad={1, 2, 7})
    ds = ClipDataset(videos, read, mode="train", max_failure_fraction=0.5)
    loader = DataLoader(ds, batch_size=1, num_workers=2)
    assert len(list(loader)) == 10
    assert ds.failure_report()["failures"] == 4  # 1 -> 2 -> 3 (two), 2 -> 3, 7 -> 8: counted across both processes


def test_default_threshold_is_zero_and_test_mode_raises():
    videos, read = _fake(10, bad={0})
    with pytest.raises(TooManyDecodeFailures):
        ClipDataset(videos, read, mode="train")[0]
    with pytest.raises(DecodeError, match="video 0 is broken"):
        ClipDataset(videos, read, mode="clip", max_failure_fraction=1.0)[0]


def test_a_broken_test_video_is_an_error_naming_it_once_and_the_way_out():
    videos, _ = _fake(4, bad=set())

    def read(entry, indices):
        raise DecodeError(f"/data/UCF-101/{entry.path}.avi: Invalid data found when processing input")

    with pytest.raises(DecodeError) as info:
        ClipDataset(videos, read, mode="video")[2]
    message = str(info.value)
    assert message.count("/data/UCF-101/2.avi") == 1  # old: the path twice, no way out
    assert "remove it from the split list" in message and "snl-video prepare" in message


def test_video_file_dataset_counts_a_broken_avi(synthetic_tree, tmp_path):
    tree = tmp_path / "t"
    shutil.copytree(synthetic_tree, tree)
    table = read_split(tree / "ucfTrainTestlist", 1)
    broken = table[table["subset"] == "train"].iloc[0]["path"]
    (tree / "UCF-101" / broken).write_bytes(b"")
    ds = video_file_dataset(tree / "UCF-101", tree / "ucfTrainTestlist", split=1, backend="pyav",
                            transform=train_transform(TORCHVISION_KINETICS_NORMALIZATION), max_failure_fraction=0.2)
    assert len(ds) == (table["subset"] == "train").sum()
    assert ds[0]["index"] == 1 and ds.failure_report()["failures"] == 1


def test_unprepared_split_and_bad_arguments(prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished prepared directory"):
        prepared_dataset(tmp_path)
    with pytest.raises(ValueError, match="mode must be"):
        prepared_dataset(prepared, mode="eval")


def test_works_with_spawned_loader_workers(prepared, synthetic_tree):
    # spawn pickles the dataset: the reader and the shared counters must survive it
    import pickle

    pickle.dumps(prepared_dataset(prepared, subset="test").read)
    ds = video_file_dataset(synthetic_tree / "UCF-101", synthetic_tree / "ucfTrainTestlist", subset="test", mode="clip",
                            backend="pyav", transform=eval_transform(TORCHVISION_KINETICS_NORMALIZATION))
    loader = DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    assert sum(len(b["label"]) for b in loader) == len(ds)
    assert ds.failure_report()["reads"] == len(ds)  # counted in the worker, visible here


def test_epoch_seed_makes_each_item_independent_of_workers_and_order(prepared):
    # After set_epoch_seed every random draw of item i (clip start, crop, flip) depends on
    # (seed, i) only: the same clips in any order, from any number of loader workers.
    ds = prepared_dataset(prepared, subset="train", transform=train_transform(TORCHVISION_KINETICS_NORMALIZATION, size=64))
    ds.set_epoch_seed(123)
    order = [5, 0, 3, 1]
    direct = {i: ds[i]["clip"] for i in reversed(order)}
    torch.manual_seed(999)  # the global generator must not matter
    loader = DataLoader(torch.utils.data.Subset(ds, order), batch_size=2, num_workers=2)
    batched = torch.cat([b["clip"] for b in loader])
    for k, i in enumerate(order):
        assert torch.equal(batched[k], direct[i]), i
    # reading an item leaves the caller's generator where it was
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    ds[2]
    assert torch.equal(torch.rand(3), expected)
    # another epoch seed draws other clips; no seed: the global generators (two reads differ)
    ds.set_epoch_seed(124)
    assert not all(torch.equal(ds[i]["clip"], direct[i]) for i in order)
    ds.set_epoch_seed(None)
    assert not torch.equal(ds[0]["clip"], ds[0]["clip"])


def test_video_entry_reads_and_accepts_its_old_frame_count_name_for_one_release():
    with pytest.warns(DeprecationWarning, match="'num_frames' is deprecated, use 'video_frames'"):
        entry = VideoEntry("a.avi", 1, num_frames=20)
    assert entry == VideoEntry("a.avi", 1, video_frames=20)
    with pytest.warns(DeprecationWarning, match=r"VideoEntry\.num_frames"):
        assert entry.num_frames == 20


def test_clip_dataset_accepts_and_reads_the_old_name_of_the_clip_length_for_one_release():
    videos, read = _fake(2, bad=set())
    with pytest.warns(DeprecationWarning, match="ClipDataset\\(\\): 'clip_len' is deprecated, use 'num_frames'"):
        ds = ClipDataset(videos, read, mode="clip", clip_len=6)
    assert ds.num_frames == 6 and ds[0]["clip"].shape[0] == 6
    with pytest.warns(DeprecationWarning, match=r"ClipDataset\.clip_len"):
        assert ds.clip_len == 6
