"""The posters of a dataset version: read from the store's file store, verified, resized.

The builder never touches the network: a poster's bytes are read from
``[storage] posters_dir / poster_file`` and checked against ``poster_sha256`` (the store's
value). A missing or mismatching file never becomes a silent null image: the reader counts
it (:class:`PosterProblems`) and the build fails once every split has been read
(:meth:`PosterProblems.raise_if_any`), naming how many and the fix.

With ``image_max_side`` 0 the verified bytes go into the dataset exactly as stored. With
N > 0 each poster becomes an RGB JPEG whose longest side is at most N
(:func:`reelset.posters.verify.training_copy`: EXIF orientation applied, no metadata kept,
Lanczos, never upscaled), made in worker processes. As-is, the files are read and hashed
in threads (both release the GIL), ahead of the shard writer that consumes them. Images
are yielded in row order and only a bounded window of them is in flight, so memory does
not grow with the dataset.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reelset.config import Settings
from reelset.errors import StoreError
from reelset.posters.filestore import (
    RELPATH_RE,
    ObjectPosterFiles,
    PosterStore,
    is_valid_relpath,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

CHUNK = 16
"""Posters per task sent to a worker process (or, as-is, to a reader thread)."""
IN_FLIGHT_PER_WORKER = 2
"""Tasks queued per worker: enough to keep each busy, few enough to bound memory."""
READER_THREADS = 2
"""Threads reading and hashing as-is posters while the shard writer writes."""


@dataclass(frozen=True)
class PosterRef:
    """Where one movie's poster is and what it must hash to (both None: no poster)."""

    tmdb_id: int
    file: str | None
    sha256: str | None


@dataclass(frozen=True)
class LoadedImage:
    """A poster ready for a dataset file: bytes and the stable name ``<tmdb_id>.<ext>``."""

    data: bytes
    name: str

    @property
    def ext(self) -> str:
        """The file extension, without the dot."""
        return self.name.rsplit(".", 1)[1]


@dataclass
class PosterProblems:
    """Posters whose file is missing or does not hash to the store's sha256."""

    posters_dir: Path | str
    missing: list[PosterRef] = field(default_factory=list)
    corrupt: list[PosterRef] = field(default_factory=list)

    def add(self, ref: PosterRef, problem: str) -> None:
        """Record ``ref`` as ``missing`` or ``corrupt``."""
        (self.missing if problem == "missing" else self.corrupt).append(ref)

    def raise_if_any(self) -> None:
        """One :class:`StoreError` line with the counts, an example and the fix."""
        if not self.missing and not self.corrupt:
            return
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.corrupt:
            parts.append(f"{len(self.corrupt)} corrupt (sha256 differs from the store's)")
        example = (self.missing or self.corrupt)[0]
        raise StoreError(
            f"{' and '.join(parts)} poster file(s) under {self.posters_dir} "
            f"(e.g. {example.file} of movie {example.tmdb_id}); run `reelset posters verify "
            "--repair`, then build again"
        )


def image_name(tmdb_id: int, poster_file: str, max_side: int) -> str:
    """``603.jpg``: the name of a movie's image inside a dataset version."""
    ext = "jpg" if max_side else PurePosixPath(poster_file).suffix.lstrip(".").lower()
    return f"{tmdb_id}.{ext or 'bin'}"


@dataclass(frozen=True)
class RemotePosters:
    """Posters in object storage (``[storage] posters_dir`` is a URL): what a worker
    process needs to open the same :class:`~reelset.posters.filestore.PosterStore`."""

    url: str
    options_json: str

    def __str__(self) -> str:
        return self.url


PosterSource = Path | RemotePosters
"""Where a build reads poster bytes: the local posters folder, or object storage."""


def poster_source(settings: Settings) -> PosterSource:
    """The posters of ``settings``: a local folder, or its object-storage location."""
    if settings.posters_url is None:
        return settings.posters_dir
    options = json.dumps(settings.storage.storage_options, sort_keys=True)
    return RemotePosters(settings.posters_url, options)


@functools.cache
def _remote_store(url: str, options_json: str) -> PosterStore:
    """One object store per process (its connection pool serves every reader thread)."""
    return ObjectPosterFiles(url, json.loads(options_json))


def _read_verified(source: PosterSource, rel: str, sha256: str) -> bytes | str:
    """The file's bytes if they hash to ``sha256``, else ``missing`` or ``corrupt``.

    An object store that cannot be reached raises (one line): that is no proof the poster
    is gone.
    """
    try:
        if isinstance(source, RemotePosters):
            data = _remote_store(source.url, source.options_json).get(rel)
        else:
            data = (source / rel).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return "missing"
    return data if hashlib.sha256(data).hexdigest() == sha256 else "corrupt"


def _load_one(
    root: PosterSource, ref: PosterRef, max_side: int, quality: int
) -> LoadedImage | str:
    """One poster's dataset bytes, or the problem's name."""
    assert ref.file is not None and ref.sha256 is not None
    if not is_valid_relpath(ref.file):  # a name the file store never makes (e.g. "../x")
        return "corrupt"
    data = _read_verified(root, ref.file, ref.sha256)
    if isinstance(data, str):
        return data
    if max_side:
        from reelset.posters.verify import training_copy

        try:
            data, _, _ = training_copy(data, max_side=max_side, quality=quality)
        except Exception:  # bytes that hash right but no longer decode: the same fix applies
            return "corrupt"
    return LoadedImage(data, image_name(ref.tmdb_id, ref.file, max_side))


def _load_chunk(
    root: PosterSource, refs: Sequence[PosterRef], max_side: int, quality: int
) -> tuple[int, list[LoadedImage | str]]:
    """Worker task: (the worker's pid, the chunk's posters in order)."""
    return os.getpid(), [_load_one(root, ref, max_side, quality) for ref in refs]


def _quiet_worker() -> None:
    """Workers leave Ctrl-C to the build, which stops the pool (no tracebacks from them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_count() -> int:
    """The CPUs this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class PosterReader:
    """Reads, verifies and (with ``max_side``) resizes posters, yielding them in order.

    Use as a context manager: the worker pool (only made when resizing) lives until exit.
    ``problems`` collects what was missing or corrupt; ``worker_pids`` the processes that
    resized.
    """

    def __init__(
        self, posters_dir: PosterSource, *, max_side: int, quality: int,
        workers: int | None = None,
    ) -> None:
        self.root = posters_dir
        self.max_side = max_side
        self.quality = quality
        self.workers = workers or worker_count()
        self.problems = PosterProblems(str(posters_dir))
        self.worker_pids: set[int] = set()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PosterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the build holds a database connection and signal handlers.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_quiet_worker,
            )
        return self._pool

    def images(self, refs: Iterable[PosterRef]) -> Iterator[LoadedImage | None]:
        """Each movie's image, in the order of ``refs``; None without a poster (and for a
        missing or corrupt file, which is recorded in ``problems``)."""
        chunks = _chunks(refs, CHUNK)
        if self.max_side:
            yield from self._in_order(self._executor(), chunks, self.workers)
            return
        threads = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="reelset-posters")
        try:
            yield from self._in_order(threads, chunks, READER_THREADS)
        finally:
            threads.shutdown(wait=True, cancel_futures=True)

    def _in_order(
        self, pool: Executor, chunks: Iterable[list[PosterRef]], workers: int
    ) -> Iterator[LoadedImage | None]:
        """Load ``chunks`` in ``pool``, a bounded window ahead, yielding in order."""
        window = workers * IN_FLIGHT_PER_WORKER
        pending: deque[tuple[list[PosterRef], Future[tuple[int, list[LoadedImage | str]]]]]
        pending = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(
                _load_chunk, self.root, _with_file(chunk), self.max_side, self.quality)))
            if len(pending) >= window:
                yield from self._finish(*pending.popleft())
        while pending:
            yield from self._finish(*pending.popleft())

    def sizes(self, refs: Iterable[PosterRef]) -> Iterator[int | None]:
        """Each poster file's size without reading it (reference mode); None without a
        poster, or when the file is missing (recorded in ``problems``)."""
        assert isinstance(self.root, Path), "reference mode needs a local posters folder"
        root = os.fspath(self.root)  # os.stat on strings: a million posters, no Path objects
        for ref in refs:
            if ref.file is None:
                yield None
                continue
            if not is_valid_relpath(ref.file):
                self.problems.add(ref, "corrupt")
                yield None
                continue
            try:
                found = os.stat(f"{root}/{ref.file}")
            except OSError:
                found = None
            if found is None or not stat.S_ISREG(found.st_mode):
                self.problems.add(ref, "missing")
                yield None
                continue
            yield found.st_size

    def check_references(
        self, tmdb_ids: pa.Array | pa.ChunkedArray, files: pa.Array | pa.ChunkedArray,
        shas: pa.Array | pa.ChunkedArray,
    ) -> tuple[int, int]:
        """Reference mode: (posters found, their bytes) of a split's rows (columns
        tmdb_id, poster_file, poster_sha256), checking each file without reading it.

        The same results as :func:`poster_refs` and :meth:`sizes` (the same
        :class:`~reelset.errors.StoreError`, the same ``problems`` in row order), without a
        Python object per row: the names are checked in one vectorised pass and the files
        ``os.stat``-ed relative to the posters folder (in this thread: on two busy cores a
        second one measured slower, its GIL hand-offs costing more than the overlap).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        assert isinstance(self.root, Path), "reference mode needs a local posters folder"
        has_file = pc.is_valid(files)
        sha_less = pc.and_(has_file, pc.is_null(shas))
        if pc.any(sha_less).as_py():
            i = pc.index(sha_less, True).as_py()
            raise StoreError(f"movie {tmdb_ids[i].as_py()} has a poster file "
                             f"{files[i].as_py()} without a sha256")
        # RE2 (Arrow) accepts a subset of what Python's ``re`` does with the same pattern
        # (its ``$`` is never before a final newline): the rows it rejects are judged by
        # is_valid_relpath itself, so the outcome is exactly the per-row check's.
        plain = pc.fill_null(pc.and_(
            pc.match_substring_regex(files, RELPATH_RE.pattern),
            pc.equal(pc.utf8_slice_codeunits(files, 0, 2),
                     pc.utf8_slice_codeunits(files, 3, 5)),
        ), False)
        indices = pc.indices_nonzero(plain)
        names: list[str] = pc.filter(files, plain).to_pylist()
        rows: list[int] | None = None  # the row of each name, when not ``indices``
        odd = pc.indices_nonzero(pc.and_(has_file, pc.invert(plain))).to_pylist()
        if odd:  # rare: names the file store never makes
            kept = {}
            for ref, i in zip(_refs_at(tmdb_ids, files, shas, pa.array(odd, pa.int64())), odd,
                              strict=True):
                assert ref.file is not None
                if is_valid_relpath(ref.file):
                    kept[i] = ref.file
                else:
                    self.problems.add(ref, "corrupt")
            if kept:
                merged = sorted([*zip(indices.to_pylist(), names, strict=True), *kept.items()])
                rows = [i for i, _ in merged]
                names = [name for _, name in merged]
        total, missing = _stat_all(os.fspath(self.root), names)
        if missing:
            at = (pc.take(indices, pa.array(missing, pa.int64())) if rows is None
                  else pa.array([rows[position] for position in missing], pa.int64()))
            for ref in _refs_at(tmdb_ids, files, shas, at):
                self.problems.add(ref, "missing")
        return len(names) - len(missing), total

    def _finish(
        self, chunk: list[PosterRef], future: Future[tuple[int, list[LoadedImage | str]]]
    ) -> Iterator[LoadedImage | None]:
        pid, loaded = future.result()
        if pid != os.getpid():  # a worker process, not a reader thread
            self.worker_pids.add(pid)
        yield from self._collect(chunk, loaded)

    def _collect(
        self, chunk: list[PosterRef], loaded: list[LoadedImage | str]
    ) -> Iterator[LoadedImage | None]:
        """Merge the loaded posters back into the chunk's rows (those without a file)."""
        results = iter(loaded)
        for ref in chunk:
            if ref.file is None:
                yield None
                continue
            result = next(results)
            if isinstance(result, str):
                self.problems.add(ref, result)
                yield None
            else:
                yield result


def _refs_at(tmdb_ids: pa.Array | pa.ChunkedArray, files: pa.Array | pa.ChunkedArray,
             shas: pa.Array | pa.ChunkedArray, rows: pa.Array) -> list[PosterRef]:
    """The :class:`PosterRef` of each of ``rows``."""
    return [PosterRef(*ref) for ref in zip(
        tmdb_ids.take(rows).to_pylist(), files.take(rows).to_pylist(),
        shas.take(rows).to_pylist(), strict=True)]


def _stat_all(root: str, names: list[str]) -> tuple[int, list[int]]:
    """(the bytes of the regular files ``root/<name>``, the positions of the others in
    ``names``)."""
    dir_fd = None
    if os.stat in os.supports_dir_fd:
        # One lookup of the folder, not one per poster (no folder: the paths say why).
        with contextlib.suppress(OSError):
            dir_fd = os.open(root, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    if dir_fd is None:
        names = [f"{root}/{name}" for name in names]
    total = 0
    missing: list[int] = []
    stat_ = os.stat
    is_regular = stat.S_ISREG
    try:
        for i, name in enumerate(names):
            try:
                found = stat_(name, dir_fd=dir_fd)
            except OSError:
                missing.append(i)
                continue
            if is_regular(found.st_mode):
                total += found.st_size
            else:
                missing.append(i)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return total, missing


def _with_file(chunk: list[PosterRef]) -> list[PosterRef]:
    """The refs of a chunk that have a poster to read."""
    return [ref for ref in chunk if ref.file is not None]


def _chunks(refs: Iterable[PosterRef], size: int) -> Iterator[list[PosterRef]]:
    chunk: list[PosterRef] = []
    for ref in refs:
        chunk.append(ref)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def poster_refs(tmdb_ids: Sequence[int], files: Sequence[str | None],
                shas: Sequence[str | None]) -> Iterator[PosterRef]:
    """The poster references of a split's rows (columns tmdb_id, poster_file, poster_sha256)."""
    for tmdb_id, file, sha in zip(tmdb_ids, files, shas, strict=True):
        if file is not None and sha is None:
            raise StoreError(f"movie {tmdb_id} has a poster file {file} without a sha256")
        yield PosterRef(tmdb_id, file, sha)
