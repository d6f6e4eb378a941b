"""Atomic writes: a file or folder lexcoder writes holds either its old complete content or the new one.

Why: a command can stop at any moment (Ctrl-C, a killed job, a full disk), and a half-written
``predictions.parquet`` or model would later be read as if it were complete. So every write goes to a
temporary name in the same folder (``.<name>.XXXX.tmp``: the same file system, so the final rename is
atomic), is flushed to disk, and is renamed onto the final name only when the whole write succeeded. A
failed write leaves nothing behind; what a killed process left, the ``.*.tmp`` / ``.*.old`` names, is
lexcoder's own and is cleared by :func:`lexcoder.rundir.remove_debris`. A write error the user can fix
(disk full, read-only folder, no permission) becomes one :class:`~lexcoder.errors.LexcoderError` naming
the path.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import LexcoderError

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder (so the final ``os.replace`` is atomic), is flushed to
    disk before the rename, and gets the permissions the user's umask gives a new file (``mkstemp``
    alone would leave 0600, unreadable for colleagues on a shared drive). A failed block leaves nothing.
    A full disk, a read-only folder or a missing permission raise one :class:`LexcoderError` naming
    ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _as_write_error(err, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _fsync_path(tmp_path)
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
        _fsync_path(path.parent)
    except OSError as err:
        if err.errno in _WRITE_ERRNOS:
            raise _as_write_error(err, path) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it replaces ``path`` (a folder) only if the block succeeds.

    Used for saved models: a reader sees the old complete model or the new complete one, never a mix,
    and a failure (disk full, interrupted save) leaves the old one in place and no debris.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise _as_write_error(err, path) from None
    old = path.with_name(f".{path.name[:100]}.{tmp.name.rsplit('.', 2)[-2]}.old")
    try:
        yield tmp
        _finish_tree(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except OSError as err:
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the previous complete version back
        if err.errno in _WRITE_ERRNOS:
            raise _as_write_error(err, path) from None
        raise
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def current_umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_path(path: Path) -> None:
    """Flush a file's (or directory's) data to disk; directories are not fsync-able everywhere."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _finish_tree(root: Path) -> None:
    """fsync every file under ``root`` and give folders the umask's permissions (mkdtemp makes 0700)."""
    mask = current_umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder))


def _as_write_error(err: OSError, path: Path) -> LexcoderError:
    reason = err.strerror or str(err)
    hint = {errno.ENOSPC: "Free some disk space", errno.EDQUOT: "Free some of your disk quota",
            errno.EFBIG: "Write to a file system that allows larger files"}.get(
        err.errno, "Choose a folder you can write to")
    return LexcoderError(f"Cannot write {path}: {reason}. {hint}, then run the command again (nothing "
                         "half-written was left behind; `--resume` continues an interrupted run).")
