"""The run lifecycle: run locks, the ``scrape_runs`` row, the heartbeat, and how a run ends.

Every job that changes the store (``scrape``, ``posters``, ``posters verify --repair``,
``imdb import``, ``build``) is one :func:`recorded_run`, entered by the library function
itself, so calling the Python API is locked and recorded exactly like the command:

1. runs of the same command left ``running`` by a dead process are closed ``interrupted``;
2. the run's locks are taken (:class:`~reelset.errors.LockedError`, exit 3, naming the
   holder; a lock of a dead or silent process is taken over);
3. a ``scrape_runs`` row is started (``running``), and a heartbeat thread keeps the locks
   alive and saves the run's counts while the body works;
4. SIGINT/SIGTERM set the run's stop event (:func:`stop_on_signals`): the body finishes
   the work in flight and stops; a second SIGINT interrupts at once;
5. the row is closed ``succeeded``/``partial`` (as the body says), ``interrupted`` (exit
   130) or ``failed`` (with the exception's redacted first line), and the locks released.

Which runs exclude which is said by the lock names below.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from reelset.errors import Interrupted, ReelsetError, error_line

if TYPE_CHECKING:
    from reelset.storage import Store

log = logging.getLogger(__name__)

SCRAPE_LOCK = "scrape"
"""Held by scrapes (posters included) and by ``posters verify --repair``."""
POSTERS_LOCK = "posters"
"""Held by poster runs of their own, by a scrape's poster phase (:func:`run_lock`) and by
``posters verify --repair``: one poster downloader per store."""
IMDB_LOCK = "imdb"
"""Held by IMDb imports (TSV or cinemagoer)."""

LOCK_HEARTBEAT_S = 30.0
"""How often a run tells other processes its locks are alive (stale after 15 minutes)."""
COUNTS_EVERY_S = 5.0
"""How often the counts of a running run are saved (when they changed)."""

INTERRUPTED = "interrupted; the work written so far is kept"


@dataclass(eq=False)
class Run:
    """A recorded run in progress, as its body sees it.

    The body keeps ``counts`` current by assigning a new dict (the heartbeat saves it, and
    it is the run's final counts) and may set ``status`` (``succeeded``, ``partial``,
    ``interrupted``) before it returns; left ``None``, the run ends ``succeeded``, or
    ``interrupted`` when the stop event was set. Work inside the run watches ``stop``.
    """

    run_id: int
    command: str
    locks: tuple[str, ...]
    stop: threading.Event
    counts: dict[str, Any] = field(default_factory=dict)
    status: str | None = None

    def raise_if_stopped(self) -> None:
        """Raise :class:`~reelset.errors.Interrupted` once the run was asked to stop."""
        if self.stop.is_set():
            raise Interrupted(INTERRUPTED)


@contextmanager
def stop_on_signals(stop: threading.Event, *, at_once: bool = False) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``stop.set()`` for the body's duration.

    The work in flight then finishes and the body stops; a second SIGINT raises
    ``KeyboardInterrupt`` at once. With ``at_once`` (work that is thrown away whole when
    stopped, like a build's staging folder) the first signal also raises
    :class:`~reelset.errors.Interrupted` at once. Handlers are installed only in the
    main thread (elsewhere this does nothing) and the previous ones restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        first = not stop.is_set()
        stop.set()
        if at_once:
            raise Interrupted(f"interrupted by {name}; the unfinished work was discarded")
        if first:
            log.warning("%s received: finishing the work in flight, then stopping", name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Heartbeat:
    """A thread that heartbeats the run's locks and saves its counts when they change."""

    def __init__(
        self, store: Store, run: Run, *, lock_every_s: float, counts_every_s: float
    ) -> None:
        self._store = store
        self._run = run
        self._lock_every_s = lock_every_s
        self._counts_every_s = counts_every_s
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"reelset-heartbeat-{run.run_id}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        saved = self._run.counts
        tick = min(self._lock_every_s, self._counts_every_s)
        since_beat = 0.0
        while not self._done.wait(tick):
            since_beat += tick
            try:
                counts = self._run.counts
                if counts is not saved:
                    self._store.runs.update(self._run.run_id, counts=counts)
                    saved = counts
                if since_beat >= self._lock_every_s:
                    since_beat = 0.0
                    for name in self._run.locks:
                        self._store.locks.heartbeat(name)
            except Exception as exc:  # a missed beat is retried; the run goes on
                log.warning("heartbeat of run %d failed: %s", self._run.run_id, error_line(exc))


@contextmanager
def recorded_run(
    store: Store,
    command: str,
    params: dict[str, Any],
    *,
    locks: Sequence[str] = (),
    stop: threading.Event | None = None,
    at_once: bool = False,
    lock_heartbeat_s: float = LOCK_HEARTBEAT_S,
    counts_every_s: float = COUNTS_EVERY_S,
) -> Iterator[Run]:
    """Run the body as one locked, recorded run of ``command`` (see the module docstring).

    ``params`` (JSON, no secrets) describe the run in ``scrape_runs``. ``stop`` is the
    event SIGINT/SIGTERM set (a new one by default); ``at_once`` makes the first signal
    interrupt at once (see :func:`stop_on_signals`). How the body ends decides the run's
    status: returning, ``run.status`` (default ``succeeded``, or ``interrupted`` when
    stopped, then raising :class:`~reelset.errors.Interrupted`); raising ``Interrupted``
    or ``KeyboardInterrupt``, ``interrupted`` (raised again as ``Interrupted``, exit 130);
    raising anything else, ``failed`` with its redacted first line. Raises
    :class:`~reelset.errors.LockedError` (exit 3) before anything is recorded when a lock
    is held by a live run.
    """
    store.runs.close_abandoned(command)
    held: list[str] = []
    try:
        for name in locks:
            store.locks.acquire(name)
            held.append(name)
        run_id = store.runs.start(command, params)
        run = Run(run_id, command, tuple(held), stop or threading.Event())
        for name in held:
            store.locks.set_run(name, run.run_id)
        heartbeat = _Heartbeat(
            store, run, lock_every_s=lock_heartbeat_s, counts_every_s=counts_every_s
        )
        try:
            with heartbeat, stop_on_signals(run.stop, at_once=at_once):
                yield run
        except (KeyboardInterrupt, Interrupted) as exc:
            run.stop.set()
            _finish(store, run, "interrupted", on_error=True)
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted(INTERRUPTED) from None
            raise
        except BaseException as exc:
            run.stop.set()  # threads of the body still working stop too
            _finish(store, run, "failed", error=error_line(exc, limit=2000), on_error=True)
            raise
        stopped = run.status is None and run.stop.is_set()
        _finish(store, run, "interrupted" if stopped else run.status or "succeeded")
        if stopped:
            raise Interrupted(INTERRUPTED)
    finally:
        for name in reversed(held):
            try:
                store.locks.release(name)
            except ReelsetError as exc:  # a stale lock is taken over by the next run
                log.warning("could not release the %s lock: %s", name, exc)


@contextmanager
def run_lock(store: Store, run: Run, name: str) -> Iterator[None]:
    """Hold one more lock for a part of ``run`` (a scrape's poster phase: ``posters``).

    Raises :class:`~reelset.errors.LockedError` (naming the holder) at once when a live
    run holds it. While held, the lock names ``run`` and the run's heartbeat keeps it
    alive; it is released when the body ends, however it ends.
    """
    store.locks.acquire(name)
    try:
        store.locks.set_run(name, run.run_id)
        run.locks = (*run.locks, name)
        yield
    finally:
        run.locks = tuple(n for n in run.locks if n != name)
        try:
            store.locks.release(name)
        except ReelsetError as exc:  # a stale lock is taken over by the next run
            log.warning("could not release the %s lock: %s", name, exc)


def _finish(
    store: Store, run: Run, status: str, *, error: str | None = None, on_error: bool = False
) -> None:
    try:
        store.runs.finish(run.run_id, status, counts=run.counts, error=error)
    except ReelsetError as exc:
        if not on_error:
            raise
        # The error the run is ending on is what the user must see. The row stays
        # ``running`` until the next run of the command closes it as abandoned.
        log.warning("could not record run %d as %s: %s", run.run_id, status, exc)
