"""A scrape run: failures first, discovery, workers, writes, checkpoints, posters.

:func:`run_scrape` is what ``reelset scrape`` (and ``make demo``) call. Each run is one
:func:`~reelset.runs.recorded_run` (command ``scrape``, lock ``scrape``): one run at a
time per store, a ``scrape_runs`` row (``running`` -> ``succeeded`` / ``partial`` /
``failed`` / ``interrupted``).

The work, in order:

1. TMDB's genre list is asked for along with the first movies and stored before the
   first of them is written (ids it lacks are named from ``[genres.patch]`` or stored as
   ``Unknown (<id>)`` when a movie carries them); when it fails, the workers stop and the
   run fails with its error, nothing written. With ``export``, the export file is
   already being read in the background: :func:`run_scrape` starts reading it before it
   opens the store, so the download overlaps the store's start-up.
2. Open ``fetch_failures`` of earlier runs are retried first and resolved when they
   succeed (with ``--retry-failures`` that is all a run does). A failure that has failed
   ``[failures] max_attempts`` times over ``min_age_days`` is abandoned: no later run
   retries it, and discovery leaves its movie out, unless ``--retry-abandoned``.
3. The strategy lists candidates page by page; they are grouped into batches of
   ``storage.batch_size``, fetched by ``tmdb.max_workers`` threads (one request per
   movie) and written batch by batch, each in parts of :data:`WRITE_PART` movies as they
   arrive (so the run's last answer is followed by a small write). While batch *k* is
   written, batch *k+1* is already being fetched. After each batch is written, the
   strategy's cursor is saved as the checkpoint; a later run with the same strategy and
   parameters resumes from it, and since every write is idempotent, the store converges
   to the same contents as an uninterrupted run.
4. Posters (unless ``--no-posters`` or ``posters.enabled = false``), under the
   ``posters`` lock as well: when another poster download holds it, they are skipped with
   a warning (the next run downloads them). Failed posters make the run ``partial``.

The run ends ``partial`` (exit 1) when it recorded failures that are new or still open
(retried next run); failures abandoned by this run are counted and logged, not that.

SIGINT/SIGTERM set the run's stop event: workers stop taking new movies, the writes of
finished ones are made, and the run is recorded as ``interrupted`` (exit 130).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelset.config import Settings
from reelset.console import progress
from reelset.errors import (
    AuthError,
    Interrupted,
    LockedError,
    ReelsetError,
    UsageError,
    error_line,
)
from reelset.redaction import redact_url
from reelset.runs import POSTERS_LOCK, SCRAPE_LOCK, Run, recorded_run, run_lock
from reelset.storage import Store
from reelset.storage.records import Genre, MovieRecord
from reelset.tmdb.client import TmdbClient, parse_movie
from reelset.tmdb.discovery import (
    CHANGES_MARK,
    MAX_PAGES,
    STRATEGIES,
    Candidate,
    DiscoveryOptions,
    ExportStrategy,
    Strategy,
    make_strategy,
    utc_today,
)
from reelset.tmdb.genre_names import GenreNamer
from reelset.transport.errors import Cancelled, FetchError, NotFoundError

log = logging.getLogger(__name__)

COMMAND = "scrape"

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_INTERRUPTED = 130

WRITE_PART = 50
"""Movies of a batch written together as they arrive (see ``ScrapeJob._complete``)."""


@dataclass(frozen=True)
class ScrapeOptions:
    """What one ``reelset scrape`` run should do."""

    strategy: str = "export"
    ids_file: Path | None = None
    limit: int | None = None
    min_popularity: float | None = None
    refresh: bool = False
    retry_failures: bool = False
    retry_abandoned: bool = False
    """Retry abandoned failures too (and let discovery list their movies again)."""
    posters: bool = True
    page_cap: int = MAX_PAGES
    """Largest page a listing is read to (TMDB: 500); lower only in tests."""
    today: dt.date | None = None
    """The UTC day the run considers today (export file, change windows); tests only."""

    def check(self) -> None:
        """Raise :class:`UsageError` for options no run can use."""
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r} (use one of {', '.join(STRATEGIES)})"
            )
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")

    def discovery(self) -> DiscoveryOptions:
        """The parts of the options that shape the listing."""
        return DiscoveryOptions(
            strategy=self.strategy,
            ids_file=self.ids_file,
            min_popularity=self.min_popularity,
            limit=self.limit,
            page_cap=self.page_cap,
            today=self.today or utc_today(),
        )

    def params(self) -> dict[str, Any]:
        """The options as JSON data for the run record (no secrets)."""
        return {
            "strategy": self.strategy,
            "ids_file": str(self.ids_file) if self.ids_file else None,
            "limit": self.limit,
            "min_popularity": self.min_popularity,
            "refresh": self.refresh,
            "retry_failures": self.retry_failures,
            "retry_abandoned": self.retry_abandoned,
            "posters": self.posters,
        }


@dataclass
class ScrapeCounts:
    """What a run did to movies."""

    discovered: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    gone: int = 0
    skipped: int = 0
    failures_retried: int = 0
    failures_resolved: int = 0
    failures_abandoned: int = 0
    """Failures of this run that reached ``[failures]``'s limit (or stayed abandoned)."""
    abandoned_skipped: int = 0
    """Movies discovery listed that were left out: their failure is abandoned."""
    imdb_unresolved: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return dict(self.__dict__)


@dataclass
class ScrapeResult:
    """How a run ended: its id, status, exit code and the summary printed."""

    run_id: int | None
    status: str
    exit_code: int
    summary: dict[str, Any]


@dataclass
class _Outcome:
    """What fetching one candidate gave."""

    records: list[MovieRecord] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    failures: list[tuple[str, str, str, int | None]] = field(default_factory=list)
    resolved_imdb: list[str] = field(default_factory=list)
    unresolved_imdb: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class _Batch:
    candidates: list[Candidate]
    futures: list[Future[_Outcome]]
    checkpoint: dict[str, Any] | None
    skipped: int = 0


class ScrapeJob:
    """One scrape run over a store (see the module docstring).

    ``strategy``: the discovery strategy for ``options``, made (and started) beforehand,
    as :func:`run_scrape` does for ``export``; by default discovery makes its own.
    ``started``: called once, when the first movies are handed to the workers (the
    start-up is over; see :func:`run_scrape`), or before the posters when none were.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        options: ScrapeOptions,
        client: TmdbClient,
        *,
        stop: threading.Event,
        strategy: Strategy | None = None,
        started: Callable[[], None] | None = None,
    ) -> None:
        options.check()
        self.store = store
        self.settings = settings
        self.options = options
        self.client = client
        self.stop = stop
        self.counts = ScrapeCounts()
        self.run_id: int | None = None
        self._run: Run | None = None
        self.namer: GenreNamer | None = None
        self._genre_list: Future[list[Genre]] = Future()
        self.strategy: Strategy | None = None
        self._prepared_strategy = strategy
        self._started_hook = started
        self._auth_error: AuthError | None = None
        self._open_movie_keys: set[str] = set()
        self._open_find_keys: set[str] = set()
        self._started = time.monotonic()
        self._posters: dict[str, Any] | None = None
        self._interrupted = False
        self._seen: set[int] = set()
        self._scrape_elapsed: float | None = None
        self._retried: set[int] = set()
        self._retried_finds: set[str] = set()
        self._abandoned_movies: set[str] = set()
        self._abandoned_finds: set[str] = set()
        self._pending_failures = 0  # new or still open: these make the run partial
        self._posters_error: str | None = None

    # -- the run -------------------------------------------------------------------------

    def run(self) -> ScrapeResult:
        """Run as one recorded run; returns the result (raises AuthError, LockedError)."""
        with recorded_run(
            self.store, COMMAND, self._params(), locks=(SCRAPE_LOCK,), stop=self.stop
        ) as run:
            self._run = run
            self.run_id = run.run_id
            log.info(
                "scrape run %d: strategy %s, %s, %d workers",
                run.run_id,
                self.options.strategy,
                self.settings.tmdb.rate_limit,
                self.settings.tmdb.max_workers,
            )
            try:
                self._work()
            except (Cancelled, Interrupted, KeyboardInterrupt):
                self._interrupted = True
            except BaseException:
                run.counts = self._counts()
                if self._auth_error is not None:  # what stopped the workers
                    raise self._auth_error from None
                raise
            run.counts = self._counts()
            if self._auth_error is not None:
                raise self._auth_error
            if self._interrupted or self.stop.is_set():
                status, code = "interrupted", EXIT_INTERRUPTED
            elif self._pending_failures or self._posters_error is not None:
                status, code = "partial", EXIT_FAILURES
            else:
                status, code = "succeeded", EXIT_OK
            run.status = status
            return ScrapeResult(run.run_id, status, code, self.summary(status))

    def _params(self) -> dict[str, Any]:
        tmdb = self.settings.tmdb
        return {
            **self.options.params(),
            "api_base_url": redact_url(tmdb.api_base_url),
            "rate_limit": tmdb.rate_limit,
            "max_workers": tmdb.max_workers,
            "language": tmdb.language,
            "include_adult": tmdb.include_adult,
            "append_keywords": tmdb.append_keywords,
            "refresh_after_days": tmdb.refresh_after_days,
        }

    def _counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = self.counts.as_dict()
        transport = self.client.counters
        counts["requests"] = transport["requests"]
        counts["throttled_429"] = transport["throttled"]
        counts["retries"] = transport["retries"]
        if self._posters is not None:
            counts["posters"] = self._posters
        return counts

    def _work(self) -> None:
        with progress("scraping TMDB", None, unit="movies") as reporter:
            self._reporter = reporter
            with ThreadPoolExecutor(
                max_workers=self.settings.tmdb.max_workers, thread_name_prefix="reelset-fetch"
            ) as pool:
                self._pool = pool
                # The genre list is asked for along with the first movies, not before
                # them (one round trip less before the paced phase); it is stored before
                # the first movie is written, and its failure stops the run as before.
                self._genre_list = pool.submit(self.client.genres)
                self._genre_list.add_done_callback(self._genre_list_done)
                try:
                    self._retry_open_failures()
                    if not self.options.retry_failures and not self._should_stop():
                        self._discover()
                    self._store_genres()
                except BaseException:
                    # Queued fetches must not run on: the pool waits for them on exit.
                    self.stop.set()
                    raise
        self._scrape_elapsed = time.monotonic() - self._started
        self._call_started()  # no movie was fetched: start-up ends here, before posters
        if not self._should_stop() and self._wants_posters():
            self._download_posters()

    def _should_stop(self) -> bool:
        return self.stop.is_set() or self._auth_error is not None

    # -- genres ------------------------------------------------------------------------

    def _genre_list_done(self, future: Future[list[Genre]]) -> None:
        """Stop the workers when the genre list failed: the run fails with its error."""
        error = future.exception()
        if error is None or isinstance(error, Cancelled):
            return
        if isinstance(error, AuthError):
            self._auth_failed(error)
        else:
            self.stop.set()

    def _store_genres(self) -> None:
        """Store TMDB's genre list (once; it raises what fetching the list raised)."""
        if self.namer is not None:
            return
        listed = self._genre_list.result()
        self.namer = GenreNamer(listed, self.settings.genres.patch)
        self.store.movies.upsert_genres(self.namer.initial())
        self.namer.mark_stored(g.genre_id for g in listed)

    # -- failures of earlier runs -----------------------------------------------------------

    def _retry_open_failures(self) -> None:
        failures = self.store.failures
        everything = self.options.retry_abandoned
        movie_keys = [f.key for f in failures.open("movie", include_abandoned=everything)]
        find_keys = [f.key for f in failures.open("find", include_abandoned=everything)]
        if not everything:
            self._abandoned_movies = failures.abandoned_keys("movie")
            self._abandoned_finds = failures.abandoned_keys("find")
            if self._abandoned_movies or self._abandoned_finds:
                log.info(
                    "not retrying %d abandoned failures (reelset failures --state abandoned; "
                    "--retry-abandoned tries them)",
                    len(self._abandoned_movies) + len(self._abandoned_finds),
                )
        self._open_movie_keys = set(movie_keys)
        self._open_find_keys = set(find_keys)
        candidates = [Candidate(int(k)) for k in movie_keys if k.isdigit()]
        self._retried = {c.tmdb_id for c in candidates if c.tmdb_id is not None}
        self._retried_finds = set(find_keys)
        candidates += [Candidate(None, imdb_id=k) for k in find_keys]
        if not candidates:
            return
        log.info("retrying %d open failures of earlier runs first", len(candidates))
        self.counts.failures_retried = len(candidates)
        batch_size = self.settings.storage.batch_size
        inflight: deque[_Batch] = deque()
        for start in range(0, len(candidates), batch_size):
            if self._should_stop():
                break
            inflight.append(self._submit(candidates[start : start + batch_size], None, False))
            while len(inflight) > 1:
                self._complete(inflight.popleft(), None)
        while inflight:
            self._complete(inflight.popleft(), None)

    # -- discovery -------------------------------------------------------------------------

    def _changes_since(self) -> dt.date | None:
        mark = self.store.checkpoints.get(CHANGES_MARK)
        if isinstance(mark, dict) and isinstance(mark.get("until"), str):
            try:
                return dt.date.fromisoformat(mark["until"])
            except ValueError:
                return None
        return None

    def _discover(self) -> None:
        opts = self.options
        strategy = self._prepared_strategy
        if strategy is None:
            since = self._changes_since() if opts.strategy == "changes" else None
            strategy = make_strategy(
                self.client, self.settings, opts.discovery(), changes_since=since
            )
        self.strategy = strategy
        key = strategy.checkpoint_key()
        saved = self.store.checkpoints.get(key)
        if isinstance(saved, dict) and isinstance(saved.get("cursor"), dict):
            cursor: dict[str, Any] = saved["cursor"]
            emitted = int(saved.get("emitted", 0))
            log.info("resuming %s from checkpoint %s (%s)", opts.strategy, key, cursor)
        else:
            cursor, emitted = strategy.fresh_cursor(), 0
        first_cursor = dict(cursor)
        limit = opts.limit
        skip_fresh = not (opts.refresh or strategy.always_refresh)
        batch_size = self.settings.storage.batch_size
        inflight: deque[_Batch] = deque()
        pending: list[Candidate] = []
        pending_cursor: dict[str, Any] | None = None
        finished = False

        def flush() -> None:
            nonlocal pending, pending_cursor
            if not pending and pending_cursor is None:
                return
            value = {"cursor": pending_cursor, "emitted": emitted}
            inflight.append(self._submit(pending, value, skip_fresh))
            pending, pending_cursor = [], None
            while len(inflight) > 1:
                self._complete(inflight.popleft(), key)

        try:
            for page in strategy.pages(cursor):
                if strategy.total_hint is not None:
                    hint = strategy.total_hint if limit is None else min(limit, strategy.total_hint)
                    self._reporter.set_total(hint + self.counts.failures_retried)
                for candidate in page.candidates:
                    if limit is not None and emitted >= limit:
                        break
                    if self._wanted(candidate, strategy):
                        pending.append(candidate)
                        emitted += 1  # across resumed runs, for --limit
                        self.counts.discovered += 1
                pending_cursor = page.cursor
                if limit is not None and emitted >= limit:
                    finished = True
                    break
                if len(pending) >= batch_size:
                    flush()
                if self._should_stop():
                    break
            else:
                finished = True
        except Cancelled:
            finished = False
        # The writes in flight are finished even when stopping.
        flush()
        while inflight:
            self._complete(inflight.popleft(), key)
        if finished and not self._should_stop():
            self.store.checkpoints.delete(key)
            if opts.strategy == "changes":
                # Failed movies are in fetch_failures and retried first next time.
                self.store.checkpoints.set(
                    CHANGES_MARK, {"until": first_cursor.get("until")}, run_id=self.run_id
                )

    def _wanted(self, candidate: Candidate, strategy: Strategy) -> bool:
        minimum = self.options.min_popularity
        if (
            minimum is not None
            and candidate.popularity is not None
            and candidate.popularity < minimum
        ):
            return False
        if self._abandoned(candidate):
            self.counts.abandoned_skipped += 1
            return False
        if candidate.tmdb_id is None and candidate.imdb_id in self._retried_finds:
            return False  # looked up already, as a failure retried first
        if candidate.tmdb_id is not None:
            if candidate.tmdb_id in self._retried:
                return False
            if strategy.may_repeat:
                if candidate.tmdb_id in self._seen:
                    return False
                self._seen.add(candidate.tmdb_id)
        return True

    def _abandoned(self, candidate: Candidate) -> bool:
        """Whether the candidate's failure is abandoned (not retried automatically)."""
        if candidate.tmdb_id is not None:
            return str(candidate.tmdb_id) in self._abandoned_movies
        return candidate.imdb_id is not None and candidate.imdb_id in self._abandoned_finds

    # -- fetching and writing -----------------------------------------------------------------

    def _submit(
        self, candidates: list[Candidate], checkpoint: dict[str, Any] | None, skip_fresh: bool
    ) -> _Batch:
        skipped = 0
        if skip_fresh and self.settings.tmdb.refresh_after_days > 0:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(
                days=self.settings.tmdb.refresh_after_days
            )
            known = [c.tmdb_id for c in candidates if c.tmdb_id is not None]
            fresh = self.store.movies.fetched_since(known, since) if known else set()
            if fresh:
                kept = [c for c in candidates if c.tmdb_id is None or c.tmdb_id not in fresh]
                skipped = len(candidates) - len(kept)
                candidates = kept
        if skipped:
            self._reporter.advance(skipped)
        futures = [self._pool.submit(self._fetch, c) for c in candidates]
        if futures:
            self._call_started()
        for future in futures:
            future.add_done_callback(self._advance)
        return _Batch(candidates, futures, checkpoint, skipped)

    def _call_started(self) -> None:
        if self._started_hook is not None:
            hook, self._started_hook = self._started_hook, None
            hook()

    def _advance(self, _future: Future[_Outcome]) -> None:
        self._reporter.advance(1)

    def _fetch(self, candidate: Candidate) -> _Outcome:
        outcome = _Outcome()
        if self._should_stop():
            outcome.cancelled = True
            return outcome
        ids: list[int]
        if candidate.tmdb_id is not None:
            ids = [candidate.tmdb_id]
        else:
            imdb_id = candidate.imdb_id or ""
            try:
                ids = self.client.find_imdb(imdb_id)
            except Cancelled:
                outcome.cancelled = True
                return outcome
            except AuthError as exc:
                self._auth_failed(exc)
                outcome.cancelled = True
                return outcome
            except FetchError as exc:
                outcome.failures.append(("find", imdb_id, error_line(exc), exc.http_status))
                return outcome
            outcome.resolved_imdb.append(imdb_id)
            if not ids:
                outcome.unresolved_imdb.append(imdb_id)
        for tmdb_id in ids:
            try:
                outcome.records.append(parse_movie(self.client.movie(tmdb_id)))
            except Cancelled:
                outcome.cancelled = True
            except AuthError as exc:
                self._auth_failed(exc)
                outcome.cancelled = True
            except NotFoundError:
                outcome.gone.append(tmdb_id)
            except FetchError as exc:
                outcome.failures.append(("movie", str(tmdb_id), error_line(exc), exc.http_status))
            except ValueError as exc:  # parse_movie: a body we cannot use
                outcome.failures.append(("movie", str(tmdb_id), error_line(exc), None))
        return outcome

    def _auth_failed(self, exc: AuthError) -> None:
        if self._auth_error is None:
            self._auth_error = exc
        self.stop.set()

    def _complete(self, batch: _Batch, checkpoint_key: str | None) -> None:
        futures = batch.futures
        # A batch is written in parts as its movies arrive, so the run's last answer is
        # followed by one small write, not a whole batch's. A batch with IMDb ids is
        # written whole: two of its ids can name one movie, and a write keeps the last.
        part = WRITE_PART if all(c.tmdb_id is not None for c in batch.candidates) else 0
        part = part or max(len(futures), 1)
        cancelled = False
        for start in range(0, len(futures), part):
            outcomes = [f.result() for f in futures[start : start + part]]
            cancelled = self._write(outcomes) or cancelled
        self.counts.skipped += batch.skipped
        if checkpoint_key is not None and batch.checkpoint is not None and not cancelled:
            # Everything of this batch (and of the ones before) is written.
            self.store.checkpoints.set(checkpoint_key, batch.checkpoint, run_id=self.run_id)
        if self._run is not None:
            self._run.counts = self._counts()  # saved by the run's heartbeat

    def _write(self, outcomes: list[_Outcome]) -> bool:
        """Write what fetching some movies gave; whether any fetch was cancelled."""
        self._store_genres()  # first: when the genre list failed, nothing is written
        records = [r for o in outcomes for r in o.records]
        gone = [i for o in outcomes for i in o.gone]
        failures = [f for o in outcomes for f in o.failures]
        cancelled = any(o.cancelled for o in outcomes)
        if records:
            assert self.namer is not None
            genre_ids = {g for r in records for g in r.genre_ids}
            missing = self.namer.missing(genre_ids)
            if missing:
                self.store.movies.upsert_genres(missing)
                self.namer.mark_stored(g.genre_id for g in missing)
            result = self.store.movies.upsert(records, run_id=self.run_id)
            self.counts.new += result.new
            self.counts.updated += result.updated
            self.counts.unchanged += result.unchanged
            self.counts.fetched += len(records)
        if gone:
            self.store.movies.mark_gone(gone)
            self.counts.gone += len(gone)
        for kind, key, error, status in failures:
            entry = self.store.failures.record(
                kind,
                key,
                run_id=self.run_id,
                error=error,
                http_status=status,
                lifecycle=self.settings.failures,
            )
            log.warning("%s %s failed: %s", kind, key, error)
            if entry.pending:
                self._pending_failures += 1
            else:
                self.counts.failures_abandoned += 1
                log.warning(
                    "%s %s abandoned after %d attempts since %s: no longer retried "
                    "(--retry-abandoned tries it again)",
                    kind,
                    key,
                    entry.attempts,
                    entry.first_failed_at.strftime("%Y-%m-%d"),
                )
        self.counts.failed += len(failures)
        for o in outcomes:
            for imdb_id in o.unresolved_imdb:
                log.warning("IMDb id %s: TMDB has no movie for it", imdb_id)
            self.counts.imdb_unresolved += len(o.unresolved_imdb)
        done_movies = {str(r.tmdb_id) for r in records} | {str(i) for i in gone}
        resolved = self.store.failures.resolve("movie", done_movies & self._open_movie_keys)
        done_finds = {k for o in outcomes for k in o.resolved_imdb}
        resolved += self.store.failures.resolve("find", done_finds & self._open_find_keys)
        self._open_movie_keys -= done_movies
        self._open_find_keys -= done_finds
        self.counts.failures_resolved += resolved
        if self._run is not None:
            self._run.counts = self._counts()  # saved by the run's heartbeat
        return cancelled

    # -- posters -----------------------------------------------------------------------

    def _wants_posters(self) -> bool:
        return self.options.posters and self.settings.posters.enabled

    def _download_posters(self) -> None:
        from reelset.posters.download import download_posters

        assert self._run is not None
        try:
            # Within this run (its id, its stop event), holding the posters lock too: one
            # poster downloader per store. When another holds it, the posters wait for
            # the next run and this one still succeeds.
            with run_lock(self.store, self._run, POSTERS_LOCK):
                summary = download_posters(
                    self.store, self.settings, client=self.client, run=self._run
                )
        except LockedError as exc:
            reason = error_line(exc)
            log.warning("posters skipped (another poster download is running): %s", reason)
            self._posters = {"skipped": reason}
            return
        except Interrupted:
            self._interrupted = True
            self._posters = {"interrupted": True}
            return
        except AuthError:
            raise
        except ReelsetError as exc:
            self._posters_error = error_line(exc)
            log.error("posters: %s", self._posters_error)
            self._posters = {"error": self._posters_error}
            return
        self._posters = summary.as_dict()
        self._pending_failures += summary.open_failures  # recorded failures: partial, exit 1
        if summary.failed:
            log.warning("%d posters failed (recorded in fetch_failures)", summary.failed)

    # -- the summary ---------------------------------------------------------------------

    def summary(self, status: str) -> dict[str, Any]:
        """The run's summary (printed as text or JSON)."""
        elapsed = time.monotonic() - self._started
        scraping = self._scrape_elapsed if self._scrape_elapsed is not None else elapsed
        transport = self.client.counters
        fetched = self.counts.fetched + self.counts.gone + self.counts.failed
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "status": status,
            "strategy": self.options.strategy,
            **(self.strategy.describe() if self.strategy is not None else {}),
            "movies": self.counts.as_dict(),
            "requests": transport["requests"],
            "throttled_429": transport["throttled"],
            "retries": transport["retries"],
            "requests_per_movie": round(transport["requests"] / fetched, 3) if fetched else None,
            "requests_per_s": round(transport["requests"] / scraping, 2) if scraping else None,
            "rate_limit": self.settings.tmdb.rate_limit,
            "scrape_s": round(scraping, 2),
            "elapsed_s": round(elapsed, 2),
        }
        unknown = self.namer.unknown_ids if self.namer is not None else []
        if unknown:
            out["unknown_genre_ids"] = unknown
        if self._posters is not None:
            out["posters"] = self._posters
        return out


def run_scrape(
    settings: Settings,
    options: ScrapeOptions,
    *,
    store: Store | None = None,
    client: TmdbClient | None = None,
    stop: threading.Event | None = None,
    started: Callable[[], None] | None = None,
) -> ScrapeResult:
    """Run one scrape against the configured store and TMDB (see the module docstring).

    ``started`` is called once, in this thread, right after the first movies were handed
    to the workers: the start-up (imports, store, lock, the first page of discovery) is
    over (when no movie is fetched: before the posters). ``reelset scrape`` turns the
    garbage collector back on there.

    Raises :class:`~reelset.errors.LockedError` (another run holds the lock, exit 3),
    :class:`~reelset.errors.AuthError` (exit 4), ConfigError/UsageError (exit 2).
    """
    stop = stop or threading.Event()
    own_store = store is None
    own_client = client is None
    if options.strategy == "ids" and options.ids_file is None:
        raise UsageError("--strategy ids needs --from FILE")
    the_client = client or TmdbClient(settings, stop=stop)
    if not own_client:
        stop = the_client.stop
    export: ExportStrategy | None = None
    try:
        options.check()
        if options.strategy == "export" and not options.retry_failures:
            # Read the export while the store opens (its lock, the genre list, failures).
            export = ExportStrategy(the_client, settings, options.discovery())
            export.start_reading()
        the_store = store or Store.open(settings)
        try:
            job = ScrapeJob(
                the_store, settings, options, the_client, stop=stop, strategy=export,
                started=started,
            )
            return job.run()
        finally:
            if own_store:
                the_store.close()
    finally:
        if export is not None:
            export.cancel_reading()  # the run ended before it needed the export
        if own_client:
            the_client.close()
