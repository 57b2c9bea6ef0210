"""runtime.loggers: W&B (offline) and MLflow (a local file store) runs of a tiny training, read back.

Every test here is hermetic: W&B runs in offline mode with every folder it writes under the
test's tmp_path, MLflow logs to a file store under tmp_path, both trackers' telemetry and error
reporting are off, and :func:`no_network` fails a test whose process looks up or connects to
any host but this one.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any, Iterator

import pytest

from snl_video.config import ConfigError, config_from_dict, config_to_dict
from snl_video.engine import train as train_module
from snl_video.engine.evaluate import run_evaluation
from snl_video.engine.metric_log import read_history
from snl_video.engine.train import train
from snl_video.engine.trackers import TRACKERS_RECORD

from ..helpers import tiny_config

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", None, ""}


@pytest.fixture
def no_network(monkeypatch) -> Iterator[list[Any]]:
    """Record every name lookup or connection of this process to another host; the test fails on any."""
    attempts: list[Any] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            attempts.append(("lookup", host))
            raise OSError(f"test: no network ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            attempts.append(("connect", address))
            raise OSError(f"test: no network ({address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield attempts
    assert not attempts, f"a tracker tried to reach the network: {attempts}"


@pytest.fixture
def offline_trackers(monkeypatch, tmp_path, no_network) -> Path:
    """W&B offline and MLflow on a file store, everything under ``tmp_path / "trackers"``."""
    home = tmp_path / "trackers"
    env = {
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
        "WANDB_DISABLE_GIT": "true", "WANDB_PROJECT": "snl-test", "WANDB_DIR": str(home / "wandb_dir"),
        "WANDB_CONFIG_DIR": str(home / "wandb_config"), "WANDB_CACHE_DIR": str(home / "wandb_cache"),
        "WANDB_DATA_DIR": str(home / "wandb_data"), "WANDB_ARTIFACT_DIR": str(home / "wandb_artifacts"),
        "MLFLOW_TRACKING_URI": (home / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_API_KEY", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    (home / "wandb_dir").mkdir(parents=True)
    return home


def _recipe(tiny_prepared: Path, out: Path, loggers: list[str]):
    return tiny_config(tiny_prepared, out, schedule={"epochs": 2}, eval={"every_epochs": 1},
                       runtime={"loggers": loggers})


def _train_in_two_calls_and_evaluate(cfg, resumed_cfg=None):
    """Epoch 1, stop; ``--resume`` for epoch 2 (with ``resumed_cfg`` if given); the final evaluation."""
    train(cfg, stop_after_epochs=1)
    record_after_first_call = json.loads((Path(cfg.runtime.output_dir) / TRACKERS_RECORD).read_text())
    result = train(resumed_cfg or cfg, resume=True)
    assert result.epochs_done == (resumed_cfg or cfg).schedule.epochs
    report = run_evaluation(resumed_cfg or cfg, result.last_checkpoint)
    return record_after_first_call, report


def _dotted(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The recipe's leaves by dotted key (as a reader of either tracker would list them)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ----------------------------------------------------------------------------------- W&B


def _wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``.wandb`` transaction log (LevelDB's log format: 32 KiB blocks of
    chunks ``crc32 (4) | length (2) | type (1: full, 2: first, 3: middle, 4: last)``, after a
    7-byte header ``:W&B``, magic, version), read here without wandb's own reader."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += room
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            pending = chunk
        else:
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _read_wandb_run(folder: Path) -> dict[str, Any]:
    """Run id, name, config, history rows, summary and artifacts of one offline run folder."""
    (log,) = folder.glob("run-*.wandb")
    run: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "artifacts": []}
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["id"], run["name"] = record.run.run_id, record.run.display_name
            updates = record.run.config.update
        elif kind == "config":
            updates = record.config.update
        else:
            updates = []
        for item in updates:
            if item.key and not item.key.startswith("_"):
                run["config"][item.key] = json.loads(item.value_json)
        if kind == "history":
            run["history"].append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run["summary"]["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        elif kind == "artifact":
            run["artifacts"].append((record.artifact.name, record.artifact.type,
                                     sorted(entry.path for entry in record.artifact.manifest.contents)))
    return run


def test_wandb_offline_run_holds_the_recipe_metrics_evaluation_and_resumes_the_same_run(tiny_prepared, tmp_path,
                                                                                        offline_trackers):
    out = tmp_path / "run"
    cfg = _recipe(tiny_prepared, out, ["csv", "wandb"])
    record, report = _train_in_two_calls_and_evaluate(cfg)
    # W&B's writer is a service process that outlives run.finish(); its transaction logs are
    # complete once it has shut down (at exit for a user's process; here, before reading them:
    # a clean-clone CI run on a loaded machine once read a log that had no run record yet)
    import wandb

    wandb.teardown()

    # one offline folder per session: training, the resumed training, the evaluation; one run id
    folders = sorted((offline_trackers / "wandb_dir" / "wandb").glob("offline-run-*"))
    assert len(folders) == 3, folders
    runs = [_read_wandb_run(f) for f in folders]
    run_id = record["wandb"]["run_id"]
    assert [r["id"] for r in runs] == [run_id] * 3
    assert json.loads((out / TRACKERS_RECORD).read_text())["wandb"]["run_id"] == run_id
    assert runs[0]["name"] == "tiny-run"  # the recipe's name and the output folder
    assert not (out / "tensorboard").exists() and (out / "metrics.csv").is_file()  # only the loggers asked for

    # the resolved recipe is the run's config, every key of it
    logged = _dotted(runs[0]["config"])
    recipe = _dotted(config_to_dict(cfg))
    assert logged == recipe
    assert logged["optim.lr"] == 0.02 and logged["model.name"] == "r3d10" and logged["nonlocal_blocks.kind"] == "snl"

    # step and epoch metrics at the global step, as metrics.jsonl has them (both sessions)
    rows = [row for r in runs[:2] for row in r["history"]]
    history = read_history(out)
    for kind, name in (("step", "loss"), ("step", "lr"), ("epoch", "train_loss"), ("epoch", "val_clip_top1")):
        expected = [(h["step"], h[name]) for h in history if h["kind"] == kind]
        got = [(row["_step"], row[f"{kind}/{name}"]) for row in rows if f"{kind}/{name}" in row]
        assert len(expected) >= 2 and [s for s, _ in got] == [s for s, _ in expected], (kind, name)
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-12)

    # the evaluation: its figures in the summary, metrics.json and the PNG as an artifact
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert runs[2]["summary"]["eval/clip_top1"] == pytest.approx(metrics["clip_top1"]) == pytest.approx(report.clip_top1,
                                                                                                        abs=1e-4)
    assert runs[2]["summary"]["eval/video_top1"] == pytest.approx(metrics["video_top1"])
    assert runs[2]["artifacts"] == [(f"eval-{run_id}", "eval", ["confusion_matrix.png", "metrics.json"])]


# ----------------------------------------------------------------------------------- MLflow


def test_mlflow_file_store_run_holds_the_recipe_metrics_evaluation_and_resumes_the_same_run(tiny_prepared, tmp_path,
                                                                                            offline_trackers):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    cfg = _recipe(tiny_prepared, out, ["mlflow"])
    # the resumed call runs one epoch more than the first planned (schedule.epochs may change on resume)
    resumed = config_from_dict({**config_to_dict(cfg), "schedule": {**config_to_dict(cfg)["schedule"], "epochs": 3}})
    record, report = _train_in_two_calls_and_evaluate(cfg, resumed)

    client = MlflowClient(tracking_uri=(offline_trackers / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("snl_video")
    (run,) = client.search_runs([experiment.experiment_id])  # one run: the resume and the evaluation continued it
    assert run.info.run_id == record["mlflow"]["run_id"] == json.loads((out / TRACKERS_RECORD).read_text())["mlflow"]["run_id"]
    assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED"
    assert run.data.tags["snl_video.output_dir"] == str(out)
    assert not (out / "tensorboard").exists() and not (out / "metrics.csv").exists()  # loggers: [mlflow] only

    # the resolved recipe as dotted parameters (strings as they are, other values as JSON)
    params = run.data.params
    recipe = _dotted(config_to_dict(cfg))
    assert set(params) == set(recipe)
    assert params["optim.lr"] == "0.02" and params["model.name"] == "r3d10" and params["schedule.epochs"] == "2"
    assert params["runtime.loggers"] == '["mlflow"]' and params["data.num_frames"] == "6"
    # a parameter changed on resume is kept as logged, its new value as a tag
    assert run.data.tags["snl_video.resumed.schedule.epochs"] == "3"

    history = read_history(out)
    assert {h["epoch"] for h in history if h["kind"] == "epoch"} == {1, 2, 3}
    for kind, name in (("step", "loss"), ("step", "clips_per_s"), ("epoch", "train_loss"), ("epoch", "val_clip_top1")):
        expected = [(h["step"], h[name]) for h in history if h["kind"] == kind]
        got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, f"{kind}/{name}"))
        assert len(expected) >= 3 and [s for s, _ in got] == [s for s, _ in expected], (kind, name)
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-12)

    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert run.data.metrics["eval/clip_top1"] == pytest.approx(metrics["clip_top1"])
    assert run.data.metrics["eval/mean_class_accuracy"] == pytest.approx(report.mean_class_accuracy, abs=1e-4)
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "eval"))
    assert artifacts == ["eval/confusion_matrix.png", "eval/metrics.json"]
    local = Path(client.download_artifacts(run.info.run_id, "eval/metrics.json", str(tmp_path / "download")))
    assert json.loads(local.read_text()) == metrics


def test_a_fresh_run_in_a_folder_with_a_tracker_record_starts_a_new_tracker_run(tiny_prepared, tmp_path,
                                                                                offline_trackers):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    (out).mkdir()
    (out / TRACKERS_RECORD).write_text(json.dumps({"mlflow": {"run_id": "0123456789abcdef"}}))
    train(tiny_config(tiny_prepared, out, schedule={"epochs": 1}, runtime={"loggers": ["mlflow"]}))
    new_id = json.loads((out / TRACKERS_RECORD).read_text())["mlflow"]["run_id"]
    assert new_id != "0123456789abcdef"
    client = MlflowClient(tracking_uri=(offline_trackers / "mlruns").as_uri())
    assert client.get_run(new_id).info.status == "FINISHED"


# ----------------------------------------------------------------------------------- checks before the run


@pytest.mark.parametrize("missing", ["wandb", "mlflow"])
def test_a_tracker_that_is_not_installed_is_a_config_error_before_anything_is_built(tiny_prepared, tmp_path,
                                                                                   monkeypatch, missing):
    from snl_video.engine import trackers

    # the tracker's package under a name nothing installs: as if its extra were not installed
    monkeypatch.setitem(trackers.TRACKER_EXTRAS, missing, ("snl_video_test_absent", f"snl-video[{missing}]"))

    def must_not_build(*args, **kwargs):
        raise AssertionError("the model was built before the tracker check")

    monkeypatch.setattr(train_module, "build_model_from_config", must_not_build)
    cfg = tiny_config(tiny_prepared, tmp_path / "run", runtime={"loggers": ["csv", missing]})
    with pytest.raises(ConfigError) as info:
        train(cfg)
    message = str(info.value)
    assert "runtime.loggers" in message and f'pip install "snl-video[{missing}]"' in message
    assert not (tmp_path / "run").exists()


def test_an_mlflow_store_this_install_cannot_open_is_an_error_before_anything_is_built(tiny_prepared, tmp_path,
                                                                                      monkeypatch, offline_trackers):
    from snl_video.errors import UserError

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # MLflow 3 refuses its file store without it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://x")
    monkeypatch.setattr(train_module, "build_model_from_config",
                        lambda *a, **k: pytest.fail("built before the store check"))
    with pytest.raises(UserError, match="runtime.loggers has mlflow, but its tracking store nosuchscheme://x cannot be "
                                        "opened.*MLFLOW_TRACKING_URI"):
        train(tiny_config(tiny_prepared, tmp_path / "run", runtime={"loggers": ["mlflow"]}))
    assert not (tmp_path / "run").exists()


def test_loggers_key_and_the_tensorboard_shorthand():
    def active(runtime: dict) -> tuple[str, ...]:
        return config_from_dict({"runtime": runtime}).runtime.active_loggers()

    assert active({}) == ("tensorboard", "csv")  # the behaviour before the key existed
    assert active({"tensorboard": False}) == ("csv",)
    assert active({"tensorboard": True, "loggers": ["csv", "mlflow"]}) == ("tensorboard", "csv", "mlflow")
    assert active({"tensorboard": False, "loggers": ["tensorboard", "wandb"]}) == ("wandb",)
    assert active({"loggers": []}) == ()
    with pytest.raises(ConfigError, match=r"runtime.loggers\[1\]: invalid choice 'mlfow'.*did you mean 'mlflow'"):
        config_from_dict({"runtime": {"loggers": ["csv", "mlfow"]}})
    with pytest.raises(ConfigError, match="runtime.loggers: repeats a logger"):
        config_from_dict({"runtime": {"loggers": ["csv", "csv"]}})


def test_no_tracker_package_is_imported_by_the_library_until_a_run_opens_one():
    import subprocess
    import sys

    code = ("import sys, snl_video.engine.train, snl_video.engine.evaluate, snl_video.engine.trackers, "
            "snl_video.cli; print(sorted(m for m in ('wandb', 'mlflow') if m in sys.modules))")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo,
                          env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_mlflow_parameter_names_are_dotted_recipe_keys_and_user_mappings_stay_whole():
    from snl_video.engine.trackers import flatten_params

    params = {"optim": {"lr": 0.1, "lr_mult": {"head.*": 10.0}, "no_weight_decay_on": []},
              "model": {"options": {"widen_factor": 0.25}}, "data": {"extra": {}}}
    assert flatten_params(params) == {"optim.lr": 0.1, "optim.lr_mult": {"head.*": 10.0}, "optim.no_weight_decay_on": [],
                                      "model.options.widen_factor": 0.25, "data.extra": {}}


def test_under_torchrun_only_rank_0_logs_to_the_tracker(tiny_prepared, tmp_path, offline_trackers):
    # 2 gloo processes, then the final evaluation: one MLflow run, its recipe logged once, the
    # step metrics rank 0 wrote to metrics.jsonl and nothing else, the evaluation's files once.
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from snl_video.config import save_config

    out = tmp_path / "run"
    config_file = save_config(tiny_config(tiny_prepared, out, schedule={"epochs": 1},
                                          runtime={"loggers": ["csv", "mlflow"]}), tmp_path / "run.yaml")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}  # with the fixture's tracker settings
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "snl_video.cli", "train", "--config", str(config_file)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(tracking_uri=(offline_trackers / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("snl_video").experiment_id])
    assert run.info.run_id == json.loads((out / TRACKERS_RECORD).read_text())["mlflow"]["run_id"]
    assert run.info.status == "FINISHED" and run.data.params["runtime.loggers"] == '["csv", "mlflow"]'
    steps = [h["step"] for h in read_history(out) if h["kind"] == "step"]
    assert len(steps) >= 2
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "step/loss")) == steps
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "eval")) == [
        "eval/confusion_matrix.png", "eval/metrics.json"]
