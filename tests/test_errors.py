"""The project's error types: each layer's family is a project error, and those a user causes
stay the built-in type existing callers catch."""

from __future__ import annotations

import pytest

from snl_video.errors import Interrupted, InvalidValueError, MissingFileError, SnlVideoError, UserError


def test_user_errors_are_also_the_builtin_type_callers_catch():
    assert issubclass(InvalidValueError, ValueError) and issubclass(InvalidValueError, UserError)
    assert issubclass(MissingFileError, FileNotFoundError) and issubclass(MissingFileError, UserError)
    assert issubclass(UserError, SnlVideoError)


def test_interrupted_is_not_caught_by_except_exception():
    assert issubclass(Interrupted, KeyboardInterrupt) and not issubclass(Interrupted, Exception)


@pytest.mark.parametrize("path, name, builtin", [
    ("snl_video.config", "ConfigError", ValueError),
    ("snl_video.weights.errors", "WeightsError", ValueError),
    ("snl_video.weights.errors", "CheckpointReadError", ValueError),
    ("snl_video.engine.resume", "ResumeConfigError", ValueError),
    ("snl_video.engine.state_fit", "CheckpointMismatchError", ValueError),
    ("snl_video.models.ffc", "FFCInputSizeError", ValueError),
    ("snl_video.data.ucf101", "SplitFileError", ValueError),
    ("snl_video.data.sources", "ListFileError", ValueError),
    ("snl_video.data.splitting", "TooFewVideosError", ValueError),
    ("snl_video.data.prepare", "MissingVideosError", FileNotFoundError),
    ("snl_video.data.prepare", "PrepareBusyError", RuntimeError),
    ("snl_video.locking", "OutputLockedError", RuntimeError),
    ("snl_video.fileio", "OutputWriteError", OSError),
    ("snl_video.data.decoding", "DecodeError", RuntimeError),
    ("snl_video.data.datasets", "TooManyDecodeFailures", RuntimeError),
    ("snl_video.data.download", "DatasetDownloadError", RuntimeError),
    ("snl_video.engine.train", "NonFiniteLossError", RuntimeError),
])
def test_every_family_is_a_project_error_and_keeps_its_builtin_base(path, name, builtin):
    import importlib

    cls = getattr(importlib.import_module(path), name)
    assert issubclass(cls, SnlVideoError), f"{path}.{name} is not a project error: the CLI would print a traceback"
    assert issubclass(cls, builtin)
