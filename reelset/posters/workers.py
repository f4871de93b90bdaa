"""Poster workers: ``reelset posters --worker`` processes sharing one PostgreSQL store.

Poster downloads are bound by the image CDN, not the API quota, so their throughput
grows with machines. Any number of worker processes, on any number of machines, share
the work through the store (:mod:`reelset.storage.claims`): each claims ``[posters]
claim_batch`` posters at a time under a lease of ``lease_seconds`` that a thread renews
every third of it, downloads, verifies and stores them exactly as a plain run does
(:mod:`reelset.posters.download`: same pool, limiter, verifier processes, recorder), and
deletes its claims as their rows are recorded. When nothing is left to claim, a worker
waits while other workers hold live claims (a dead worker's claims lapse and are claimed
again), then ends.

Each worker is a recorded run of its own (command ``posters``, params with ``worker`` =
``<host>:<pid>``), not holding the ``posters`` lock. A plain ``reelset posters`` (or a
scrape's poster phase) and workers exclude each other: a worker refuses to start, and
stops claiming, while a live run holds the ``posters`` lock (exit 3); such a run refuses
to start while workers hold live claims. SQLite stores run one poster download at a
time: ``--worker`` there is a usage error.

A poster that fails (or is rejected after a download) while a worker runs is not tried
again by the workers running then: like a plain run, each wave of workers tries each
poster once, and the failure ledger decides what the next wave retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from reelset.config import Settings
from reelset.errors import LockedError, error_line
from reelset.posters.download import (
    COMMAND,
    ImageBaseUrlSource,
    PostersInterrupted,
    PosterSummary,
    _Downloader,
    _drive,
    _Outcome,
    _progress,
    _Recorder,
    record_finished,
    rejected_recheck,
    verify_processes_for,
)
from reelset.runs import Run, recorded_run
from reelset.storage import Store
from reelset.storage.claims import (
    PosterClaims,
    refuse_while_locked,
    require_postgresql,
    worker_name,
)
from reelset.storage.posters import PosterTarget, count_poster_targets
from reelset.storage.schema import utcnow

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3
"""A worker renews its leases this many times per ``lease_seconds``."""
WAIT_POLL_S = 1.0
"""How often an idle worker looks again for claims to take over (at most)."""


def run_poster_worker(
    store: Store,
    settings: Settings,
    *,
    client: ImageBaseUrlSource | None = None,
    image_base_url: str | None = None,
    tmdb_ids: Iterable[int] | None = None,
    retry_rejected: bool = False,
    retry_abandoned: bool = False,
    stop: threading.Event | None = None,
    show_progress: bool = True,
) -> PosterSummary:
    """Download posters as one worker among any number sharing a PostgreSQL store.

    What ``reelset posters --worker`` runs (see the module docstring). The targets and
    options are those of :func:`~reelset.posters.download.download_posters`; the summary
    counts this worker's posters (``movies``: those it claimed). Raises
    :class:`~reelset.errors.UsageError` on a SQLite store,
    :class:`~reelset.errors.LockedError` while a live run holds the ``posters`` lock, and
    :class:`~reelset.posters.download.PostersInterrupted` on SIGINT/SIGTERM (after
    recording the work in flight and releasing its claims).
    """
    require_postgresql(store)
    refuse_while_locked(store)
    ids = sorted(set(tmdb_ids)) if tmdb_ids is not None else None
    worker = worker_name()
    params: dict[str, Any] = {
        "worker": worker,
        "retry_rejected": retry_rejected,
        "retry_abandoned": retry_abandoned,
        "tmdb_ids": ids,
    }
    with recorded_run(store, COMMAND, params, stop=stop) as run:
        claims = PosterClaims(
            store,
            worker,
            run.run_id,
            lease_s=settings.posters.lease_seconds,
            batch=settings.posters.claim_batch,
            since=utcnow(),
            ids=ids,
            retry_rejected=retry_rejected,
            retry_abandoned=retry_abandoned,
            recheck=rejected_recheck(settings),
        )
        try:
            summary = _work(
                store, settings, run, claims, client=client, image_base_url=image_base_url,
                show_progress=show_progress,
            )
        except PostersInterrupted as exc:
            run.counts = exc.summary.as_dict()
            raise
        run.counts = summary.as_dict()
        run.status = "partial" if summary.open_failures else "succeeded"
    return summary


class _ClaimedTargets:
    """The targets of batch after batch of claims (an iterator for ``_drive``).

    It ends when nothing is left to claim, the run is stopping, or a run took the
    ``posters`` lock (``locked``); iterating again claims again.
    """

    def __init__(
        self, claims: PosterClaims, stop: threading.Event, summary: PosterSummary
    ) -> None:
        self.claims = claims
        self.stop = stop
        self.summary = summary
        self.locked: LockedError | None = None
        self.claimed = 0
        self._batch: Iterator[PosterTarget] = iter(())

    def __iter__(self) -> _ClaimedTargets:
        return self

    def __next__(self) -> PosterTarget:
        target = next(self._batch, None)
        if target is not None:
            return target
        if self.stop.is_set() or self.locked is not None:
            raise StopIteration
        try:
            batch = self.claims.claim()
        except LockedError as exc:
            self.locked = exc
            raise StopIteration from None
        if not batch:
            raise StopIteration
        log.debug("worker %s claimed %d poster(s)", self.claims.worker, len(batch))
        self.claimed += len(batch)
        self.summary.movies += len(batch)
        self._batch = iter(batch[1:])
        return batch[0]


class _ClaimRecorder(_Recorder):
    """The plain run's recorder, releasing each claim once its row is written."""

    def __init__(self, store: Store, summary: PosterSummary, run: Run, settings: Settings,
                 claims: PosterClaims) -> None:
        super().__init__(store, summary, run, True, settings.failures)
        self.claims = claims

    def flush(self) -> None:
        """Write the collected rows, then delete their claims."""
        recorded = [o.row.tmdb_id for o in self._pending if o.row is not None]
        super().flush()
        self.claims.release(recorded)


class _LeaseKeeper:
    """A thread renewing the worker's leases every ``lease_s / RENEWALS_PER_LEASE``."""

    def __init__(self, claims: PosterClaims) -> None:
        self._claims = claims
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"reelset-lease-{claims.run_id}", daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        every = self._claims.lease_s / RENEWALS_PER_LEASE
        while not self._done.wait(every):
            try:
                self._claims.renew()
            except Exception as exc:  # retried at the next tick; the lease may still hold
                log.warning("could not renew the poster leases: %s", error_line(exc))


def _release(claims: PosterClaims) -> None:
    try:
        claims.release_all()
    except Exception as exc:  # the leases lapse on their own
        log.warning("could not release the poster claims: %s", error_line(exc))


def _work(
    store: Store,
    settings: Settings,
    run: Run,
    claims: PosterClaims,
    *,
    client: ImageBaseUrlSource | None,
    image_base_url: str | None,
    show_progress: bool,
) -> PosterSummary:
    started = time.monotonic()
    stop = run.stop
    summary = PosterSummary()
    # All workers' targets: the progress bar's upper bound and the verifier pool's size.
    total = count_poster_targets(
        store, claims.ids, retry_rejected=claims.retry_rejected,
        retry_abandoned=claims.retry_abandoned, recheck=claims.recheck,
    )
    cfg = settings.posters
    downloader = _Downloader(
        store, settings, client=client, image_base_url=image_base_url, stop=stop,
        verify_processes=verify_processes_for(settings, total),
    )
    recorder = _ClaimRecorder(store, summary, run, settings, claims)
    targets = _ClaimedTargets(claims, stop, summary)
    poll = min(WAIT_POLL_S, cfg.lease_seconds / 4)
    log.info(
        "poster worker %s: claiming %d at a time (lease %gs), %d workers, at most %s",
        claims.worker, cfg.claim_batch, cfg.lease_seconds, cfg.max_workers, cfg.rate_limit,
    )
    inflight: set[Future[_Outcome]] = set()
    pool = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="reelset-poster")
    try:
        with _progress(total, show_progress) as bar, _LeaseKeeper(claims):
            while True:
                # Read before claiming: when no other worker held a live claim then and
                # nothing is left to claim now, every poster is done or taken by a live one.
                others = claims.held_elsewhere()
                before = targets.claimed
                _drive(pool, downloader, recorder, targets, inflight, bar)
                recorder.flush()
                claims.release_all()
                if stop.is_set() or targets.locked is not None:
                    break
                if targets.claimed == before:
                    if not others:
                        break
                    stop.wait(poll)  # another worker's claims: done soon, or they lapse
    except KeyboardInterrupt:  # a second Ctrl-C: record what has finished, then stop
        stop.set()
        summary.interrupted = True
        record_finished(inflight, recorder)
        recorder.flush()
        pool.shutdown(wait=True, cancel_futures=True)
        downloader.close()
        _release(claims)
        summary.retries = downloader.retries
        summary.elapsed_s = time.monotonic() - started
        raise PostersInterrupted(summary) from None
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        try:
            recorder.flush()
        finally:
            downloader.close()
            _release(claims)
        raise
    pool.shutdown(wait=True)
    downloader.close()
    summary.retries = downloader.retries
    summary.elapsed_s = time.monotonic() - started
    if targets.locked is not None:
        raise targets.locked
    if stop.is_set():
        summary.interrupted = True
        raise PostersInterrupted(summary)
    return summary
