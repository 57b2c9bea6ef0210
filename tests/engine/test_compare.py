"""``snl-video compare``: a Table-7-style table with deltas against the baseline row."""

from __future__ import annotations

import json

from snl_video.cli import main
from snl_video.config import save_config

from .conftest import tiny_config


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
