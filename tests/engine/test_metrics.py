"""Metrics against hand-computed cases; expected values are written out, never computed by the code under test."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from snl_video.engine.metrics import (
    aggregate_video_predictions,
    confusion_matrix,
    deduplicate_by_index,
    mean_class_accuracy,
    per_class_accuracy,
    topk_accuracy,
)
from snl_video.engine.reports import compute_metrics_report, write_evaluation_outputs

# --------------------------------------------------------------------------- top-k

# Four samples over six classes; the label's rank is fixed by construction:
#   row 0: label 2 is the largest                          -> rank 0
#   row 1: label 0 is beaten by classes 1 and 3            -> rank 2
#   row 2: label 5 is beaten by all five others            -> rank 5
#   row 3: label 4 is beaten by class 0 only               -> rank 1
SCORES = np.array(
    [
        [0.1, 0.2, 0.9, 0.0, 0.3, 0.1],
        [0.5, 0.8, 0.1, 0.7, 0.2, 0.3],
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
        [3.0, -1.0, 0.0, 1.0, 2.0, 1.5],
    ]
)
LABELS = np.array([2, 0, 5, 4])


def test_topk_hand_computed():
    # top-1: rank 0 only (1 of 4); top-2: ranks 0,1 (2 of 4); top-3: +rank 2 (3 of 4); top-5: 3 of 4; top-6: 4 of 4.
    acc = topk_accuracy(SCORES, LABELS, ks=(1, 2, 3, 5, 6))
    assert acc == {1: 25.0, 2: 50.0, 3: 75.0, 5: 75.0, 6: 100.0}


def test_topk_accepts_torch_tensors_and_half_precision():
    acc = topk_accuracy(torch.tensor(SCORES, dtype=torch.bfloat16), torch.tensor(LABELS), ks=(1, 3))
    assert acc == {1: 25.0, 3: 75.0}


def test_topk_same_for_logits_and_probabilities():
    probs = np.exp(SCORES) / np.exp(SCORES).sum(axis=1, keepdims=True)
    assert topk_accuracy(probs, LABELS, ks=(1, 2)) == {1: 25.0, 2: 50.0}


def test_ties_break_towards_the_lower_class_index():
    # All classes tie: class 0 ranks first, class c ranks c-th.
    scores = np.zeros((3, 4))
    labels = np.array([0, 1, 3])
    # label 0 -> rank 0; label 1 -> rank 1; label 3 -> rank 3.
    assert topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == pytest.approx({1: 100 / 3, 2: 200 / 3, 3: 200 / 3, 4: 100.0})
    # A tie between the label and a higher class goes to the label; with a lower class, against it.
    two = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert topk_accuracy(two, np.array([0, 1]), ks=(1,)) == {1: 50.0}


def test_k_larger_than_classes_is_an_error():
    with pytest.raises(ValueError, match="k=7"):
        topk_accuracy(SCORES, LABELS, ks=(1, 7))
    with pytest.raises(ValueError, match="k=0"):
        topk_accuracy(SCORES, LABELS, ks=(0,))


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="in \\[0, 5\\]"):
        topk_accuracy(SCORES, np.array([2, 0, 6, 4]), ks=(1,))
    with pytest.raises(ValueError, match="4 class indices"):
        topk_accuracy(SCORES, np.array([2, 0]), ks=(1,))
    bad = SCORES.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        topk_accuracy(bad, LABELS, ks=(1,))
    with pytest.raises(ValueError, match="integer"):
        topk_accuracy(SCORES, LABELS.astype(float), ks=(1,))


# --------------------------------------------------------------------------- confusion / per class


def test_confusion_matrix_matches_a_loop():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 7, size=200)
    labels = rng.integers(0, 7, size=200)
    expected = np.zeros((7, 7), dtype=np.int64)
    for p, y in zip(preds, labels):
        expected[y, p] += 1
    cm = confusion_matrix(preds, labels, 7)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_per_class_and_mean_class_accuracy_with_an_absent_class():
    # Class 0: 3 videos, 2 right. Class 1: 1 video, right. Class 2: no video. Class 3: 2 videos, 0 right.
    labels = np.array([0, 0, 0, 1, 3, 3])
    preds = np.array([0, 0, 1, 1, 0, 2])
    cm = confusion_matrix(preds, labels, 4)
    acc = per_class_accuracy(cm)
    assert acc[0] == pytest.approx(200 / 3)
    assert acc[1] == 100.0
    assert math.isnan(acc[2])
    assert acc[3] == 0.0
    # Mean over the three present classes: (66.67 + 100 + 0) / 3; the absent class is not a 0.
    assert mean_class_accuracy(cm) == pytest.approx((200 / 3 + 100 + 0) / 3)


def test_mean_class_accuracy_of_an_empty_matrix_is_an_error():
    with pytest.raises(ValueError, match="no sample"):
        mean_class_accuracy(np.zeros((3, 3)))


# --------------------------------------------------------------------------- video aggregation


def test_video_aggregation_averages_softmax_probabilities():
    # Video "b" has two views whose softmax we can write down:
    #   [0, ln 3] -> [1/4, 3/4] and [0, 0] -> [1/2, 1/2]; their mean is [3/8, 5/8].
    # Video "a" has one view [ln 4, 0] -> [4/5, 1/5].
    logits = np.array([[0.0, math.log(3)], [math.log(4), 0.0], [0.0, 0.0]])
    ids = ["b", "a", "b"]
    out = aggregate_video_predictions(logits, ids, labels=[1, 0, 1])
    assert out.video_ids == ["a", "b"]  # sorted, whatever the input order
    np.testing.assert_allclose(out.scores, [[0.8, 0.2], [3 / 8, 5 / 8]], atol=1e-12)
    np.testing.assert_array_equal(out.labels, [0, 1])
    np.testing.assert_array_equal(out.num_views, [1, 2])


def test_mean_prob_differs_from_mean_logit_and_both_are_hand_checkable():
    # Two views of one video: logits [10, 0] and [0, 1].
    #   mean_prob: p0 = (sigmoid(10) + sigmoid(-1)) / 2, since softmax([a, b])[0] = sigmoid(a - b);
    #   mean_logit: the mean of the logits, [5, 0.5].
    logits = np.array([[10.0, 0.0], [0.0, 1.0]])
    p = aggregate_video_predictions(logits, [7, 7]).scores[0]
    expected0 = (1 / (1 + math.exp(-10)) + 1 / (1 + math.e)) / 2
    assert p[0] == pytest.approx(expected0, abs=1e-12)
    m = aggregate_video_predictions(logits, [7, 7], reduce="mean_logit").scores[0]
    np.testing.assert_allclose(m, [5.0, 0.5])


def test_video_aggregation_is_independent_of_view_order():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(30, 5))
    ids = np.repeat(np.arange(10), 3)
    perm = rng.permutation(30)
    a = aggregate_video_predictions(logits, ids)
    b = aggregate_video_predictions(logits[perm], ids[perm])
    assert a.video_ids == b.video_ids == list(range(10))
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-12)


def test_video_ids_as_tensors_or_scalar_lists_group_by_value():
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    ids = torch.tensor([4, 2, 4])
    for given in (ids, list(ids), ids.numpy(), list(ids.numpy())):
        out = aggregate_video_predictions(logits, given)
        assert out.video_ids == [2, 4]
        np.testing.assert_array_equal(out.num_views, [1, 2])


def test_inconsistent_labels_within_a_video_are_an_error():
    with pytest.raises(ValueError, match="different labels"):
        aggregate_video_predictions(np.zeros((2, 3)), [1, 1], labels=[0, 2])


def test_probabilities_input_is_averaged_as_is():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    out = aggregate_video_predictions(probs, [0, 0], inputs="probs")
    np.testing.assert_allclose(out.scores, [[0.4, 0.6]])
    with pytest.raises(ValueError, match="mean_logit"):
        aggregate_video_predictions(probs, [0, 0], inputs="probs", reduce="mean_logit")


# --------------------------------------------------------------------------- DDP padding


class _Range:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@pytest.mark.parametrize("shuffle", [False, True])
def test_deduplicate_distributed_sampler_padding(shuffle):
    # 5 items on 2 replicas: each rank gets 3, so one index appears twice in the union.
    gathered = []
    for rank in range(2):
        sampler = DistributedSampler(_Range(5), num_replicas=2, rank=rank, shuffle=shuffle, seed=3)
        gathered += list(sampler)
    assert len(gathered) == 6 and sorted(set(gathered)) == [0, 1, 2, 3, 4]
    indices = torch.tensor(gathered)
    # Per-sample "outputs" that identify the sample: score = 10 * index, label = index % 2.
    scores = (indices.float() * 10).unsqueeze(1)
    labels = indices % 2
    kept_idx, kept_scores, kept_labels = deduplicate_by_index(indices, scores, labels)
    assert kept_idx.tolist() == [0, 1, 2, 3, 4]
    assert kept_scores.squeeze(1).tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert kept_labels.tolist() == [0, 1, 0, 1, 0]
    assert isinstance(kept_scores, torch.Tensor)


def test_deduplicate_keeps_the_first_occurrence():
    idx = np.array([3, 1, 3, 0])
    values = np.array([30.0, 10.0, 99.0, 0.0])  # the second "3" is a padding copy with other values
    kept_idx, kept = deduplicate_by_index(idx, values)
    np.testing.assert_array_equal(kept_idx, [0, 1, 3])
    np.testing.assert_array_equal(kept, [0.0, 10.0, 30.0])


def test_deduplicate_checks_lengths():
    with pytest.raises(ValueError, match="rows"):
        deduplicate_by_index(np.arange(3), np.zeros(4))


# --------------------------------------------------------------------------- report and files


def _report(num_classes: int = 4):
    # Clip level: 4 clips; labels 0,1,2,3; argmax: 0,1,0,3 -> top-1 = 75 %.
    clip_scores = np.array(
        [[5.0, 1, 0, 0], [0, 5.0, 1, 0], [5.0, 0, 1, 0], [0, 0, 1, 5.0]]
    )[:, :num_classes]
    clip_labels = np.array([0, 1, 2, 3])
    # Video level: videos 10 (label 0) and 20 (label 2), two views each.
    #   video 10: both views favour class 0 -> correct.
    #   video 20: views favour class 1 strongly and class 2 weakly -> predicts 1, label 2 second.
    view_scores = np.array([[4.0, 0, 0, 0], [3.0, 0, 0, 0], [0, 6.0, 2.0, 0], [0, 6.0, 3.0, 0]])
    view_labels = np.array([0, 0, 2, 2])
    view_ids = np.array([10, 10, 20, 20])
    return compute_metrics_report(
        clip_scores,
        clip_labels,
        view_scores,
        view_labels,
        view_ids,
        num_classes=num_classes,
        class_names=["ApplyEyeMakeup", "Archery", "Basketball", "Biking"],
        video_names={10: "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 20: "Basketball/v_Basketball_g01_c01.avi"},
        extra={"split": 1},
    )


def test_report_numbers_hand_computed():
    r = _report()
    d = r.to_json_dict()
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy", "num_classes"):
        assert key in d
    assert d["clip_top1"] == 75.0
    assert d["clip_top5"] == 100.0  # 4 classes: k = 4 covers everything
    assert d["top5_k"] == 4
    assert d["video_top1"] == 50.0  # video 10 right, video 20 wrong
    assert d["video_top5"] == 100.0
    # Classes present among the videos: 0 (1/1 right) and 2 (0/1 right) -> mean 50.
    assert d["mean_class_accuracy"] == 50.0
    assert d["num_classes"] == 4 and d["num_clips"] == 4 and d["num_videos"] == 2
    assert d["num_classes_present"] == 2
    assert d["split"] == 1
    json.dumps(d, allow_nan=False)


def test_writers_produce_parseable_files_with_the_right_columns(tmp_path):
    r = _report()
    paths = write_evaluation_outputs(r, tmp_path / "eval")
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.endswith(".tmp")]

    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["video_top1"] == 50.0

    with paths["predictions"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "video_id", "video", "label", "label_name", "predicted", "predicted_name", "correct",
        "top4", "prob_label", "prob_predicted", "num_views",
    ]
    by_id = {row["video_id"]: row for row in rows}
    assert by_id["10"]["video"] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    assert (by_id["10"]["predicted"], by_id["10"]["correct"]) == ("0", "1")
    assert (by_id["20"]["label_name"], by_id["20"]["predicted_name"]) == ("Basketball", "Archery")
    assert by_id["20"]["top4"].split()[:2] == ["1", "2"]
    # Video 20's label probability: mean over views of softmax([0, 6, 2, 0])[2] and softmax([0, 6, 3, 0])[2].
    p1 = math.exp(2) / (2 + math.exp(6) + math.exp(2))
    p2 = math.exp(3) / (2 + math.exp(6) + math.exp(3))
    assert float(by_id["20"]["prob_label"]) == pytest.approx((p1 + p2) / 2, abs=1e-6)
    assert by_id["20"]["num_views"] == "2"

    with paths["per_class"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["class_name"] for row in rows] == ["ApplyEyeMakeup", "Archery", "Basketball", "Biking"]
    assert [row["num_videos"] for row in rows] == ["1", "0", "1", "0"]
    assert [row["accuracy"] for row in rows] == ["100.0000", "", "0.0000", ""]

    with paths["confusion_csv"].open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == ["ApplyEyeMakeup", "Archery", "Basketball", "Biking"]
    assert rows[1] == ["ApplyEyeMakeup", "1", "0", "0", "0"]
    assert rows[3] == ["Basketball", "0", "1", "0", "0"]

    png = paths["confusion_png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_png_for_101_classes_is_large_enough_for_the_labels(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    n = 101
    labels = np.arange(n).repeat(2)
    scores = rng.normal(size=(2 * n, n))
    scores[np.arange(2 * n), labels] += 3.0
    r = compute_metrics_report(
        scores, labels, scores, labels, np.arange(2 * n),
        num_classes=n, class_names=[f"Class{i:03d}LongName" for i in range(n)],
    )
    path = write_evaluation_outputs(r, tmp_path)["confusion_png"]
    import struct

    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    # ~0.16 inch per class at 100 dpi: at least 16 px per class row.
    assert width >= 16 * n and height >= 16 * n


def test_report_checks_class_counts():
    with pytest.raises(ValueError, match="num_classes=5"):
        compute_metrics_report(SCORES, LABELS, SCORES, LABELS, [0, 1, 2, 3], num_classes=5)


def test_two_process_gather_after_dedup_gives_the_one_process_report():
    # Simulated DDP evaluation: each rank scores the indices its DistributedSampler gives
    # it (3 + 3 for 5 videos x 1 view), outputs are concatenated and deduplicated.
    rng = np.random.default_rng(5)
    n, c = 5, 3
    scores = rng.normal(size=(n, c))
    labels = np.array([0, 1, 2, 1, 0])
    single = compute_metrics_report(scores, labels, scores, labels, np.arange(n), num_classes=c).to_json_dict()
    gathered = []
    for rank in range(2):
        gathered += list(DistributedSampler(_Range(n), num_replicas=2, rank=rank, shuffle=True, seed=0))
    idx = np.array(gathered)
    kept, s, y = deduplicate_by_index(idx, scores[idx], labels[idx])
    ddp = compute_metrics_report(s, y, s, y, kept, num_classes=c).to_json_dict()
    assert ddp == single
    # Without the dedup the duplicated video would be counted twice.
    assert compute_metrics_report(scores[idx], labels[idx], scores[idx], labels[idx], idx, num_classes=c).num_clips == 6
