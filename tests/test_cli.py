"""The command-line edge: verbs exist, user errors are one clear line with exit code 2."""

from __future__ import annotations

import json

import pytest

from snl_video.cli import main


def test_nonlocal_json_reports_the_paper_parameter_counts(capsys):
    assert main(["nonlocal", "--json", "--channels", "1024"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    # Independent arithmetic: θ, φ, g (3·C·C_s) + one or two W (C_s·C) + BN (2·C).
    assert rows["snl"]["params"] == 3 * 1024 * 512 + 2 * 512 * 1024 + 2 * 1024
    assert rows["nl"]["params"] == 3 * 1024 * 512 + 512 * 1024 + 2 * 1024
    assert rows["snl"]["options"]["order"] == 1


def test_unknown_kind_is_a_one_line_error(capsys):
    assert main(["nonlocal", "gcnet"]) == 2
    err = capsys.readouterr().err
    assert "gcnet" in err and "snl" in err and "Traceback" not in err


def test_unknown_verb_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-verb"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_self_check_verifies_identity_and_linear_snl():
    from snl_video.commands.demo import self_check
    from snl_video.nonlocal_blocks import list_nonlocal_kinds

    lines = self_check()
    assert sum("identity at init: yes" in line for line in lines) == len(list_nonlocal_kinds("graph"))
    diff = float(lines[-1].rsplit(" ", 1)[-1])
    assert diff <= 1e-10


def test_nonlocal_lists_the_transform_kinds_and_their_options(capsys):
    assert main(["nonlocal", "--json", "--channels", "1024"]) == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert rows["srb"]["family"] == rows["bat"]["family"] == "transform"
    assert set(rows["srb"]["options"]) >= {"transform", "temporal", "groups", "spectrum_relu", "spatial_size"}
    assert rows["bat"]["options"] == {"r": 2, "s": 7, "k": 8, "tk": 4, "ts": 4, "dropout": 0.2, "zero_init": False}
    # Released SRB-FFT at C: 4C²/8 + 2C + 4C + 1 (alpha); BAT at the paper's setting: 1,367,784.
    assert rows["srb"]["params"] == 4 * 1024 * 1024 // 8 + 6 * 1024 + 1
    assert rows["bat"]["params"] == 1_367_784


def _raise(exc: BaseException):
    def run(*args, **kwargs):
        raise exc
    return run


def test_a_project_error_is_one_line_and_exit_2(monkeypatch, capsys):
    from snl_video.commands import nonlocal_cmd
    from snl_video.errors import InvalidValueError

    monkeypatch.setattr(nonlocal_cmd, "build_nonlocal", _raise(InvalidValueError("--channels 7: must be even")))
    assert main(["nonlocal", "snl"]) == 2
    err = capsys.readouterr().err
    assert err == "snl-video nonlocal: error: --channels 7: must be even\n"


@pytest.mark.parametrize("exc", [ValueError("internal: shapes differ"), KeyError("layer9"),
                                 TypeError("unsupported operand"), FileNotFoundError("/tmp/cache/x")])
def test_any_other_exception_keeps_its_traceback(monkeypatch, capsys, exc):
    # a bug in the library (here raised from a function the command calls) is not a user
    # error: it propagates out of main (Python prints the traceback), nothing is swallowed
    from snl_video.commands import nonlocal_cmd

    monkeypatch.setattr(nonlocal_cmd, "build_nonlocal", _raise(exc))
    with pytest.raises(type(exc)) as info:
        main(["nonlocal", "snl"])
    assert info.value is exc and info.value.__traceback__ is not None
    assert "error:" not in capsys.readouterr().err


def test_verbose_shows_the_traceback_of_a_project_error(monkeypatch):
    from snl_video.commands import nonlocal_cmd
    from snl_video.errors import UserError

    monkeypatch.setattr(nonlocal_cmd, "build_nonlocal", _raise(UserError("bad")))
    with pytest.raises(UserError):
        main(["-v", "nonlocal", "snl"])


def test_interrupted_is_one_line_and_exit_130(monkeypatch, capsys):
    from snl_video.commands import nonlocal_cmd
    from snl_video.errors import Interrupted

    monkeypatch.setattr(nonlocal_cmd, "build_nonlocal", _raise(Interrupted("kept 3 files; resume with: x")))
    assert main(["nonlocal", "snl"]) == 130
    assert capsys.readouterr().err == "snl-video nonlocal: interrupted: kept 3 files; resume with: x\n"


def test_user_error_is_still_importable_from_cli():
    import snl_video.cli
    import snl_video.errors

    assert snl_video.cli.UserError is snl_video.errors.UserError
    assert snl_video.cli.Interrupted is snl_video.errors.Interrupted


def test_version_comes_from_the_package_metadata(monkeypatch):
    from importlib import metadata

    import snl_video
    from snl_video import version

    assert snl_video.__version__ == metadata.version("snl_video")
    out = main_version_line()
    assert out == f"snl_video {metadata.version('snl_video')}"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version.metadata, "version", not_installed)
    assert version.package_version() == version.UNKNOWN_VERSION == "0+unknown"


def main_version_line() -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    return buffer.getvalue().strip()


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "{tmp}/missing.yaml"], "missing.yaml' does not exist"),
    (["config", "check", "{tmp}/recipe.yaml", "model.nmae=3"], "model.nmae: unknown key; did you mean 'name'?"),
    (["train", "--config", "{tmp}/recipe.yaml", "data.dataset=kinetics"], "unknown dataset 'kinetics'"),
    (["prepare", "ucf101", "--videos", "{tmp}/none", "--splits", "{tmp}", "--out", "{tmp}/o"], "is not a directory"),
    (["prepare", "list", "--train", "{tmp}/t.txt", "--test", "{tmp}/t.txt", "--root", "{tmp}", "--out", "{tmp}/o"],
     "--train list"),
    (["make-synthetic", "hmdb51", "--out", "{tmp}/s", "--clips-per-source", "3"], "multiples of --clips-per-source"),
    (["profile", "--model", "r3d99"], "unknown model 'r3d99'"),
    (["profile", "--model", "r3d10", "--nonlocal", "{{bad"], "--nonlocal is not valid JSON"),
])
def test_user_mistakes_of_each_kind_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "recipe.yaml").write_text("model: {name: r3d10}\n")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err and message in captured.err, captured.err
    assert lines[0].startswith(f"snl-video {argv[0]}") and len(lines) <= 2  # a config's problems: one per line


def test_an_unknown_flag_suggests_the_closest_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "some.mp4", "--weights", "w", "--topk", "3"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --topk" in err
    assert "did you mean --top-k?" in err
    assert "snl-video predict" in err  # the verb's usage, not the top-level one


def test_an_unknown_flag_with_nothing_close_gets_no_suggestion(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "some.mp4", "--weights", "w", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err
