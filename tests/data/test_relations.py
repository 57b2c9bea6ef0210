"""The relational task: balanced, deterministic, and no class information in any one region at any one time."""

from __future__ import annotations

import numpy as np
import torch

import pytest

from snl_video.data.relations import (COLOURS, RELATION_CLASSES, RELATIONS, make_relations_dataset, quadrant_boxes,
                                      relation_events, render_relations_video)

SIZE, FRAMES = 32, 16
PALETTE = np.array(list(COLOURS.values()), dtype=np.float64)


def _videos(n_per_class: int, seed: int, relation: str) -> tuple[list[np.ndarray], np.ndarray]:
    videos, labels = [], []
    for label in range(len(RELATIONS[relation])):
        for i in range(n_per_class):
            videos.append(render_relations_video(label, np.random.default_rng([seed, label, i]), size=SIZE,
                                                 video_frames=FRAMES, relation=relation))
            labels.append(label)
    return videos, np.array(labels)


def _local_statistics(video: np.ndarray) -> np.ndarray:
    """Per frame and quadrant: mean and std of each channel, and the share of pixels of each palette colour."""
    half = SIZE // 2
    x = video.astype(np.float64).reshape(FRAMES, 2, half, 2, half, 3).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(FRAMES, 4, half * half, 3)  # quadrants in reading order, as quadrant_boxes
    near = np.linalg.norm(x[..., None, :] - PALETTE, axis=-1) < 40  # (T, 4, pixels, colours)
    return np.concatenate([x.mean(2) / 255, x.std(2) / 255, near.mean(2)], axis=-1)  # (T, 4, 10)


def _fit(x: torch.Tensor, y: torch.Tensor, hidden: int = 32, steps: int = 300) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_classes_are_balanced_and_generation_is_deterministic(tmp_path, relation):
    root = make_relations_dataset(tmp_path, videos_per_class=3, size=SIZE, video_frames=8, relation=relation,
                                  progress=False)
    counts = {d.name: len(list(d.glob("*.avi"))) for d in root.iterdir()}
    assert counts == {name: 3 for name in RELATIONS[relation]}
    a = render_relations_video(2, np.random.default_rng([0, 2, 5]), size=SIZE, video_frames=FRAMES)
    b = render_relations_video(2, np.random.default_rng([0, 2, 5]), size=SIZE, video_frames=FRAMES)
    c = render_relations_video(2, np.random.default_rng([1, 2, 5]), size=SIZE, video_frames=FRAMES)
    assert a.shape == (FRAMES, SIZE, SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_statistics_read_the_quadrants_in_reading_order():
    video = np.zeros((FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    for q, (rows, cols) in enumerate(quadrant_boxes(SIZE)):
        video[:, rows, cols] = 10 * (q + 1)
    assert np.allclose(_local_statistics(video)[0, :, 0] * 255, [10, 20, 30, 40])


def test_events_are_far_apart_and_related_as_the_class_says():
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    cycle = {"red": "green", "green": "blue", "blue": "yellow", "yellow": "red"}  # the documented order
    for label in range(4):
        for _ in range(50):
            first, second = relation_events(label, FRAMES, rng, relation="shape_colour")
            assert second.quadrant == 3 - first.quadrant and first.stop <= FRAMES // 2 <= second.start
            assert (first.shape == second.shape) == (label in (0, 1))
            assert (first.colour == second.colour) == (label in (0, 2))
            first, second = relation_events(label, FRAMES, rng)  # colour_shift, the default
            assert second.quadrant == 3 - first.quadrant and first.stop <= FRAMES // 2 <= second.start
            assert first.shape == second.shape == 0
            colour = names[first.colour]
            for _ in range(label):
                colour = cycle[colour]
            assert names[second.colour] == colour, (RELATION_CLASSES[label], names[first.colour])


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_a_per_position_model_is_at_chance_while_a_global_nonlinear_one_is_not(relation):
    train_videos, train_y = _videos(100, seed=0, relation=relation)
    test_videos, test_y = _videos(100, seed=1, relation=relation)
    train_f = np.stack([_local_statistics(v) for v in train_videos])  # (N, T, 4, 10)
    test_f = np.stack([_local_statistics(v) for v in test_videos])
    positions = np.eye(FRAMES * 4)  # the local model knows where and when it looks

    def per_position(f: np.ndarray) -> torch.Tensor:
        n = f.shape[0]
        return torch.tensor(np.concatenate([f.reshape(n * FRAMES * 4, -1), np.tile(positions, (n, 1))], 1),
                            dtype=torch.float32)

    local = _fit(per_position(train_f), torch.tensor(np.repeat(train_y, FRAMES * 4)))
    with torch.no_grad():
        logp = torch.log_softmax(local(per_position(test_f)), 1).reshape(len(test_y), FRAMES * 4, 4)
    per_position_accuracy = (logp.argmax(2).numpy() == test_y[:, None]).mean()
    pooled_accuracy = (logp.sum(1).argmax(1).numpy() == test_y).mean()  # every region's evidence, combined
    chance, sd = 0.25, np.sqrt(0.25 * 0.75 / len(test_y))
    print(f"per position {per_position_accuracy:.3f}, pooled {pooled_accuracy:.3f}")
    assert abs(per_position_accuracy - chance) < 4 * sd, per_position_accuracy
    assert abs(pooled_accuracy - chance) < 4 * sd, pooled_accuracy
    # the statistics do carry the class jointly: a nonlinear read-out of the whole video's colour
    # shares tells "same colour" from "other colour" (shape_colour: half of the class; colour_shift:
    # the step up to its sign, +1 and +3 give the same two colours), far above chance
    def colour_totals(f: np.ndarray) -> torch.Tensor:
        return torch.tensor(f[..., 6:].sum((1, 2)), dtype=torch.float32)

    global_model = _fit(colour_totals(train_f), torch.tensor(train_y), steps=500)
    with torch.no_grad():
        global_accuracy = (global_model(colour_totals(test_f)).argmax(1).numpy() == test_y).mean()
    print(f"global colour read-out {global_accuracy:.3f}")
    assert global_accuracy > chance + 6 * sd, global_accuracy


def test_the_cli_writes_the_class_folders_and_names_the_prepare_command(tmp_path, capsys):
    from snl_video.cli import main

    assert main(["make-synthetic", "relations", "--out", str(tmp_path), "--videos-per-class", "2", "--size", "32",
                 "--frames", "8", "--no-progress"]) == 0
    assert sorted(d.name for d in (tmp_path / "videos").iterdir()) == sorted(RELATION_CLASSES)
    assert "snl-video prepare folder" in capsys.readouterr().out
    assert main(["make-synthetic", "relations", "--out", str(tmp_path / "sc"), "--videos-per-class", "1", "--size",
                 "32", "--frames", "8", "--relation", "shape_colour", "--no-progress"]) == 0
    assert sorted(d.name for d in (tmp_path / "sc" / "videos").iterdir()) == sorted(RELATIONS["shape_colour"])
    assert main(["make-synthetic", "relations", "--out", str(tmp_path), "--size", "33"]) == 2


def test_the_old_name_of_the_video_length_still_works_for_one_release():
    with pytest.warns(DeprecationWarning, match="'num_frames' is deprecated, use 'video_frames'"):
        old = render_relations_video(2, np.random.default_rng([0, 2, 5]), size=SIZE, num_frames=FRAMES)
    new = render_relations_video(2, np.random.default_rng([0, 2, 5]), size=SIZE, video_frames=FRAMES)
    assert np.array_equal(old, new) and len(new) == FRAMES
