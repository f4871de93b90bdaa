"""Poster downloads: each movie's poster fetched, verified, stored by content, recorded.

:func:`download_posters` is what ``reelset scrape`` calls at its end and what ``reelset
posters`` runs. It selects the movies whose poster is needed (no row yet, ``failed``,
``rejected`` for a reason a new download may fix at least ``[posters]
recheck_rejected_after_days`` ago, or a ``movies.poster_path`` different from the one the
row was made for), then, with its
own worker pool and politeness limiter (``[posters] max_workers`` / ``rate_limit``,
separate from the API's so posters never starve metadata requests):

1. builds the URL from the image base URL (``[tmdb] image_base_url``, else
   ``/configuration`` through the TMDB client, asked once per run), ``[tmdb] poster_size``
   and the quoted ``poster_path`` (see :mod:`reelset.posters.fetch`);
2. streams the body with a timeout and the ``max_bytes`` cap, retrying transient failures;
3. verifies it completely with Pillow (:mod:`reelset.posters.verify`), in
   verifier processes for large runs (:mod:`reelset.posters.verify_pool`,
   ``[posters] verify_processes``), within the attempt: a body that is truncated, not an
   image or corrupt counts as a failed download and is downloaded again (step 2's
   retries); it is ``rejected`` when the same bytes fail twice or the retries run out;
4. writes it atomically to ``posters_dir/<sha256[:2]>/<sha256>.<ext>`` unless a file with
   those bytes is already there (then it is *shared*), plus the optional training copy;
5. records the ``posters`` row (batched), and ``fetch_failures`` for failed downloads.

A file is always complete on disk before a row points at it, so a killed run leaves at
most an unreferenced file (``verify`` calls it an orphan) or a temporary file. In a local
folder each file is fsynced before its rename; the folders that gained files are fsynced
once per batch of rows, just before the batch is written (not once per file), so a row
never points at a file a crash could take away.

Called on its own (``reelset posters``, or from Python) it is one recorded run under the
``posters`` lock (:mod:`reelset.runs`); a scrape and ``verify --repair`` run it inside
their own run, holding the ``posters`` lock too: one poster downloader per store. On a
PostgreSQL store, ``reelset posters --worker`` processes share the downloads instead
(:mod:`reelset.posters.workers`); a run holding the ``posters`` lock refuses to start
while they hold claims (:class:`~reelset.errors.LockedError`), and they wait for it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

import requests
from PIL import Image

from reelset.config import FailureSettings, Settings
from reelset.console import progress
from reelset.errors import ConfigError, Interrupted, ReelsetError
from reelset.posters.fetch import (
    FetchPolicy,
    PosterFetchError,
    check_base_url,
    check_poster_size,
    fetch_poster,
    poster_retry_policy,
    poster_url,
    public_url,
)
from reelset.posters.filestore import (
    PosterStore,
    poster_relpath,
    resized_relpath,
    sha256_hex,
)
from reelset.posters.verify import (
    RETRYABLE_REJECTIONS,
    VerifiedImage,
    training_copy,
    verify_image,
)
from reelset.posters.verify_pool import (
    VerifierCrashed,
    VerifierPool,
    spawn_is_safe,
    warm_up_verification,
)
from reelset.redaction import redact
from reelset.runs import POSTERS_LOCK, Run, recorded_run
from reelset.storage import Store
from reelset.storage.claims import refuse_while_workers
from reelset.storage.posters import (
    PosterRow,
    PosterTarget,
    Recheck,
    count_poster_targets,
    iter_poster_targets,
    upsert_poster_rows,
)
from reelset.storage.schema import utcnow
from reelset.transport.limiter import SlidingWindowLimiter
from reelset.transport.session import make_session

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from reelset.tmdb.client import TmdbClient

COMMAND = "posters"
FAILURE_KIND = "poster"
FLUSH_EVERY = 200
FLUSH_INTERVAL_S = 2.0
_SHA_LOCKS = 64
AUTO_PROCESSES_MIN_POSTERS = 100


class ImageBaseUrlSource(Protocol):
    """What :func:`download_posters` needs of the TMDB client."""

    def image_base_url(self) -> str:
        """The image base URL (from ``/configuration``, cached; the config value wins)."""


class LazyTmdbClient:
    """An :class:`ImageBaseUrlSource` that makes a TMDB client only when it must ask
    ``/configuration`` (``[tmdb] image_base_url`` unset), so a run that needs no base URL
    needs no credentials. Close it (or use it as a context manager) when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: TmdbClient | None = None

    def image_base_url(self) -> str:
        """``[tmdb] image_base_url``, else TMDB's ``/configuration`` (needs credentials)."""
        if self.settings.tmdb.image_base_url:
            return self.settings.tmdb.image_base_url
        if self._client is None:
            from reelset.tmdb.client import TmdbClient

            self._client = TmdbClient(self.settings)
        return self._client.image_base_url()

    def close(self) -> None:
        """Close the client's connections, if one was made."""
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> LazyTmdbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class PosterSummary:
    """What a poster run did. ``shared`` posters reuse a file already on disk."""

    movies: int = 0
    ok: int = 0
    new_files: int = 0
    shared: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    abandoned: int = 0
    """Failed posters whose failure is abandoned (``[failures]``): not retried next run."""
    missing: int = 0
    bytes: int = 0
    bytes_written: int = 0
    resized: int = 0
    requests: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def open_failures(self) -> int:
        """Failed posters that are new or retried next run: these make a run partial."""
        return self.failed - self.abandoned

    @property
    def posters_per_s(self) -> float:
        """Movies handled per second of wall time."""
        done = self.ok + self.rejected + self.failed + self.missing
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-able data (for ``--json`` and the run's counts)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter):
                value = dict(sorted(value.items()))
            data[f.name] = round(value, 3) if f.name == "elapsed_s" else value
            if f.name == "elapsed_s":
                data["posters_per_s"] = round(self.posters_per_s, 2)
        return data


class PostersInterrupted(Interrupted):
    """The poster run stopped on SIGINT/SIGTERM after recording what it had (exit 130)."""

    def __init__(self, summary: PosterSummary) -> None:
        super().__init__("interrupted: the posters downloaded so far are recorded")
        self.summary = summary


@dataclass(frozen=True)
class _Outcome:
    row: PosterRow | None  # None: cancelled, nothing to record
    reason: str | None = None
    http_status: int | None = None
    new_file: bool = False
    resized: bool = False
    requests: int = 0


def _attempts(target: PosterTarget, made: int) -> int:
    if target.previous_poster_path == target.poster_path:
        return target.previous_attempts + made
    return made


class _Downloader:
    """One run's shared state: session, limiter, folder, counters. Thread-safe."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        client: ImageBaseUrlSource | None,
        image_base_url: str | None,
        stop: threading.Event,
        verify_processes: int = 0,
        defer_folder_syncs: bool = False,
    ) -> None:
        """With ``defer_folder_syncs``, the recorder of the outcomes must call
        ``self.files.sync()`` before it writes rows (see :class:`_Recorder`)."""
        cfg = settings.posters
        self.store = store
        self.settings = settings
        self.cfg = cfg
        self.size = check_poster_size(settings.tmdb.poster_size)
        self.files = PosterStore.for_settings(settings)
        if defer_folder_syncs:
            self.files.defer_folder_syncs()
        self.policy = FetchPolicy(
            timeout_s=cfg.timeout_s,
            max_bytes=cfg.max_bytes,
            retry=poster_retry_policy(cfg.max_retries, cfg.backoff_initial_s, cfg.backoff_max_s),
        )
        self.limiter = SlidingWindowLimiter.from_spec(cfg.rate)
        self.session: requests.Session = make_session(cfg.max_workers)
        self.stop = stop
        self._client = client
        self._explicit_base = image_base_url
        self._base_url: str | None = None
        self._sha_locks = [threading.Lock() for _ in range(_SHA_LOCKS)]
        self._present: set[str] = set()
        self._present_lock = threading.Lock()
        self._retries = 0
        self._retries_lock = threading.Lock()
        try:
            self.files.prepare()
        except OSError as exc:
            raise ReelsetError(
                f"cannot use the posters folder {self.files.location}: {exc.strerror or exc}"
            ) from None
        self.verifier = VerifierPool(verify_processes) if verify_processes > 0 else None
        if self.verifier is None or cfg.resize_max_side:
            # Pillow (and scipy, for the hash) are then used in these threads; with
            # verifier processes only, importing scipy here would be half a second lost.
            warm_up_verification()

    # -- main thread ---------------------------------------------------------------------

    def base_url(self) -> str:
        """The image base URL: explicit > ``[tmdb] image_base_url`` > the client's."""
        if self._base_url is None:
            if self._explicit_base:
                raw = self._explicit_base
            elif self.settings.tmdb.image_base_url:
                raw = self.settings.tmdb.image_base_url
            elif self._client is not None:
                raw = self._client.image_base_url()
            else:
                raise ConfigError(
                    "no image base URL: set [tmdb] image_base_url or give a TMDB client"
                )
            self._base_url = check_base_url(raw)
            self._settle_environment(self._base_url)
        return self._base_url

    def _settle_environment(self, base_url: str) -> None:
        # requests reads the proxy/CA environment on every request (a few ms of CPU per
        # poster); every poster is on one host, so read it once and freeze it.
        env = self.session.merge_environment_settings(base_url, {}, True, None, None)
        self.session.proxies.update(env.get("proxies") or {})
        self.session.verify = env.get("verify", True)
        self.session.trust_env = False

    def immediate(self, target: PosterTarget) -> _Outcome | None:
        """The outcome of a movie that needs no request (no poster, invalid path)."""
        if not target.poster_path:
            return _Outcome(PosterRow(target.tmdb_id, "missing", poster_path=None))
        try:
            poster_url(self.base_url(), self.size, target.poster_path)
        except PosterFetchError as exc:
            return self._without_file(target, "rejected", exc.reason, exc.detail, None, 0)
        return None

    @property
    def retries(self) -> int:
        """Retries made so far by all workers."""
        with self._retries_lock:
            return self._retries

    def close(self) -> None:
        """Close the session's connections and stop the verifier processes."""
        self.session.close()
        if self.verifier is not None:
            self.verifier.close()

    # -- workers ---------------------------------------------------------------------------

    def _count_retry(self) -> None:
        with self._retries_lock:
            self._retries += 1

    def _without_file(
        self,
        target: PosterTarget,
        status: str,
        reason: str,
        detail: str,
        url: str | None,
        made: int,
        *,
        http_status: int | None = None,
    ) -> _Outcome:
        """The outcome of a poster that is not kept after ``made`` requests: ``failed``
        (not had this time; the next run tries again) or ``rejected`` (not kept; when it
        was downloaded, ``downloaded_at`` dates the rejection for the recheck)."""
        row = PosterRow(
            target.tmdb_id,
            status,
            poster_path=target.poster_path,
            source_url=url,
            error=redact(f"{reason}: {detail}")[:1000],
            attempts=_attempts(target, made),
            downloaded_at=utcnow() if status == "rejected" and made else None,
        )
        return _Outcome(row, reason=reason, http_status=http_status, requests=made)

    def process(self, target: PosterTarget) -> _Outcome:
        """Download, verify, store one poster (in a worker thread)."""
        assert target.poster_path
        if self.stop.is_set():
            return _Outcome(None)
        url = poster_url(self.base_url(), self.size, target.poster_path)
        source = public_url(url)
        try:
            # Verified within each attempt: bytes a flaky server cut short or replaced by
            # an error page are downloaded again (see reelset.posters.fetch).
            fetched = fetch_poster(
                self.session,
                url,
                self.policy,
                limiter=self.limiter,
                stop=self.stop,
                on_retry=self._count_retry,
                verify=self._verify,
            )
        except PosterFetchError as exc:
            if exc.reason == "cancelled":
                return _Outcome(None, requests=exc.attempts)
            return self._without_file(
                target,
                "rejected" if exc.rejected else "failed",
                exc.reason,
                exc.detail,
                source,
                exc.attempts,
                http_status=exc.http_status,
            )
        data, image = fetched.data, fetched.image
        assert image is not None  # fetch_poster verified it
        sha = sha256_hex(data)
        rel = poster_relpath(sha, image.extension)
        try:
            new_file = self._store_file(sha, rel, data)
            resized = self._training_copy(sha, data) if self.cfg.resize_max_side else None
        except OSError as exc:
            log.warning("cannot write poster file %s: %s", rel, exc)
            detail = f"{exc.__class__.__name__}: {exc.strerror or exc}"
            return self._without_file(
                target, "failed", "write_error", detail, source, fetched.attempts
            )
        row = PosterRow(
            target.tmdb_id,
            "ok",
            poster_path=target.poster_path,
            sha256=sha,
            file_path=rel,
            width=image.width,
            height=image.height,
            format=image.format,
            mode=image.mode,
            bytes=len(data),
            phash=image.phash,
            source_url=source,
            resized_file_path=resized[0] if resized else None,
            resized_width=resized[1] if resized else None,
            resized_height=resized[2] if resized else None,
            attempts=_attempts(target, fetched.attempts),
            downloaded_at=utcnow(),
        )
        return _Outcome(
            row, new_file=new_file, resized=resized is not None, requests=fetched.attempts
        )

    def _verify(self, data: bytes) -> VerifiedImage:
        """Verify downloaded bytes (in a verifier process when there are some).

        Raises :class:`~reelset.posters.verify.PosterRejected`, or a (final)
        :class:`PosterFetchError` ``verifier_crashed`` when the decoder process died.
        """
        try:
            if self.verifier is not None:
                return self.verifier.verify(
                    data, allowed_formats=self.cfg.allowed_formats, max_pixels=self.cfg.max_pixels
                )
            return verify_image(
                data, allowed_formats=self.cfg.allowed_formats, max_pixels=self.cfg.max_pixels
            )
        except VerifierCrashed as exc:
            raise PosterFetchError("verifier_crashed", str(exc)) from None

    def _lock_for(self, sha: str) -> threading.Lock:
        return self._sha_locks[int(sha[:4], 16) % _SHA_LOCKS]

    def _known(self, rel: str) -> bool:
        with self._present_lock:
            return rel in self._present

    def _remember(self, rel: str) -> None:
        with self._present_lock:
            self._present.add(rel)

    def _store_file(self, sha: str, rel: str, data: bytes) -> bool:
        """Write the bytes unless an identical file is there; returns whether it wrote."""
        with self._lock_for(sha):
            if self._known(rel) or self.files.holds(rel, sha, len(data)):
                self._remember(rel)
                return False
            self.files.put(rel, data)
            self._remember(rel)
            return True

    def _training_copy(self, sha: str, data: bytes) -> tuple[str, int, int]:
        side = self.cfg.resize_max_side
        rel = resized_relpath(sha, side)
        with self._lock_for(sha):
            if self._known(rel) or self.files.exists(rel):
                try:
                    with Image.open(io.BytesIO(self.files.get(rel)), formats=["JPEG"]) as im:
                        width, height = im.size
                    self._remember(rel)
                    return rel, width, height
                except (OSError, SyntaxError, ValueError):
                    pass  # unreadable: make it again
            jpeg, width, height = training_copy(
                data, max_side=side, quality=self.cfg.resize_quality
            )
            self.files.put(rel, jpeg)
            self._remember(rel)
            return rel, width, height


class _Recorder:
    """Collects outcomes in the main thread and writes them to the store in batches."""

    def __init__(
        self,
        store: Store,
        summary: PosterSummary,
        run: Run,
        own_run: bool,
        lifecycle: FailureSettings | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        """``before_write`` runs before each batch of rows is written: the deferred
        folder fsyncs of the files they point at (:meth:`PosterStore.sync`)."""
        self.store = store
        self.summary = summary
        self.run = run
        self.own_run = own_run  # the run's counts are this summary's
        self.lifecycle = lifecycle  # when a failure is abandoned
        self.before_write = before_write
        self._pending: list[_Outcome] = []
        self._seen: set[int] = set()
        self._last_flush = time.monotonic()

    def add(self, outcome: _Outcome) -> None:
        """Count an outcome and queue its row (each movie once: an outcome may be offered
        again after an interruption)."""
        row = outcome.row
        if row is not None:
            if row.tmdb_id in self._seen:
                return
            self._seen.add(row.tmdb_id)
        s = self.summary
        s.requests += outcome.requests
        if row is None:
            return
        if row.status == "ok":
            s.ok += 1
            s.bytes += row.bytes or 0
            if outcome.new_file:
                s.new_files += 1
                s.bytes_written += row.bytes or 0
            else:
                s.shared += 1
            s.resized += int(outcome.resized)
        elif row.status == "rejected":
            s.rejected += 1
            s.rejected_by_reason[outcome.reason or "unknown"] += 1
            log.debug("poster of movie %s rejected: %s", row.tmdb_id, row.error)
        elif row.status == "failed":
            s.failed += 1
            s.failed_by_reason[outcome.reason or "unknown"] += 1
            log.debug("poster of movie %s failed: %s", row.tmdb_id, row.error)
        else:
            s.missing += 1
        self._pending.append(outcome)
        if (
            len(self._pending) >= FLUSH_EVERY
            or time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S
        ):
            self.flush()

    def flush(self) -> None:
        """Write the collected rows (kept until written, so an interrupted flush repeats)."""
        pending = list(self._pending)
        self._last_flush = time.monotonic()
        if self.own_run:
            self.run.counts = self.summary.as_dict()
        rows = [o.row for o in pending if o.row is not None]
        if not rows:
            self._pending = []
            return
        if self.before_write is not None:
            try:
                self.before_write()
            except OSError as exc:
                raise ReelsetError(
                    f"cannot make the new poster files durable: {exc.strerror or exc}"
                ) from None
        upsert_poster_rows(self.store, rows)
        self._pending = self._pending[len(pending) :]
        resolved = [str(r.tmdb_id) for r in rows if r.status != "failed"]
        self.store.failures.resolve(FAILURE_KIND, resolved)
        for outcome in pending:
            row = outcome.row
            if row is not None and row.status == "failed":
                entry = self.store.failures.record(
                    FAILURE_KIND,
                    str(row.tmdb_id),
                    run_id=self.run.run_id,
                    error=row.error or "failed",
                    http_status=outcome.http_status,
                    lifecycle=self.lifecycle,
                )
                if not entry.pending:
                    self.summary.abandoned += 1
                    log.warning(
                        "poster of movie %s abandoned after %d attempts: no longer retried "
                        "(--retry-abandoned tries it again)",
                        row.tmdb_id,
                        entry.attempts,
                    )


def record_finished(inflight: set[Future[_Outcome]], recorder: _Recorder) -> None:
    """After a second Ctrl-C: cancel the downloads not started, record those that end."""
    for future in inflight:
        future.cancel()
    for future in inflight:
        if not future.cancelled():
            try:
                recorder.add(future.result())
            except Exception:  # a worker bug must not hide the interruption
                log.exception("poster worker failed while stopping")


def rejected_recheck(settings: Settings, now: dt.datetime | None = None) -> Recheck | None:
    """Which ``rejected`` posters a run downloads again: those rejected for a reason a new
    download may fix, ``[posters] recheck_rejected_after_days`` ago or longer (``None``
    when that is 0: never)."""
    days = settings.posters.recheck_rejected_after_days
    if days <= 0:
        return None
    return Recheck(RETRYABLE_REJECTIONS, (now or utcnow()) - dt.timedelta(days=days))


def verify_processes_for(settings: Settings, total: int) -> int:
    """How many verifier processes a run of ``total`` posters uses (0: in the threads)."""
    wanted = settings.posters.verify_processes
    if wanted >= 0:
        return wanted
    if total < AUTO_PROCESSES_MIN_POSTERS or not spawn_is_safe():
        # Starting processes costs about a second: not worth it for a few posters. And
        # from a script of the user's, whose main module workers would run again, only
        # when asked for explicitly.
        return 0
    # One CPU is left to this process (requests, sha256, file writes, SQLite): each
    # verifier costs about half a second of CPU to start (Pillow, numpy, scipy), which a
    # verifier that would only share the CPUs with this process does not earn back.
    return max(1, min((os.cpu_count() or 1) - 1, settings.posters.max_workers))


class _Advance(Protocol):
    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def advance(self, n: int = 1) -> None:
        """Nothing to show."""


@contextmanager
def _progress(total: int, show: bool) -> Iterator[_Advance]:
    if not show:
        yield _Silent()
        return
    with progress("posters", total, unit="posters") as bar:
        yield bar


def _drive(
    pool: ThreadPoolExecutor,
    downloader: _Downloader,
    recorder: _Recorder,
    targets: Iterator[PosterTarget],
    inflight: set[Future[_Outcome]],
    bar: _Advance,
) -> None:
    """Feed targets to the pool (a bounded window) and record outcomes as they finish."""
    window = downloader.cfg.max_workers * 3
    finished: queue.SimpleQueue[Future[_Outcome]] = queue.SimpleQueue()
    exhausted = False
    while True:
        if downloader.stop.is_set() and not exhausted:
            exhausted = True  # stopping: start nothing new, finish what runs
            for future in list(inflight):
                future.cancel()
        while not exhausted and len(inflight) < window:
            target = next(targets, None)
            if target is None:
                exhausted = True
                break
            immediate = downloader.immediate(target)
            if immediate is not None:
                recorder.add(immediate)
                bar.advance()
                continue
            future = pool.submit(downloader.process, target)
            future.add_done_callback(finished.put)
            inflight.add(future)
        if not inflight:
            return
        try:
            done = finished.get(timeout=1.0)
        except queue.Empty:
            pass
        else:
            if done.cancelled():
                inflight.discard(done)
                continue
            # It leaves the in-flight set only once recorded: an interruption in between
            # must not lose an outcome whose file is already written.
            recorder.add(done.result())
            inflight.discard(done)
            bar.advance()


def download_posters(
    store: Store,
    settings: Settings,
    *,
    client: ImageBaseUrlSource | None = None,
    image_base_url: str | None = None,
    tmdb_ids: Iterable[int] | None = None,
    retry_rejected: bool = False,
    force: bool = False,
    retry_abandoned: bool = False,
    run: Run | None = None,
    stop: threading.Event | None = None,
    show_progress: bool = True,
) -> PosterSummary:
    """Download, verify and record the posters that are needed; returns the summary.

    ``tmdb_ids=None`` considers every movie; otherwise only these. A movie is downloaded
    when it has no poster row, its row is ``failed`` (or ``rejected``, with
    ``retry_rejected``) and its failure not abandoned (or ``retry_abandoned``), or its
    ``poster_path`` changed since; ``force`` downloads the
    given movies regardless. The image base URL is ``image_base_url``, else ``[tmdb]
    image_base_url``, else ``client.image_base_url()`` (asked only when needed).

    Without ``run`` this is a run of its own, like ``reelset posters``: command
    ``posters`` under the ``posters`` lock (see :mod:`reelset.runs`; raises
    :class:`~reelset.errors.LockedError` when it is held), ending ``partial`` when some
    downloads failed (failures abandoned under ``[failures]`` aside). Inside another run
    (a scrape's, ``verify --repair``'s) pass that ``run``: failures carry its id and its
    stop event stops the downloads. Failed downloads go to ``fetch_failures`` (kind
    ``poster``). On SIGINT/SIGTERM (or when
    ``stop`` is set) the work in flight is finished and recorded, then
    :class:`PostersInterrupted` (an :class:`~reelset.errors.Interrupted`) is raised.
    """
    ids = sorted(set(tmdb_ids)) if tmdb_ids is not None else None

    def download(within: Run, own_run: bool) -> PosterSummary:
        return _download(
            store, settings, within, own_run=own_run, client=client,
            image_base_url=image_base_url, ids=ids, retry_rejected=retry_rejected,
            force=force, show_progress=show_progress, retry_abandoned=retry_abandoned,
        )

    # Poster workers (reelset.posters.workers) and a run holding the posters lock exclude
    # each other. A caller's run holds that lock already: this check is race-free then.
    refuse_while_workers(store)
    if run is not None:
        return download(run, False)
    params = {
        "retry_rejected": retry_rejected,
        "retry_abandoned": retry_abandoned,
        "tmdb_ids": ids,
        "force": force,
    }
    with recorded_run(store, COMMAND, params, locks=(POSTERS_LOCK,), stop=stop) as own:
        refuse_while_workers(store)  # again, holding the lock: no worker claims from now on
        try:
            summary = download(own, True)
        except PostersInterrupted as exc:
            own.counts = exc.summary.as_dict()
            raise
        own.counts = summary.as_dict()
        own.status = "partial" if summary.open_failures else "succeeded"
    return summary


def _download(
    store: Store,
    settings: Settings,
    run: Run,
    *,
    own_run: bool,
    client: ImageBaseUrlSource | None,
    image_base_url: str | None,
    ids: list[int] | None,
    retry_rejected: bool,
    force: bool,
    show_progress: bool,
    retry_abandoned: bool = False,
) -> PosterSummary:
    started = time.monotonic()
    stop = run.stop
    summary = PosterSummary()
    if ids is not None and not ids:
        return summary
    recheck = rejected_recheck(settings)
    total = count_poster_targets(
        store, ids, retry_rejected=retry_rejected, force=force, retry_abandoned=retry_abandoned,
        recheck=recheck,
    )
    summary.movies = total
    if total == 0:
        return summary
    cfg = settings.posters
    downloader = _Downloader(
        store,
        settings,
        client=client,
        image_base_url=image_base_url,
        stop=stop,
        verify_processes=verify_processes_for(settings, total),
        defer_folder_syncs=True,
    )
    recorder = _Recorder(
        store, summary, run, own_run, settings.failures, before_write=downloader.files.sync
    )
    log.info(
        "posters: %d movie(s) to fetch with %d workers at most %s", total, cfg.max_workers,
        cfg.rate_limit,
    )
    targets: Iterator[PosterTarget] = iter_poster_targets(
        store, ids, retry_rejected=retry_rejected, force=force, retry_abandoned=retry_abandoned,
        recheck=recheck,
    )
    inflight: set[Future[_Outcome]] = set()
    pool = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="reelset-poster")
    try:
        with _progress(total, show_progress) as bar:
            _drive(pool, downloader, recorder, targets, inflight, bar)
    except KeyboardInterrupt:  # a second Ctrl-C: record what has finished, then stop
        stop.set()
        summary.interrupted = True
        record_finished(inflight, recorder)
        try:
            recorder.flush()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            downloader.close()
        summary.retries = downloader.retries
        summary.elapsed_s = time.monotonic() - started
        raise PostersInterrupted(summary) from None
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        try:
            recorder.flush()
        finally:  # a flush that fails (a folder that cannot be synced) closes it all too
            downloader.close()
        raise
    pool.shutdown(wait=True)
    try:
        recorder.flush()
    finally:
        downloader.close()
    summary.retries = downloader.retries
    summary.elapsed_s = time.monotonic() - started
    if stop.is_set():  # SIGINT/SIGTERM, or the stop event of the caller's run
        summary.interrupted = True
        raise PostersInterrupted(summary)
    return summary
