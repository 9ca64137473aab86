"""The library's errors and the exit codes of its commands.

Every error is a ``ValueError``, so code that catches ``ValueError`` at the public boundary keeps
working. ``train.py`` and ``python -m encoders`` (every command, ``convert`` included) end through
:func:`exit_line`: an ``EncodersError`` becomes one line on stderr and exit code ``USER_ERROR``; a
run stopped by Ctrl-C exits with ``INTERRUPTED``.
"""
from __future__ import annotations

from typing import Optional, Tuple

USER_ERROR = 2  # exit code of a command stopped by an EncodersError: the message says what to change
INTERRUPTED = 130  # exit code of a run stopped by Ctrl-C (SIGINT), as shells report 128 + 2


class EncodersError(ValueError):
    """Something the user can fix; the message names the value, the key or the file."""


class ConfigError(EncodersError):
    """A config value or combination can't work; the message names the key and what to change."""


class DataError(EncodersError):
    """The data can't be used as configured; the message names the file, the row or the column."""


class UnsafeLoadError(EncodersError):
    """A file asks for code to run while it is loaded; it was refused and nothing ran."""


class RunDirError(EncodersError):
    """A run dir lacks what a command needs (its config, vocabulary or checkpoint), or is not one."""


class StorageError(EncodersError):
    """A file could not be written because the disk is full (or the quota is spent); the message
    names the file and what it holds. The write was atomic: the file's previous version is intact."""


class DataConfigError(ConfigError, DataError):
    """A ``data.*`` setting can't work (no file given, an unknown tokenizer): both kinds at once, so
    the data sources (used without the app) and ``train.py`` catch it by the name they expect."""


class TableError(DataError):
    """A table that cannot be read, lacks a column, or cannot be written; the message names the file."""


class TokenizerFileError(DataError):
    """A ``tokenizer.json`` that can't be used; the message names the file and the reason."""


class TaskError(EncodersError, TypeError):
    """A method or option that the run's task does not have (``predict_proba`` of a tagging run)."""


class ExportError(EncodersError):
    """The artefact could not be written, or it disagrees with the run's model."""


def exit_line(error: BaseException) -> Optional[Tuple[str, int]]:
    """The one line and the exit code that an entry point ends with for ``error``.

    The one rule for every command: a problem the user can fix (an ``EncodersError``, a file that is
    not there) is ``"TypeName: message"`` on one line (the message's line breaks become spaces) with
    ``USER_ERROR``; Ctrl-C is ``INTERRUPTED``. A full disk must already be a ``StorageError``
    (``encoders.io.storage_error``).

    Args:
        error: what ended the command.

    Returns:
        ``(line, exit code)``, or None for anything else: a bug, whose traceback should show.
    """
    if isinstance(error, KeyboardInterrupt):
        return "KeyboardInterrupt: stopped by Ctrl-C", INTERRUPTED
    if isinstance(error, (EncodersError, FileNotFoundError)):
        message = " ".join(str(error).split("\n"))
        return f"{type(error).__name__}: {message}", USER_ERROR
    return None
