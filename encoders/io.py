"""The project's file writes: every file it writes goes through here and is written atomically.

A temporary file in the target's own folder is written, fsynced and renamed over the target, so
a crash or a kill at any moment leaves either the old file or the new one, never a truncated one.
Files get the permissions ``open`` would give (the umask's; a replaced file keeps its own), not
``mkstemp``'s owner-only 0600.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator, List, Optional

TEMP_PREFIX = ".tmp-"  # every temporary written here: a file or folder so named is a write under way or a dead one
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # the OSErrors that mean "no room": the user's to fix
STALE_AFTER_S = 5.0  # a temporary untouched this long belongs to a killed write, not to one under way


def _umask_mode() -> int:
    return 0o666 & ~_umask_mode_bits()


def _what(path: str) -> str:
    """What a file of the project holds, for messages (the run dir's names are known in one place)."""
    from encoders.run.files import describe  # imports nothing that imports this module

    return describe(path)


def storage_error(e: OSError, path: str = "", where: str = "") -> "Exception":
    """A full disk as a one-line error naming the file and what it holds.

    Args:
        e: the error a write raised.
        path: the file being written (default: the error's own ``filename``).
        where: where a framework's own write went (e.g. the run dir), for an error that names no file.

    Returns:
        A ``StorageError`` for ENOSPC or EDQUOT; any other ``OSError`` as it is.
    """
    from encoders.errors import StorageError

    if e.errno not in FULL_DISK:
        return e
    problem = os.strerror(e.errno).lower()
    path = path or e.filename
    if not path:  # a framework's own write that did not say which file (Keras' backup, TensorBoard)
        return StorageError(f"{problem} while writing a file{f' in {where}' if where else ''}: free some space; "
                            f"the checkpoints written before are intact")
    return StorageError(f"{problem} while writing the {_what(str(path))} {path}: free some space; files written "
                        f"before are intact")


def _fsync_dir(folder: str) -> None:
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_with(path: str, write: Callable[[str], Any]) -> None:
    """Write a file with any writer, then put it in place in one rename.

    Args:
        path: the file to write or replace.
        write: called with a temporary path in ``path``'s folder and writes the file there (e.g.
            ``model.save``, ``fig.savefig``). The temporary name keeps ``path``'s extension, for
            writers that check it.

    Raises:
        StorageError: the disk is full (the old file, if any, is intact).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # the mode a plain open() would give: the umask's, or that of the file being replaced
        os.chmod(tmp, os.stat(path).st_mode & 0o7777 if os.path.exists(path) else _umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in FULL_DISK:
            raise storage_error(e, path) from None
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write_with``)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write_with(path, write)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` to ``path`` as indented JSON with sorted keys, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_folder(path: str, replace: bool = False) -> Iterator[str]:
    """Fill the yielded temporary folder; it then becomes ``path`` in one rename (nothing on error).

    Args:
        path: the folder to write.
        replace: if ``path`` exists, move it aside first (and delete it after the rename); without
            it an existing ``path`` is kept and the new copy dropped (another process wrote the
            same thing meanwhile).

    Yields:
        The temporary folder to fill, beside ``path``.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=TEMP_PREFIX)
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask_mode_bits())
        if replace and os.path.isdir(path):
            old = tempfile.mkdtemp(dir=parent, prefix=".old-")
            os.rename(path, os.path.join(old, "previous"))
        try:
            os.rename(tmp, path)
        except OSError:
            if not os.path.isdir(path):
                raise
        else:
            _fsync_dir(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old:
            shutil.rmtree(old, ignore_errors=True)


def try_flock(path: str, shared: bool = False) -> Optional[int]:
    """An open descriptor of ``path`` (a file or a folder) holding an ``flock`` on it, or None when
    another holds a conflicting one. How our processes mark what is theirs while they live (the
    threads registry's files, the cache's working folders): a lock goes with its process however
    it ends. Raises OSError when ``path`` can't be opened."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def held_by_a_live_process(path: str) -> bool:
    """Whether a live process (this one included) holds an ``flock`` on ``path`` (``try_flock``)."""
    try:
        fd = try_flock(path, shared=True)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)  # (closing lets go of the lock taken here)
    return False


def remove_leftover_temporaries(folder: str) -> List[str]:
    """Delete the temporaries of killed writes (``.tmp-*`` files and folders) directly in ``folder``.

    A kill -9 during a write skips the cleanup above and leaves them (a 2 MB ``.tmp-...last.ckpt``
    beside the good checkpoint). One modified in the last ``STALE_AFTER_S`` seconds is left
    alone: another process (a DDP rank) may be writing it now.

    Args:
        folder: the folder to clean (not its subfolders); a missing one is nothing to do.

    Returns:
        The paths deleted.
    """
    import time

    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = os.path.join(folder, name)
        try:
            if not name.startswith(TEMP_PREFIX) or now - os.lstat(path).st_mtime < STALE_AFTER_S:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            pass
    return removed


def _umask_mode_bits() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
