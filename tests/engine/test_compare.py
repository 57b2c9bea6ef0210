"""``snl-video compare``: a Table-7-style table with deltas against the baseline row."""

from __future__ import annotations

import json

from snl_video.cli import main
from snl_video.config import save_config

from ..helpers import tiny_config


def _fake_run(root, name, nonlocal_blocks, top1, top5, data_root):
    cfg = tiny_config(data_root, root / name, name=name, nonlocal_blocks=nonlocal_blocks)
    (root / name / "eval").mkdir(parents=True)
    save_config(cfg, root / name / "config.yaml")
    (root / name / "eval" / "metrics.json").write_text(json.dumps({"clip_top1": top1, "clip_top5": top5}))
    (root / name / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "epoch", "epoch": e, "step": e, "train_loss": 2.0 / e, "train_top1": 10.0 * e,
                    "val_clip_top1": top1 * e / 2}) + "\n" for e in (1, 2)))
    return root / name


def test_compare_table_has_deltas_against_the_baseline(tmp_path, capsys):
    snl = _fake_run(tmp_path, "snl", {"kind": "snl", "positions": {"layer3": [0]}}, 52.5, 90.0, tmp_path)
    base = _fake_run(tmp_path, "base", None, 50.0, 91.0, tmp_path)
    assert main(["compare", str(snl), str(base), "--out", str(tmp_path / "cmp")]) == 0
    rows = (tmp_path / "cmp" / "table.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    snl_row = dict(zip(header, rows[1].split(",")))
    base_row = dict(zip(header, rows[2].split(",")))
    assert base_row["Δtop-1"] == "" and snl_row["Δtop-1"] == "+2.50" and snl_row["Δtop-5"] == "-1.00"
    assert snl_row["ΔGMACs"].startswith("+") and float(snl_row["Δparams (M)"]) > 0
    # the paper's convention is the profiler's Table 7 count of the same model
    from snl_video.config import load_config
    from snl_video.engine.builders import build_model_from_config
    from snl_video.models import profile_model

    def table7(run):
        cfg = load_config(run / "config.yaml")
        return profile_model(build_model_from_config(cfg, load_weights=False),
                             input_shape=(1, 3, cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size))

    with_block, without = table7(snl), table7(base)
    assert snl_row["GFLOPs (paper)"] == f"{with_block.macs_table7 / 1e9:.2f}"
    assert snl_row["ΔGFLOPs (paper)"] == f"{(with_block.macs_table7 - without.macs_table7) / 1e9:+.4f}" != "+0.0000"
    assert "| snl" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "curves.png").is_file()  # the runs' curves beside the table


def test_compare_names_the_missing_file(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["compare", str(tmp_path / "run")]) == 2
    assert "config.yaml is missing" in capsys.readouterr().err


def _split_run(root, folder, name, nonlocal_blocks, split, top1, top5, data_root):
    cfg = tiny_config(data_root, root / folder, name=name, nonlocal_blocks=nonlocal_blocks, data={"split": split})
    (root / folder / "eval").mkdir(parents=True)
    save_config(cfg, root / folder / "config.yaml")
    (root / folder / "eval" / "metrics.json").write_text(json.dumps({"clip_top1": top1, "clip_top5": top5}))
    return root / folder


def test_runs_of_one_recipe_on_several_splits_are_averaged(tmp_path, capsys):
    snl = {"kind": "snl", "positions": {"layer3": [0]}}
    runs = [
        _split_run(tmp_path, f"base{s}", "base", None, s, t1, 90.0, tmp_path) for s, t1 in ((1, 50.0), (2, 52.0), (3, 54.0))
    ] + [
        _split_run(tmp_path, f"snl{s}", f"snl_split{s}", snl, s, t1, t5, tmp_path)  # names may differ
        for s, t1, t5 in ((1, 55.0, 91.0), (2, 56.0, 92.0), (3, 60.0, 96.0))
    ]
    assert main(["compare", *map(str, runs), "--no-profile", "--no-curves", "--out", str(tmp_path / "cmp")]) == 0
    lines = (tmp_path / "cmp" / "table_splits.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    base, with_snl = (dict(zip(header, line.split(","))) for line in lines[1:])
    assert base["splits"] == with_snl["splits"] == "1 2 3"
    assert base["top-1 mean"] == "52.00" and base["top-1 std"] == "2.00"  # sample std of 50, 52, 54
    assert with_snl["top-1 mean"] == "57.00" and with_snl["top-1 std"] == f"{7 ** 0.5:.2f}"  # (4 + 1 + 9) / 2 = 7
    assert with_snl["top-5 mean"] == "93.00" and with_snl["Δtop-1"] == "+5.00" and with_snl["Δtop-5"] == "+3.00"
    assert "mean over splits" in capsys.readouterr().out
    # another learning rate is another recipe: compared row by row, never averaged with it
    other = tiny_config(tmp_path, tmp_path / "lr", name="base", nonlocal_blocks=None, data={"split": 2},
                        optim={"lr": 0.5})
    (tmp_path / "lr" / "eval").mkdir(parents=True)
    save_config(other, tmp_path / "lr" / "config.yaml")
    (tmp_path / "lr" / "eval" / "metrics.json").write_text(json.dumps({"clip_top1": 10.0, "clip_top5": 50.0}))
    assert main(["compare", str(runs[0]), str(tmp_path / "lr"), "--no-profile", "--no-curves",
                 "--out", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x" / "table_splits.csv").exists()
    # the same recipe twice on one split: both rows kept, no mean
    dup = _split_run(tmp_path, "base1b", "base", None, 1, 51.0, 90.0, tmp_path)
    assert main(["compare", str(runs[0]), str(dup), "--no-profile", "--no-curves", "--out", str(tmp_path / "y")]) == 0
    assert len((tmp_path / "y" / "table.csv").read_text().strip().splitlines()) == 3
    assert not (tmp_path / "y" / "table_splits.csv").exists()


def _named_run(root, folder, name, nonlocal_blocks, top1, data_root):
    """A finished run in ``root/folder`` whose recipe is called ``name`` (histories depend on top1 only)."""
    run = _fake_run(root, folder, nonlocal_blocks, top1, 90.0, data_root)
    cfg = tiny_config(data_root, run, name=name, nonlocal_blocks=nonlocal_blocks)
    save_config(cfg, run / "config.yaml")
    return run


def test_runs_of_one_name_and_kind_are_labelled_apart_and_identical_curves_do_not_hide(tmp_path, capsys, monkeypatch):
    """SNL, Cayley and ARMA runs of one recipe name read apart (before, all read ``snl``),
    and a run whose curves equal another's is said to be identical to it."""
    import matplotlib.pyplot as plt

    from snl_video.engine.compare import compare_runs, run_labels

    block = {"kind": "snl", "positions": {"layer3": [0]}}
    runs = [_named_run(tmp_path, "a", "tiny", block, 50.0, tmp_path),
            _named_run(tmp_path, "b", "tiny", {**block, "options": {"filter": "cayley"}}, 51.0, tmp_path),
            _named_run(tmp_path, "c", "tiny", {**block, "options": {"filter": "arma"}}, 52.0, tmp_path),
            _named_run(tmp_path, "d", "tiny", {**block, "options": {"filter": "cayley"}}, 51.0, tmp_path),
            _named_run(tmp_path, "e", "other", None, 50.0, tmp_path)]
    comparison = compare_runs(runs, profile=False)
    assert [r.run for r in comparison.rows] == ["tiny (snl)", "b", "tiny (snl filter=arma)", "d", "other"]
    assert [r.nonlocal_kind for r in comparison.rows] == ["snl", "snl filter=cayley", "snl filter=arma",
                                                          "snl filter=cayley", "-"]
    assert len(set(run_labels(comparison.rows))) == len(runs)
    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), real_close(fig)))
    capsys.readouterr()
    assert main(["compare", *map(str, runs), "--no-profile", "--out", str(tmp_path / "cmp")]) == 0
    rows = [line.split(",") for line in (tmp_path / "cmp" / "table.csv").read_text().strip().splitlines()[1:]]
    assert [(r[0], r[8]) for r in rows[:5]] == [("tiny (snl)", "snl"), ("b", "snl filter=cayley"),
                                                 ("tiny (snl filter=arma)", "snl filter=arma"),
                                                 ("d", "snl filter=cayley"), ("other", "-")]
    legend = [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()]
    assert legend == ["tiny (snl)", "b", "tiny (snl filter=arma)", "d (identical to b)", "other (identical to tiny (snl))"]
    lines = {line.get_label(): line for line in figures[-1].axes[0].get_lines()}
    assert lines["d (identical to b)"].get_linestyle() == ":" and lines["d (identical to b)"].get_markerfacecolor() == "none"
    assert lines["b"].get_marker() != lines["d (identical to b)"].get_marker()


def test_published_reference_rows_are_rendered_apart_and_marked(tmp_path, capsys):
    """``--reference table7``: the paper's rows in a table of their own below the measured one,
    each marked published, with its source; none of them in the CSV (measured rows only)."""
    from snl_video.engine.published import REFERENCES

    base = _fake_run(tmp_path, "base", None, 50.0, 91.0, tmp_path)
    assert main(["compare", str(base), "--out", str(tmp_path / "cmp"), "--no-profile", "--no-curves",
                 "--reference", "table7"]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "cmp" / "table.md").read_text()
    measured, published = md.split("Published rows `table7`")
    assert "| base" in measured and "81.57" not in measured
    lines = [line for line in published.splitlines() if line.startswith("| r3d50")]
    assert [line.split("|")[1].strip() for line in lines] == [f"{r.name} (published)" for r in REFERENCES["table7"]]
    baseline = next(line for line in lines if line.startswith("| r3d50 baseline"))
    assert [c.strip() for c in baseline.split("|")[4:8]] == ["81.57", "95.40", "10.10", "47.02"]
    snl = next(line for line in lines if line.startswith("| r3d50 + SNL"))
    assert [c.strip() for c in snl.split("|")[4:8]] == ["84.39", "97.66", "10.36", "49.64"]
    nl = next(line for line in lines if line.startswith("| r3d50 + NL"))
    assert [c.strip() for c in nl.split("|")[4:6]] == ["-", "-"]  # not found: left out, not guessed
    assert "source: Zhu et al." in published and "not measured" in published
    assert "81.57" not in (tmp_path / "cmp" / "table.csv").read_text()
    assert "(published)" in printed


def test_an_unknown_reference_is_refused_naming_the_valid_ones(tmp_path):
    import pytest

    from snl_video import compare
    from snl_video.errors import InvalidValueError

    base = _fake_run(tmp_path, "base", None, 50.0, 91.0, tmp_path)
    with pytest.raises(InvalidValueError, match=r"'table9'.*valid: table7"):
        compare([base], output_dir=tmp_path / "cmp", profile=False, curves=False, reference="table9")
    assert not (tmp_path / "cmp").exists()


def test_runs_on_different_datasets_are_refused_and_labelled_when_allowed(tmp_path, capsys):
    """A UCF-101 run beside an HMDB-51 run: same recipe otherwise, so the table would read the
    difference of their scores as an effect of the model; refused, and with --allow-mixed each
    split cell names its dataset."""
    ucf = _fake_run(tmp_path, "ucf", None, 50.0, 90.0, tmp_path)
    hmdb = _fake_run(tmp_path, "hmdb", None, 30.0, 70.0, tmp_path)
    cfg = tiny_config(tmp_path, hmdb, name="hmdb", nonlocal_blocks=None, data={"dataset": "hmdb51"})
    save_config(cfg, hmdb / "config.yaml")
    capsys.readouterr()
    assert main(["compare", str(ucf), str(hmdb), "--out", str(tmp_path / "cmp"), "--no-profile"]) == 2
    err = capsys.readouterr().err
    assert "different datasets" in err and "ucf: ucf101" in err and "hmdb: hmdb51" in err and "--allow-mixed" in err
    assert not (tmp_path / "cmp").exists()
    assert main(["compare", str(ucf), str(hmdb), "--out", str(tmp_path / "cmp"), "--no-profile", "--allow-mixed"]) == 0
    rows = (tmp_path / "cmp" / "table.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert [dict(zip(header, row.split(",")))["split"] for row in rows[1:]] == ["ucf101 1", "hmdb51 1"]
