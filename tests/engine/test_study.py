"""``snl-video study``: cells as runs, statistics, resume, shards, a changed spec, failed cells, locks.

The smoke study (configs/studies/smoke.yaml: 2 variants x 2 seeds of a tiny recipe, seconds
per cell) runs once uninterrupted; a second copy runs as two shards with a cell killed after
its first epoch, and must give the same summary: every cell trained twice gives the same
metric on the CPU, a killed cell resumes exactly, and the finished cells are left untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snl_video.cli import main
from snl_video.config import load_config
from snl_video.engine.study import (StudyChangedError, cell_config, load_study_spec, run_study,
                                    study_cells)
from snl_video.engine.train import train

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "studies" / "smoke.yaml"
SCHEMA = {"name", "metric", "baseline", "protocol", "variants", "missing"}
VARIANT_SCHEMA = {"name", "overrides", "seeds", "values", "mean", "std", "ci95", "delta", "params", "macs",
                  "macs_table7", "model", "recipe", "input"}
DELTA_SCHEMA = {"values", "mean", "ci95", "p_value", "test"}


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke_study(tiny_prepared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "smoke"
    assert main(["study", str(SMOKE), "--out", str(out), "--no-progress", f"data.root={tiny_prepared}"]) == 0
    return out


def test_the_smoke_study_summarises_its_cells(smoke_study):
    summary = json.loads((smoke_study / "summary.json").read_text())
    assert set(summary) == SCHEMA and summary["metric"] == "clip_top1" and summary["missing"] == []
    assert summary["protocol"]["num_frames"] == 6 and summary["protocol"]["epochs"] == 3
    by_name = {v["name"]: v for v in summary["variants"]}
    assert list(by_name) == ["baseline", "snl"]
    for name, v in by_name.items():
        assert set(v) == VARIANT_SCHEMA and v["seeds"] == [0, 1]
        # each value is the cell's own eval/metrics.json: the cell is an ordinary run folder
        cells = [json.loads((smoke_study / "cells" / name / f"seed{s}" / "eval" / "metrics.json").read_text())
                 for s in (0, 1)]
        assert v["values"] == [c["clip_top1"] for c in cells]
        assert v["mean"] == pytest.approx(np.mean(v["values"]))
        assert v["std"] == pytest.approx(abs(v["values"][0] - v["values"][1]) / math.sqrt(2))
    assert by_name["baseline"]["delta"] is None
    delta = by_name["snl"]["delta"]
    assert set(delta) == DELTA_SCHEMA
    assert delta["values"] == pytest.approx([by_name["snl"]["values"][k] - by_name["baseline"]["values"][k]
                                             for k in (0, 1)])
    assert delta["p_value"] is None and "no test" in delta["test"]  # 2 paired seeds: said, not tested
    assert by_name["snl"]["params"] > by_name["baseline"]["params"] > 0 and by_name["snl"]["macs"] > 0
    table = (smoke_study / "table.md").read_text()
    assert "| snl " in table and "n/a (2 pairs)" in table and "protocol: level=clip" in table
    assert len((smoke_study / "table.csv").read_text().strip().splitlines()) == 3
    assert (smoke_study / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((smoke_study / "study.json").read_text())["spec"]["seeds"] == [0, 1]


def test_shards_with_a_killed_cell_resume_to_the_same_summary(smoke_study, tiny_prepared, tmp_path):
    spec = load_study_spec(SMOKE, [f"data.root={tiny_prepared}"])
    out = tmp_path / "sharded"
    first = run_study(spec, out, shard=(1, 2), progress=False)
    cells = study_cells(spec, out)
    assert [o.cell.label for o in first.outcomes] == [cells[0].label, cells[2].label]  # i = 0 (mod 2)
    assert {(m["variant"], m["seed"], m["reason"]) for m in first.summary["missing"]} == {
        (c.variant, c.seed, "not run") for c in (cells[1], cells[3])}
    # cell 3 of shard 2/2 is killed after its first epoch's checkpoint
    killed = cells[3]
    train(cell_config(spec, killed, progress=False), stop_after_epochs=1)
    finished = {c.label: _files(c.folder) for c in (cells[0], cells[2])}
    second = run_study(spec, out, shard=(2, 2), progress=False)
    assert {c: _files(cells[i].folder) for i, c in ((0, cells[0].label), (2, cells[2].label))} == finished
    resumed = {o.cell.label: o.resumed_from_epoch for o in second.outcomes}
    assert resumed == {cells[1].label: None, killed.label: 1}
    # shards 1/2 + 2/2, one cell killed and resumed = the uninterrupted study, value for value
    uninterrupted = json.loads((smoke_study / "summary.json").read_text())
    assert json.loads((out / "summary.json").read_text()) == uninterrupted
    # rerunning the whole study touches nothing
    before = _files(out / "cells")
    again = run_study(spec, out, progress=False)
    assert {o.status for o in again.outcomes} == {"skipped"} and _files(out / "cells") == before


@pytest.mark.slow
def test_two_jobs_at_once_give_the_same_summary(smoke_study, tiny_prepared, tmp_path):
    out = tmp_path / "jobs"
    assert main(["study", str(SMOKE), "--out", str(out), "--jobs", "2", "--no-progress",
                 f"data.root={tiny_prepared}"]) == 0
    assert json.loads((out / "summary.json").read_text()) == json.loads((smoke_study / "summary.json").read_text())
    from snl_video.engine.preflight import available_cpus

    threads = {json.loads(p.read_text())["threads"] for p in (out / "cells").rglob("cell.json")}
    assert threads == {max(1, available_cpus() // 2)}  # the CPU threads split between the two processes


def test_a_changed_spec_is_refused_naming_the_key(smoke_study, tiny_prepared, capsys):
    before = _files(smoke_study)
    args = ["study", str(SMOKE), "--out", str(smoke_study), "--no-progress", f"data.root={tiny_prepared}"]
    assert main(args + ["optim.lr=0.05"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr=0.02" in err and "0.05" in err and "new --out" in err
    assert main(args + ["eval.num_clips=3"]) == 2
    assert "num_clips" in capsys.readouterr().err
    assert _files(smoke_study) == before


def test_a_failed_cell_is_listed_with_its_reason_while_the_others_aggregate(tiny_prepared, tmp_path, monkeypatch):
    from snl_video.engine import train as train_module

    real_train = train_module.train

    def failing_for_snl(cfg, **kwargs):
        if cfg.nonlocal_blocks is not None:
            raise RuntimeError("simulated failure of the block")
        return real_train(cfg, **kwargs)

    monkeypatch.setattr(train_module, "train", failing_for_snl)
    spec = (tmp_path / "one_seed.yaml")
    spec.write_text(SMOKE.read_text().replace("seeds: [0, 1]", "seeds: [0]").replace(
        "recipe: configs/studies/smoke_base.yaml", f"recipe: {SMOKE.parent / 'smoke_base.yaml'}"))
    out = tmp_path / "study"
    assert main(["study", str(spec), "--out", str(out), "--no-progress", f"data.root={tiny_prepared}"]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing"] == [{"variant": "snl", "seed": 0,
                                   "reason": "failed: RuntimeError: simulated failure of the block"}]
    by_name = {v["name"]: v for v in summary["variants"]}
    assert by_name["baseline"]["values"] and by_name["snl"]["values"] == []
    assert by_name["snl"]["delta"]["values"] == [] and by_name["snl"]["mean"] is None
    assert "simulated failure of the block" in (out / "table.md").read_text()


def test_dry_run_lists_cells_differences_and_projected_time(tiny_prepared, tmp_path, capsys):
    out = tmp_path / "dry"
    assert main(["study", str(SMOKE), "--out", str(out), "--dry-run", "--shard", "2/2", f"data.root={tiny_prepared}"]) == 0
    text = capsys.readouterr().out
    assert "nonlocal_blocks.kind: None -> 'snl'" in text and "projected:" in text
    assert "cell 1: snl/seed0" in text and "cell 0:" not in text  # shard 2/2 holds cells 1 and 3
    assert not out.exists()  # ran nothing, wrote nothing


def test_a_spec_with_problems_reports_them_all_before_anything_runs(tiny_prepared, tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\nrecipe: {SMOKE.parent / 'smoke_base.yaml'}\nseeds: [0]\nmetric: top1\n"
                    "baseline: base\nvariants:\n  baseline: []\n  nl: [nonlocal_blocks.kind=nlx]\n")
    assert main(["study", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "metric" in err and "baseline" in err and "2 problem(s)" in err
    spec.write_text(spec.read_text().replace("metric: top1", "metric: clip_top1").replace("baseline: base", "baseline: baseline"))
    assert main(["study", str(spec), "--out", str(tmp_path / "o"), f"data.root={tiny_prepared}", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "variants.nl: nonlocal_blocks.kind" in err and "variants.baseline: optim.lr" in err
    assert not (tmp_path / "o").exists()


def test_malformed_seeds_with_seed_overrides_is_a_spec_problem_not_a_crash(tmp_path, capsys):
    # `seeds: x` with a seed_overrides mapping crashed with a TypeError ('in <string>') before
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\nrecipe: {SMOKE.parent / 'smoke_base.yaml'}\nseeds: x\nmetric: clip_top1\n"
                    "baseline: baseline\nseed_overrides: {0: [data.split=1]}\nvariants:\n  baseline: []\n")
    assert main(["study", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "seeds" in err and "seed_overrides" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_cell_held_by_another_live_process_is_refused(tmp_path, tiny_prepared):
    """Cells take the toolkit's output lock (snl_video.locking): a second runner of the same cell
    is refused at once, naming the holder; the holder's lock is untouched."""
    from snl_video.engine.study import Cell, run_cell
    from snl_video.locking import OutputLockedError, read_lock

    folder = tmp_path / "cells" / "nl" / "seed0"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from snl_video.locking import output_lock\n"
         f"with output_lock({str(folder)!r}, 'study'):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=str(holder.pid)):
            run_cell(None, Cell(index=0, variant="nl", seed=0, folder=folder), metric="video_top1")
        assert read_lock(folder).pid == holder.pid
    finally:
        holder.communicate("")
    assert read_lock(folder) is None


SPECS = sorted(p for p in (REPO / "configs" / "studies").glob("*.yaml") if not p.stem.endswith("_base"))


@pytest.mark.parametrize("spec_file", SPECS, ids=lambda p: p.name)
def test_every_shipped_study_spec_resolves_and_builds(spec_file):
    """Every spec's recipe, overrides and variants give a valid config and a model that builds
    (on the meta device; the data is checked when the study runs). ``*_base.yaml`` are recipes."""
    from snl_video.engine.preflight import model_problems

    spec = load_study_spec(spec_file)
    assert spec.baseline in spec.variants and len(spec.seeds) >= 2
    cells = study_cells(spec, Path("unused"))
    for variant in spec.variants:
        cell = next(c for c in cells if c.variant == variant)
        cfg = cell_config(spec, cell)
        assert cfg.runtime.seed == cell.seed
        assert model_problems(cfg) == [], (variant, model_problems(cfg))


def test_a_cell_trained_on_another_training_set_is_listed_missing_with_the_reason(smoke_study, tiny_prepared,
                                                                                  tmp_path):
    """A finished cell whose run record names other training videos than the study's data holds
    now (re-split in place since) does not count: listed in ``missing`` saying so."""
    import shutil

    from snl_video.engine.study import aggregate_study

    spec = load_study_spec(SMOKE, [f"data.root={tiny_prepared}"])
    out = tmp_path / "copy"
    shutil.copytree(smoke_study, out)
    for cell in study_cells(spec, out):  # the cells point at the copied folders
        assert (cell.folder / "train_videos.json").is_file()
    before = aggregate_study(spec, out)
    assert before["missing"] == []
    odd = study_cells(spec, out)[1]
    record = json.loads((odd.folder / "train_videos.json").read_text())
    record.update(sha256="0" * 64, count=record["count"] - 1)  # as a cell trained before a re-split would say
    (odd.folder / "train_videos.json").write_text(json.dumps(record))
    summary = aggregate_study(spec, out)
    (entry,) = summary["missing"]
    assert (entry["variant"], entry["seed"]) == (odd.variant, odd.seed)
    assert "trained on another training set" in entry["reason"] and f"{record['count']} videos" in entry["reason"]
    by_name = {v["name"]: v for v in summary["variants"]}
    assert odd.seed not in by_name[odd.variant]["seeds"]
    others = [v for v in before["variants"] if v["name"] != odd.variant]
    assert all(v["values"] == by_name[v["name"]]["values"] for v in others)  # the other cells count as before


def _own_recipe(tmp_path: Path, **changes) -> Path:
    """A second tiny recipe (another model, clip and schedule than smoke_base.yaml): what a
    variant naming a recipe of its own runs, as the new families beside Table 7 do."""
    import yaml

    recipe = yaml.safe_load((SMOKE.parent / "smoke_base.yaml").read_text())
    recipe["name"] = "other_family"
    recipe["model"] = {"name": "r3d18", "num_classes": 4, "options": {"widen_factor": 0.125, "conv1_t_size": 3}}
    recipe["data"].update(num_frames=4, crop_size=32)
    recipe["schedule"]["epochs"] = 2
    for key, value in changes.items():
        section, name = key.split("__")
        recipe[section][name] = value
    path = tmp_path / "other_family.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _own_recipe_spec(tmp_path: Path, recipe: Path, reference: str | None = None) -> Path:
    spec = tmp_path / "mixed.yaml"
    spec.write_text(f"name: mixed\nrecipe: {SMOKE.parent / 'smoke_base.yaml'}\nseeds: [0, 1]\nmetric: clip_top1\n"
                    + (f"reference: {reference}\n" if reference else "")
                    + "baseline: baseline\nvariants:\n  baseline: []\n"
                    f"  other: {{recipe: {recipe}, overrides: [optim.lr=0.01]}}\n")
    return spec


def test_a_variant_with_its_own_recipe_is_paired_by_seed_and_shown_with_its_clip_and_cost(tiny_prepared, tmp_path):
    spec_file = _own_recipe_spec(tmp_path, _own_recipe(tmp_path), reference="table7")
    spec = load_study_spec(spec_file, [f"data.root={tiny_prepared}"])
    assert spec.recipe_of("other") == tmp_path / "other_family.yaml" and spec.recipe_of("baseline") == spec.recipe
    out = tmp_path / "out"
    result = run_study(spec, out, progress=False)
    assert {o.status for o in result.outcomes} == {"done"}
    for seed in (0, 1):  # each cell is its recipe + the study's, seed's and variant's overrides
        cfg = load_config(out / "cells" / "other" / f"seed{seed}" / "config.yaml")
        assert (cfg.model.name, cfg.data.num_frames, cfg.data.crop_size, cfg.schedule.epochs) == ("r3d18", 4, 32, 2)
        assert cfg.optim.lr == 0.01 and cfg.runtime.seed == seed and cfg.data.root == str(tiny_prepared)
    summary = result.summary
    by_name = {v["name"]: v for v in summary["variants"]}
    base, other = by_name["baseline"], by_name["other"]
    cells = {(v, s): json.loads((out / "cells" / v / f"seed{s}" / "eval" / "metrics.json").read_text())["clip_top1"]
             for v in ("baseline", "other") for s in (0, 1)}
    assert other["values"] == [cells["other", 0], cells["other", 1]]
    assert other["delta"]["values"] == pytest.approx([cells["other", s] - cells["baseline", s] for s in (0, 1)])
    assert other["recipe"] == str(tmp_path / "other_family.yaml") and base["recipe"] is None
    assert other["input"]["num_frames"] == 4 and base["input"]["num_frames"] == 6
    assert other["model"] == "r3d18" and base["model"] == "r3d10"
    from snl_video.engine.compare import profile_config

    for v, cfg in ((other, cell_config(spec, study_cells(spec, out)[1])), (base, cell_config(spec, study_cells(spec, out)[0]))):
        assert (v["macs"], v["params"], v["macs_table7"]) == profile_config(cfg)  # each row its own cost
    assert other["params"] != base["params"]
    table = (out / "table.md").read_text()
    measured, published = table.split("Published rows `table7`")
    assert "4f/2 @32, 2 ep" in measured and "6f/2 @40, 3 ep" in measured and "a recipe of their own" in measured
    assert "r3d50 baseline (published)" in published and "81.57" in published and "81.57" not in measured
    record = json.loads((out / "study.json").read_text())["spec"]["variants"]
    assert record == {"baseline": [], "other": {"recipe": str(tmp_path / "other_family.yaml"),
                                                "overrides": ["optim.lr=0.01"]}}
    # rows of another recipe (possibly another data folder) pair only on the same test videos
    from snl_video.engine.compare import MixedProtocolError
    from snl_video.engine.study import aggregate_study

    metrics_file = out / "cells" / "other" / "seed0" / "eval" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "num_videos": metrics["num_videos"] - 1}))
    with pytest.raises(MixedProtocolError, match="numbers of test videos"):
        aggregate_study(spec, out)
    metrics_file.write_text(json.dumps(metrics))
    # a changed own recipe is refused for its started cells, naming the key
    _own_recipe(tmp_path, optim__momentum=0.5)
    before = _files(out / "cells")
    with pytest.raises(StudyChangedError, match=r"cell other/seed0 was started with optim\.momentum=0\.9"):
        run_study(load_study_spec(spec_file, [f"data.root={tiny_prepared}"]), out, progress=False)
    assert _files(out / "cells") == before


def test_a_variant_with_its_own_recipe_must_share_the_comparison(tiny_prepared, tmp_path, capsys):
    """Its clip and epochs are its own, but not the views, the split or the validation hold-out."""
    spec_file = _own_recipe_spec(tmp_path, _own_recipe(tmp_path, data__val_fraction=0.25))
    assert main(["study", str(spec_file), "--out", str(tmp_path / "o"), f"data.root={tiny_prepared}"]) == 2
    err = capsys.readouterr().err
    assert "variants.other" in err and "val_fraction is 0.25" in err and "num_frames" not in err
    assert not (tmp_path / "o").exists()
    # on the study's own recipe the clip is still part of the protocol
    spec_file.write_text(spec_file.read_text() + "  short: [data.num_frames=4]\n")
    _own_recipe(tmp_path)
    assert main(["study", str(spec_file), "--out", str(tmp_path / "o"), f"data.root={tiny_prepared}"]) == 2
    assert "variants.short" in capsys.readouterr().err


def test_a_variant_mapping_is_checked_like_the_rest_of_the_spec(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\nrecipe: {SMOKE.parent / 'smoke_base.yaml'}\nseeds: [0, 1]\nreference: table9\n"
                    "baseline: baseline\nvariants:\n  baseline: []\n  a: {recipe: nowhere/none.yaml}\n"
                    "  b: {overrides: [optim.lr=0.1], lr: 3}\n")
    assert main(["study", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "variants.a.recipe" in err and "nowhere/none.yaml does not exist" in err
    assert "variants.b.recipe: is required" in err and "variants.b.lr: unknown variant key" in err
    assert "reference" in err and "table9" in err


def test_the_table7_backbones_dry_run_lists_every_family_without_prepared_data(tmp_path, capsys):
    """Planned on a machine without the data: the cells, each variant's own recipe and clip,
    and a line saying the data is not prepared (so no projected time); nothing written."""
    out = tmp_path / "t7b"
    assert main(["study", "studies/table7_backbones", "--out", str(out), "--dry-run",
                 f"data.root={tmp_path / 'not_prepared'}"]) == 0
    text = capsys.readouterr().out
    assert "9 variant(s) x 3 seed(s) = 27 cells" in text and "not prepared here yet" in text and "projected:" not in text
    assert "slowfast_r50: own recipe" in text and "32f/2 @224" in text and "x3d_m_snl: own recipe" in text
    assert "swin3d_t: own recipe" in text and "mvit_v2_s: own recipe" in text
    assert "snl: nonlocal_blocks.kind: None -> 'snl'" in text
    assert not out.exists()
    # the real run refuses to start without the data
    assert main(["study", "studies/table7_backbones", "--out", str(out), f"data.root={tmp_path / 'not_prepared'}"]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()
