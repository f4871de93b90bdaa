"""Dataset versions in object storage (``[build] output_dir = "s3://bucket/prefix"``).

Reading: :class:`RemotePath` is a file or prefix in an fsspec filesystem with the small
part of :class:`pathlib.Path`'s API the dataset readers use (``/``, ``name``,
``is_dir``, ``is_file``, ``iterdir``, ``read_bytes``...), so :mod:`reelset.dataset.versions`,
:mod:`~reelset.dataset.load`, :mod:`~reelset.dataset.inspect` and
:mod:`~reelset.dataset.examples` read a remote version like a local folder;
:func:`parquet_source` gives pyarrow the filesystem.

Publishing (:func:`publish_version`), since object stores have no rename: the version
is written into a local temporary folder exactly as a local build writes it (same bytes),
then every file is uploaded under ``<url>/<name>/<version>/``, the data first and
``manifest.json`` last, after checking every other object is there with its size; then
``LATEST`` is replaced (one PUT, atomic). Readers only see versions whose
``manifest.json`` exists (:func:`reelset.dataset.versions.versions`), so a reader never
sees half a version, and a killed build leaves objects no reader picks up; the next
build removes them under the build lock (:func:`clean_leftovers`). The lock is the
store's run lock named by :func:`lock_name` (one build per dataset URL per store).

Credentials come from the backend's own environment or config (for S3: ``AWS_*``
variables, profiles, instance roles); ``storage_options`` carries only non-secret options
such as ``endpoint_url``. Locations are shown as ``scheme://bucket/key``, never with
credentials.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelset.errors import ConfigError, ReelsetError, UsageError
from reelset.redaction import redact

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
MANIFEST = "manifest.json"


def url_scheme(value: str | Path) -> str | None:
    """The scheme of an fsspec URL (``s3``, ``file``...), ``None`` for a plain path."""
    match = _URL_SCHEME.match(str(value)) if isinstance(value, str) else None
    return match.group(1).lower() if match else None


class RemotePath:
    """A file or prefix in object storage (see the module docstring).

    Errors other than a missing object are raised as :class:`ReelsetError` with one
    line naming the location (never a credential).
    """

    def __init__(self, fs: AbstractFileSystem, path: str, scheme: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/")
        self.scheme = scheme

    @classmethod
    def from_url(cls, url: str, storage_options: dict[str, Any] | None = None) -> RemotePath:
        """The location of ``url`` with the backend's non-secret ``storage_options``."""
        import fsspec

        scheme = url_scheme(url) or "file"
        # No listings cache: versions appear while a reader polls.
        options = {**(storage_options or {}), "use_listings_cache": False}
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise ConfigError(
                f"{scheme}:// needs its fsspec backend ({exc}; for s3:// pip install s3fs)"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"storage_options not accepted by {scheme}://: {redact(str(exc))}"
                              ) from None
        return cls(fs, path, scheme)

    # --- pathlib's API ---------------------------------------------------------------

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(self.fs, f"{self.path}/{name}", self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def name(self) -> str:
        """The last part of the key."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        """The prefix holding this one."""
        return RemotePath(self.fs, self.path.rsplit("/", 1)[0], self.scheme)

    def _fail(self, action: str, exc: Exception) -> ReelsetError:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        line = (detail.splitlines() or [""])[0][:300] or type(exc).__name__
        return ReelsetError(redact(f"cannot {action} {self}: {line}"))

    def is_dir(self) -> bool:
        """Whether any object lies under this prefix."""
        try:
            return bool(self.fs.isdir(self.path))
        except Exception as exc:
            raise self._fail("list", exc) from None

    def is_file(self) -> bool:
        """Whether an object has this key."""
        try:
            return bool(self.fs.isfile(self.path))
        except Exception as exc:
            raise self._fail("look up", exc) from None

    def exists(self) -> bool:
        """Whether an object or a prefix has this key."""
        return self.is_file() or self.is_dir()

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects and prefixes one level below, in key order."""
        try:
            found = self.fs.ls(self.path, detail=False)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail("list", exc) from None
        for key in sorted(str(k).rstrip("/") for k in found):
            if key != self.path:
                yield RemotePath(self.fs, key, self.scheme)

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """The objects below matching ``pattern`` (fsspec's glob), in key order."""
        try:
            found = self.fs.glob(f"{self.path}/{pattern}")
        except Exception as exc:
            raise self._fail("list", exc) from None
        for key in sorted(found):
            yield RemotePath(self.fs, str(key), self.scheme)

    def read_bytes(self) -> bytes:
        """The object's bytes (FileNotFoundError when there is none)."""
        try:
            data: bytes = self.fs.cat_file(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(str(self)) from None
        except Exception as exc:
            raise self._fail("read", exc) from None
        return data

    def read_text(self, encoding: str = "utf-8") -> str:
        """The object's text."""
        return self.read_bytes().decode(encoding)

    def read_range(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the object from ``offset`` (one ranged GET)."""
        try:
            data: bytes = self.fs.cat_file(self.path, start=offset, end=offset + size)
        except Exception as exc:
            raise self._fail("read", exc) from None
        return data

    def open(self) -> Any:
        """A binary, seekable file object reading the object."""
        try:
            return self.fs.open(self.path, "rb")
        except FileNotFoundError:
            raise FileNotFoundError(str(self)) from None
        except Exception as exc:
            raise self._fail("open", exc) from None

    def write_bytes(self, data: bytes) -> None:
        """Replace the object with ``data`` in one PUT (readers see old or new, whole)."""
        try:
            self.fs.pipe_file(self.path, data)
        except Exception as exc:
            raise self._fail("write", exc) from None

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        """Replace the object with ``text`` in one PUT."""
        self.write_bytes(text.encode(encoding))

    def remove_tree(self) -> None:
        """Delete every object under this prefix."""
        try:
            self.fs.rm(self.path, recursive=True)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._fail("delete", exc) from None


Folder = Path | RemotePath
"""A dataset folder: a local one or one in object storage."""


def location(value: str | Path, storage_options: dict[str, Any] | None = None) -> Folder:
    """A local :class:`Path` for a path or ``file://`` URL, else a :class:`RemotePath`."""
    scheme = url_scheme(value)
    if scheme is None:
        if storage_options:
            raise UsageError("storage_options apply only to an object-storage URL (s3://...)")
        return Path(value).expanduser()
    if scheme == "file":
        from urllib.parse import urlsplit
        from urllib.request import url2pathname

        return Path(url2pathname(urlsplit(str(value)).path))
    if "@" in str(value).split("://", 1)[1].split("/", 1)[0]:
        raise UsageError(
            f"the {scheme}:// URL must not embed credentials: they come from the backend's "
            "own environment or config (for S3: AWS_* variables, profiles)"
        )
    return RemotePath.from_url(str(value), storage_options)


def parquet_source(path: Folder) -> tuple[str | Path, AbstractFileSystem | None]:
    """What pyarrow's readers take for ``path``: (path, filesystem), ``None`` locally."""
    if isinstance(path, RemotePath):
        return path.path, path.fs
    return path, None


def lock_name(root: RemotePath) -> str:
    """The store's run-lock name for builds of the dataset at ``root`` (32 characters)."""
    return "build:" + hashlib.sha256(str(root).encode()).hexdigest()[:26]


def clean_leftovers(root: RemotePath, version_re: re.Pattern[str]) -> None:
    """Remove what killed builds left under a dataset prefix: version prefixes without
    ``manifest.json`` and ``.staging-*`` prefixes (only called under the build lock)."""
    for child in root.iterdir():
        partial = version_re.match(child.name) and not (child / MANIFEST).is_file()
        if child.name.startswith(".staging-") or (partial and child.is_dir()):
            log.warning("removing %s, left by an interrupted build", child)
            child.remove_tree()


def publish_version(local: Path, target: RemotePath) -> None:
    """Upload a finished local version folder to ``target``, ``manifest.json`` last.

    Every file but the manifest is uploaded (in path order), then their sizes are checked
    against the listing, then the manifest is uploaded: only then do readers see the
    version. On failure before the manifest, what was uploaded is removed (best effort;
    the next build removes the rest) and :class:`ReelsetError` says no version was
    published. ``LATEST`` is the caller's.
    """
    files = sorted(p for p in local.rglob("*") if p.is_file())
    data = [p for p in files if p.relative_to(local).as_posix() != MANIFEST]
    try:
        for path in data:
            rel = path.relative_to(local).as_posix()
            target.fs.put_file(str(path), f"{target.path}/{rel}")
        listed = target.fs.find(target.path, detail=True)
        for path in data:
            key = f"{target.path}/{path.relative_to(local).as_posix()}"
            if int((listed.get(key) or {}).get("size", -1)) != path.stat().st_size:
                raise OSError(f"{key} is missing or incomplete after its upload")
        target.fs.put_file(str(local / MANIFEST), f"{target.path}/{MANIFEST}")
    except BaseException as exc:
        try:
            target.remove_tree()
        except Exception:  # the next build removes the rest, under the lock
            log.warning("could not remove the partial upload %s", target)
        if isinstance(exc, Exception) and not isinstance(exc, ReelsetError):
            failure = target._fail("upload to", exc)
            raise ReelsetError(f"{failure}; no version was published") from None
        raise
