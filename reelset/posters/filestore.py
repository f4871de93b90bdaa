"""Content-addressed poster files: ``<posters_dir>/<sha256[:2]>/<sha256>.<ext>``.

No file or folder name is ever derived from anything remote: names come from the SHA-256
of the verified bytes and the extension of the verified format. Byte-identical posters
therefore share one file.

:class:`PosterStore` is the small interface the downloader and the audit use
(``exists``/``holds``, ``put``, ``get``, ``size``, ``sha256``, ``delete``, ``entries``);
:meth:`PosterStore.for_settings` picks the implementation for ``[storage] posters_dir``:

* :class:`PosterFiles`, a local folder (also ``file://`` URLs). Writes are atomic
  (:func:`reelset.files.write_bytes`): the bytes go to a temporary file in the final
  folder (named ``.reelset-tmp-<pid>-<random>-<final name>``), are fsynced, renamed over
  the final name, and the folder is fsynced. A killed process leaves at most a temporary
  file, never a partial file under a final name; :meth:`PosterStore.entries` reports the
  leftovers (:func:`temp_is_stale` judges them). A downloader that records its rows in
  batches may defer the folder fsyncs (:meth:`PosterStore.defer_folder_syncs`) and call
  :meth:`PosterStore.sync` before it writes a batch: each folder that gained a file is
  then fsynced once per batch instead of once per file (on ext4 the first one commits
  the journal and the others find nothing left to do), and still before any row points
  at the file.
* :class:`ObjectPosterFiles`, object storage through fsspec (``s3://bucket/prefix``,
  ``gs://...``). An object is written with one PUT of the whole bytes, which the store
  makes visible completely or not at all: no partial object ever exists under a final
  key, and there are no temporary objects. Since names are content hashes, an object
  that exists holds these bytes (its size is checked too), so it is never uploaded
  again. Credentials come from the backend's own environment (``AWS_*`` variables,
  profiles, instance roles); ``[storage] storage_options`` carries only non-secret
  options. One filesystem instance serves the whole process (fsspec caches instances;
  s3fs's synchronous calls are thread-safe), so connections are pooled, not made per
  poster.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from reelset.errors import ConfigError

# The temporary files are reelset.files' own; re-exported for the posters' callers.
from reelset.files import TEMP_PREFIX as TEMP_PREFIX
from reelset.files import TempFile, fsync_dir, temp_file, write_bytes
from reelset.files import temp_is_stale as temp_is_stale
from reelset.redaction import redact, redact_url

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from reelset.config import Settings

log = logging.getLogger(__name__)

_HEX64 = r"[0-9a-f]{64}"
_NAME = rf"(?P<sha>{_HEX64})(?:\.r(?P<side>[1-9][0-9]{{0,4}}))?\.(?P<ext>[a-z0-9]{{1,5}})"
POSTER_NAME_RE = re.compile(rf"^{_NAME}$")
"""A poster file name: ``<sha256>.<ext>`` or a training copy ``<sha256>.r<N>.jpg``."""
RELPATH_RE = re.compile(rf"^(?P<shard>[0-9a-f]{{2}})/(?P<name>{_NAME})$")
_S3_SINGLE_PUT_LIMIT = 5 * 2**30
"""The largest object S3 takes in one PUT."""


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


def _check_listed(relpath: str) -> str:
    """``relpath`` if it is a plain relative POSIX path (as :meth:`PosterStore.entries`
    gives), so that deleting it cannot reach outside the root."""
    parts = PurePosixPath(relpath).parts
    if (
        not parts
        or relpath.startswith("/")
        or "\\" in relpath
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"not a path under the posters root: {relpath!r}")
    return relpath


@dataclass(frozen=True)
class StoredFile:
    """One entry under the posters root, as :meth:`PosterStore.entries` lists it.

    ``is_file`` is false for folders and symlinks in a local folder (never followed);
    ``temp`` describes a local temporary file (object stores have none).
    """

    rel: str
    size: int
    is_file: bool = True
    temp: TempFile | None = None


class PosterStore(abc.ABC):
    """Where the poster files live: a local folder or an object-storage prefix.

    Every ``rel`` is a relative POSIX path, ``<sha256[:2]>/<name>``. Methods raise
    :class:`OSError` when the storage fails (:class:`FileNotFoundError` for a missing
    file) and :class:`ValueError` for a path this module could not have made.
    Thread-safe.
    """

    location: str
    """Where the files are, for messages (a folder or a URL without credentials)."""

    @staticmethod
    def for_settings(settings: Settings) -> PosterStore:
        """The store of ``[storage] posters_dir`` (and ``storage_options``).

        Raises :class:`~reelset.errors.ConfigError` when the URL's backend is not
        installed (e.g. ``s3://`` without s3fs) or rejects the options.
        """
        url = settings.posters_url
        if url is None:
            return PosterFiles(settings.posters_dir)
        return ObjectPosterFiles(url, settings.storage.storage_options)

    @abc.abstractmethod
    def prepare(self) -> None:
        """Make sure the root can be written before concurrent writes (raises OSError)."""

    def defer_folder_syncs(self) -> None:
        """From now on, :meth:`put` leaves making its new name durable to :meth:`sync`.

        A file written is complete under its final name at once either way; only the
        fsync of its folder (which makes the rename survive a crash) waits. The caller
        must call :meth:`sync` before recording anything that points at such a file.
        Stores whose writes are durable when they return (object storage) ignore it.
        """
        return None  # here: every put is durable when it returns

    def sync(self) -> None:
        """Make every file :meth:`put` since the last call durable (raises OSError)."""
        return None  # nothing was deferred

    @abc.abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether a file is at ``rel``."""

    @abc.abstractmethod
    def holds(self, rel: str, sha256: str, size: int | None = None) -> bool:
        """Whether ``rel`` holds the bytes with this hash (and size), so that writing
        them again is useless."""

    @abc.abstractmethod
    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel``: complete or absent, never partial."""

    @abc.abstractmethod
    def get(self, rel: str) -> bytes:
        """The bytes at ``rel`` (:class:`FileNotFoundError` when missing)."""

    @abc.abstractmethod
    def size(self, rel: str) -> int:
        """The size in bytes of the file at ``rel`` (:class:`FileNotFoundError`)."""

    @abc.abstractmethod
    def sha256(self, rel: str) -> str:
        """The hex SHA-256 of the file at ``rel`` (:class:`FileNotFoundError`)."""

    @abc.abstractmethod
    def delete(self, rel: str) -> bool:
        """Delete the file at ``rel`` (any path :meth:`entries` gave); whether it existed."""

    @abc.abstractmethod
    def entries(self) -> Iterator[StoredFile]:
        """Everything under the root, sorted by path (folders two levels deep at most)."""


class PosterFiles(PosterStore):
    """A local posters folder: atomic, durable writes (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._shards_made: set[str] = set()
        self._lock = threading.Lock()
        self._defer_syncs = False
        self._unsynced: set[str] = set()  # shards with renames not yet fsynced

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

    def exists(self, rel: str) -> bool:
        """Whether a file (or anything) is at ``rel``."""
        return self.path(rel).exists()

    def holds(self, rel: str, sha256: str, size: int | None = None) -> bool:
        """Whether the file at ``rel`` exists with exactly this content hash (re-hashed:
        a local file may have been damaged in place)."""
        try:
            return self.sha256(rel) == sha256
        except (FileNotFoundError, IsADirectoryError):
            return False

    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` atomically and durably (temp file, fsync, rename,
        fsync of the folder: here, or in :meth:`sync` after :meth:`defer_folder_syncs`)."""
        final = self.path(rel)
        self._shard_dir(rel)
        write_bytes(final, data, sync_folder=not self._defer_syncs)
        if not self._defer_syncs:
            return
        with self._lock:  # after the rename: a sync that misses it precedes its row
            self._unsynced.add(final.parent.name)

    def defer_folder_syncs(self) -> None:
        """Leave the folder fsyncs of :meth:`put` to :meth:`sync` (see the base class)."""
        self._defer_syncs = True

    def sync(self) -> None:
        """fsync each shard folder that gained a file since the last call, once."""
        with self._lock:
            shards, self._unsynced = sorted(self._unsynced), set()
        for done, shard in enumerate(shards):
            try:
                fsync_dir(self.root / shard)
            except BaseException:
                with self._lock:  # not durable yet: the next sync tries them again
                    self._unsynced.update(shards[done:])
                raise

    write = put

    def get(self, rel: str) -> bytes:
        """The bytes of the file at ``rel``."""
        return self.path(rel).read_bytes()

    def size(self, rel: str) -> int:
        """The size of the file at ``rel``."""
        return self.path(rel).stat().st_size

    def sha256(self, rel: str) -> str:
        """The hex SHA-256 of the file at ``rel``, read in chunks."""
        return file_sha256(self.path(rel))

    def delete(self, rel: str) -> bool:
        """Delete the file at ``rel`` (a poster, or a leftover :meth:`entries` listed)."""
        try:
            (self.root / _check_listed(rel)).unlink()
        except FileNotFoundError:
            return False
        return True

    def remove(self, relpath: str) -> bool:
        """Delete a poster file; returns whether it existed."""
        return self.delete(self.path(relpath).relative_to(self.root).as_posix())

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

    def entries(self) -> Iterator[StoredFile]:
        """:meth:`scan` with sizes, file types and temporary files recognised."""
        for rel, path in self.scan():
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # removed while we listed (a temp file renamed, say)
            is_file = path.is_file() and not path.is_symlink()
            temp = temp_file(path) if is_file else None
            yield StoredFile(rel, st.st_size, is_file, temp)

    @staticmethod
    def temp_file(path: Path) -> TempFile | None:
        """Describe ``path`` if it is one of our temporary files."""
        return temp_file(path)


class ObjectPosterFiles(PosterStore):
    """Posters under an object-storage prefix, through fsspec (``s3://bucket/prefix``).

    Errors of the backend's own kinds (botocore's connection errors, say) are raised as
    :class:`OSError` with one line that names the location, never a credential.
    """

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.location = redact_url(self.url)
        scheme = self.url.split("://", 1)[0]
        # No listings cache: another process (or a person) may add or delete objects at
        # any time, and a stale "exists" would skip an upload.
        # A deep copy: s3fs fills in the nested config_kwargs it is given, which would
        # change the settings and fsspec's instance-cache token (one instance per process).
        options = {**copy.deepcopy(storage_options or {}), "use_listings_cache": False}
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **options)
        except ImportError as exc:
            raise ConfigError(
                f"[storage] posters_dir {scheme}:// needs its fsspec backend "
                f"({exc}; for s3:// pip install 'reelset[s3]')"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"[storage] storage_options not accepted by {scheme}://: {redact(str(exc))}"
            ) from None
        self.fs: AbstractFileSystem = fs
        self.root = root.rstrip("/")
        self._s3 = "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))

    def _key(self, rel: str) -> str:
        if not is_valid_relpath(rel):
            raise ValueError(f"not a poster file path: {rel!r}")
        return f"{self.root}/{rel}"

    def _fail(self, action: str, rel: str, exc: Exception) -> OSError:
        """``exc`` as an :class:`OSError` naming what failed (first line, redacted)."""
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            detail = exc.strerror or str(exc)
        else:
            detail = f"{exc.__class__.__name__}: {exc}"
        line = (detail.splitlines() or [""])[0][:300]
        where = f"{self.location}/{rel}" if rel else self.location
        return OSError(redact(f"cannot {action} {where}: {line}"))

    def prepare(self) -> None:
        """Check that the bucket exists and answers (one request; prefixes need no making)."""
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.info(bucket)
        except FileNotFoundError:
            raise OSError(f"no such bucket: {bucket}") from None
        except Exception as exc:  # any backend error means: cannot use it
            raise self._fail("reach", "", exc) from None

    def _info(self, rel: str) -> dict[str, Any] | None:
        key = self._key(rel)
        try:
            info: dict[str, Any] = self.fs.info(key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("look up", rel, exc) from None
        return info if info.get("type", "file") == "file" else None

    def exists(self, rel: str) -> bool:
        """Whether an object is at ``rel`` (one HEAD request)."""
        return self._info(rel) is not None

    def holds(self, rel: str, sha256: str, size: int | None = None) -> bool:
        """Whether an object is at ``rel`` with this size: its name is its content hash,
        so an object written by reelset there holds these bytes."""
        info = self._info(rel)
        if info is None or not rel.split("/")[1].startswith(sha256):
            return False
        return size is None or int(info.get("size") or 0) == size

    def put(self, rel: str, data: bytes) -> None:
        """Upload ``data`` to ``rel`` in one request (atomic per object)."""
        key = self._key(rel)
        kwargs: dict[str, Any] = {}
        if self._s3:
            if len(data) >= _S3_SINGLE_PUT_LIMIT:
                raise OSError(f"cannot upload {rel}: larger than one S3 PUT allows")
            # s3fs uploads in one put_object below 2 * chunksize: never multipart here.
            kwargs["chunksize"] = max(len(data), 50 * 2**20)
        try:
            self.fs.pipe_file(key, data, **kwargs)
        except Exception as exc:
            raise self._fail("upload", rel, exc) from None

    def get(self, rel: str) -> bytes:
        """The object's bytes (one GET)."""
        key = self._key(rel)
        try:
            data: bytes = self.fs.cat_file(key)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._fail("read", rel, exc) from None
        return data

    def size(self, rel: str) -> int:
        """The object's size (one HEAD)."""
        info = self._info(rel)
        if info is None:
            raise FileNotFoundError(f"{self.location}/{rel}")
        return int(info.get("size") or 0)

    def sha256(self, rel: str) -> str:
        """The hex SHA-256 of the object's bytes."""
        return sha256_hex(self.get(rel))

    def delete(self, rel: str) -> bool:
        """Delete the object at ``rel`` (a poster or anything :meth:`entries` listed)."""
        key = f"{self.root}/{_check_listed(rel)}"
        try:
            if not self.fs.exists(key):
                return False
            self.fs.rm_file(key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._fail("delete", rel, exc) from None
        return True

    def entries(self) -> Iterator[StoredFile]:
        """Every object under the prefix, listed page by page by the backend."""
        try:
            found: dict[str, dict[str, Any]] = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail("list", "", exc) from None
        prefix = self.root + "/"
        for key in sorted(found):
            if not key.startswith(prefix):
                continue
            info = found[key]
            yield StoredFile(
                key[len(prefix) :], int(info.get("size") or 0), info.get("type") == "file"
            )
