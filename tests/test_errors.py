"""encoders.errors: one rule turns an error into the line and exit code of every command."""
import errno
import os
import re

from hypothesis import given, settings, strategies as st

import encoders.errors as errors
from encoders.errors import INTERRUPTED, USER_ERROR, EncodersError, exit_line
from encoders.use.cli import main
from tests.helpers import ROOT, run_module

USER_ERRORS = [getattr(errors, name) for name in dir(errors)
               if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), EncodersError)]


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(USER_ERRORS), message=st.text(max_size=80))
def test_every_user_error_is_one_line_with_its_type_and_user_error(kind, message):
    line, code = exit_line(kind(message))
    assert code == USER_ERROR and "\n" not in line
    assert line == f"{kind.__name__}: {message.replace(chr(10), ' ')}"


def test_interrupts_missing_files_and_bugs():
    assert exit_line(KeyboardInterrupt())[1] == INTERRUPTED == 130
    assert exit_line(FileNotFoundError("no such checkpoint file: x.ckpt")) == (
        "FileNotFoundError: no such checkpoint file: x.ckpt", USER_ERROR)
    for bug in (RuntimeError("boom"), ValueError("deep"), TypeError("t"), OSError(errno.EACCES, "denied")):
        assert exit_line(bug) is None  # not the user's to fix: the traceback shows


def test_moved_error_classes_keep_their_old_names():
    from encoders.use.export import ExportError
    from encoders.use.trained_run import TaskError

    assert ExportError is errors.ExportError and TaskError is errors.TaskError
    assert issubclass(TaskError, TypeError) and issubclass(TaskError, EncodersError)
    assert issubclass(ExportError, ValueError)


def test_no_error_class_is_defined_outside_errors_py_in_the_commands():
    for folder in ("encoders/use", "encoders/convert"):
        for name in os.listdir(os.path.join(ROOT, folder)):
            if name.endswith(".py"):
                text = open(os.path.join(ROOT, folder, name)).read()
                assert not re.search(r"^class \w+\((\w+)?Error", text, re.M), (folder, name)


def test_convert_ends_through_the_cli_handler_like_every_command(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    assert main(["convert", missing]) == USER_ERROR
    err = capsys.readouterr().err
    assert err == f"error: RunDirError: no such run dir: {missing}\n"
    assert main(["predict", missing, "-"]) == USER_ERROR
    assert capsys.readouterr().err == err  # the same line from another command
    for args in (["encoders.convert", missing], ["encoders", "convert", missing]):
        proc = run_module(*args, timeout=120)
        assert proc.returncode == USER_ERROR and proc.stderr == err and proc.stdout == "", proc.stderr[-2000:]
