"""The one atomic write: temp file in the same folder, fsync, rename, fsync the folder.

A reader sees the old file or the whole new one, never a part of it. The bytes go to a
temporary file beside the final name, ``.reelset-tmp-<pid>-<random>-<final name>``; it is
fsynced, renamed over the final name, and the folder is fsynced so that the rename
survives a crash. When the write fails the temporary file is removed; a killed process
leaves at most a temporary file, never a partial file under a final name.
:func:`temp_file` recognizes such leftovers and :func:`temp_is_stale` judges them.

Three forms: :func:`write_bytes`, :func:`write_text`, and :func:`atomic_path` for writers
that want a path of their own (pyarrow's parquet writer, matplotlib).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TEMP_PREFIX = ".reelset-tmp-"
TEMP_STALE_AFTER_S = 3600.0
"""A temporary file older than this is stale even when its process id is alive."""

_TEMP_RE = re.compile(rf"^{re.escape(TEMP_PREFIX)}(?P<pid>[0-9]+)-(?P<rand>[0-9a-f]+)-")

# File systems that cannot sync a folder answer these; there is nothing more to do there.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


@dataclass(frozen=True)
class TempFile:
    """A temporary file left beside its final name."""

    path: Path
    pid: int | None
    age_s: float


def temp_path(final: Path) -> Path:
    """A fresh temporary path in ``final``'s folder (its name says process and target)."""
    return final.parent / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{final.name}"


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make new entries and renames in the folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


@contextmanager
def _replacing(final: Path, *, sync_folder: bool = True) -> Iterator[Path]:
    """A temporary path the body fills and syncs; then renamed to ``final``, folder synced
    (unless the caller syncs the folder itself, later: ``sync_folder=False``)."""
    tmp = temp_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_dir(final.parent)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path for a writer to create; on success it becomes ``final`` atomically.

    ``with atomic_path(p) as tmp: pq.write_table(table, tmp)``. When the body raises, the
    temporary file is removed and ``final`` is left as it was.
    """
    with _replacing(final) as tmp:
        yield tmp
        fsync_file(tmp)


def install(source: Path, final: Path) -> None:
    """Move a finished file (e.g. a verified download) to ``final`` atomically and durably:
    its bytes synced, renamed over ``final`` (same folder or file system), folder synced."""
    fsync_file(source)
    os.replace(source, final)
    fsync_dir(final.parent)


def write_bytes(final: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write ``data`` to ``final`` atomically and durably.

    ``sync_folder=False`` leaves the fsync of the folder (which makes the rename durable)
    to the caller, who may then sync a folder once for many files.
    """
    with _replacing(final, sync_folder=sync_folder) as tmp:
        # 0o666 less the umask: the mode pyarrow and open() give the files they create.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(final: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``final`` atomically and durably."""
    write_bytes(final, text.encode("utf-8"))


def temp_file(path: Path) -> TempFile | None:
    """Describe ``path`` if it is one of our temporary files, else None."""
    match = _TEMP_RE.match(path.name)
    if not match:
        return None
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        age = 0.0
    return TempFile(path=path, pid=int(match.group("pid")), age_s=age)


def temp_is_stale(temp: TempFile) -> bool:
    """Whether a temporary file was left by a process that is gone (or is old)."""
    if temp.age_s > TEMP_STALE_AFTER_S or temp.pid is None:
        return True
    if temp.pid == os.getpid():
        return False
    try:
        os.kill(temp.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
