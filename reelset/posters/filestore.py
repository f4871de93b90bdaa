"""Content-addressed poster files: ``posters_dir/<sha256[:2]>/<sha256>.<ext>``.

No file or folder name is ever derived from anything remote: names come from the SHA-256
of the verified bytes and the extension of the verified format. Byte-identical posters
therefore share one file.

Writes are atomic (:func:`reelset.files.write_bytes`): the bytes go to a temporary file
in the final folder (named ``.reelset-tmp-<pid>-<random>-<final name>``), are fsynced,
renamed over the final name, and the folder is fsynced. A killed process leaves at most a
temporary file, never a partial file under a final name; :meth:`PosterFiles.scan` with
:meth:`PosterFiles.temp_file` and :func:`temp_is_stale` find the leftovers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

# The temporary files are reelset.files' own; re-exported for the posters' callers.
from reelset.files import TEMP_PREFIX as TEMP_PREFIX
from reelset.files import TempFile, fsync_dir, temp_file, write_bytes
from reelset.files import temp_is_stale as temp_is_stale

log = logging.getLogger(__name__)

_HEX64 = r"[0-9a-f]{64}"
_NAME = rf"(?P<sha>{_HEX64})(?:\.r(?P<side>[1-9][0-9]{{0,4}}))?\.(?P<ext>[a-z0-9]{{1,5}})"
POSTER_NAME_RE = re.compile(rf"^{_NAME}$")
"""A poster file name: ``<sha256>.<ext>`` or a training copy ``<sha256>.r<N>.jpg``."""
RELPATH_RE = re.compile(rf"^(?P<shard>[0-9a-f]{{2}})/(?P<name>{_NAME})$")


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def poster_relpath(sha256: str, ext: str) -> str:
    """``<sha256[:2]>/<sha256>.<ext>``: where a poster's bytes live (POSIX, relative)."""
    return f"{sha256[:2]}/{sha256}.{ext}"


def resized_relpath(sha256: str, max_side: int) -> str:
    """``<sha256[:2]>/<sha256>.r<N>.jpg``: the training copy of a poster."""
    return f"{sha256[:2]}/{sha256}.r{max_side}.jpg"


def is_valid_relpath(relpath: str) -> bool:
    """Whether ``relpath`` (e.g. from the store) is a name this module could have made."""
    match = RELPATH_RE.match(relpath)
    return match is not None and match.group("sha").startswith(match.group("shard"))


def file_sha256(path: Path, *, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class PosterFiles:
    """The posters folder: atomic writes, lookups and scans. Thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards_made: set[str] = set()
        self._lock = threading.Lock()

    def path(self, relpath: str) -> Path:
        """The absolute path of a relative poster path (which must be valid)."""
        if not is_valid_relpath(relpath):
            raise ValueError(f"not a poster file path: {relpath!r}")
        return self.root / relpath

    def prepare(self) -> None:
        """Create the root and its 256 shard folders, durably, before concurrent writes.

        Raises :class:`OSError` when the root cannot be made. A shard with something
        else than a folder in its place is left alone (with a warning): writes to it
        fail, one poster at a time, and the others go on.
        """
        with self._lock:
            self._make_root()
            made = False
            for value in range(256):
                shard = f"{value:02x}"
                folder = self.root / shard
                if not folder.is_dir():
                    try:
                        folder.mkdir(exist_ok=True)
                    except FileExistsError:
                        log.warning("%s is not a folder: posters cannot be written there", folder)
                        continue
                    made = True
                self._shards_made.add(shard)
            if made:
                fsync_dir(self.root)

    def _make_root(self) -> None:
        """Create the root durably if it is missing (under ``self._lock``)."""
        root_new = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        if root_new:
            fsync_dir(self.root.parent)

    def _shard_dir(self, relpath: str) -> Path:
        shard = relpath.split("/", 1)[0]
        folder = self.root / shard
        if shard in self._shards_made:
            return folder
        with self._lock:
            if shard not in self._shards_made:
                self._make_root()
                if not folder.exists():
                    folder.mkdir(exist_ok=True)
                    fsync_dir(self.root)
                self._shards_made.add(shard)
        return folder

    def holds(self, relpath: str, sha256: str) -> bool:
        """Whether the file at ``relpath`` exists with exactly this content hash."""
        path = self.path(relpath)
        try:
            return file_sha256(path) == sha256
        except FileNotFoundError:
            return False

    def write(self, relpath: str, data: bytes) -> None:
        """Write ``data`` to ``relpath`` atomically and durably (temp file, fsync, rename)."""
        final = self.path(relpath)
        self._shard_dir(relpath)
        write_bytes(final, data)

    def remove(self, relpath: str) -> bool:
        """Delete a poster file; returns whether it existed."""
        path = self.path(relpath)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def scan(self) -> Iterator[tuple[str, Path]]:
        """Every file under the root as ``(relative POSIX path, path)``, sorted per folder."""
        if not self.root.is_dir():
            return
        for top in sorted(os.scandir(self.root), key=lambda e: e.name):
            if top.is_dir(follow_symlinks=False):
                for entry in sorted(os.scandir(top.path), key=lambda e: e.name):
                    yield f"{top.name}/{entry.name}", Path(entry.path)
            else:
                yield top.name, Path(top.path)

    @staticmethod
    def temp_file(path: Path) -> TempFile | None:
        """Describe ``path`` if it is one of our temporary files."""
        return temp_file(path)
