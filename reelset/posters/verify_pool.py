"""Poster verification in worker processes: decoding without the GIL, and crash isolation.

Decoding and hashing a poster is CPU work in C (Pillow, numpy, scipy) wrapped in Python;
in the download threads it competes for the GIL with every request. :class:`VerifierPool`
runs :func:`~reelset.posters.verify.verify_image` in ``spawn``-ed processes instead
(safe with threads, and the same on every platform). A decoder that crashes on hostile
bytes then takes down a worker, not reelset: the poster counts as failed
(``verifier_crashed``) and the worker is replaced.

Each worker serves a few pipes (:data:`CHANNELS_PER_PROCESS`); a download thread borrows
an idle one, sends its bytes and reads the answer itself. No executor thread stands in
between: each hand-off through a thread of the parent would wait for the GIL, which 16
busy download threads hold most of the time, and the worker would idle meanwhile.
Several pipes per worker keep its next poster waiting while it decodes one.

Workers ignore SIGINT (the parent decides when to stop and closes the pool) and exit when
their pipes close: when the pool is closed, and when the parent dies (even by SIGKILL).
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import cast

from PIL import Image

from reelset.posters.verify import VerifiedImage, verify_image

log = logging.getLogger(__name__)

CHANNELS_PER_PROCESS = 4
"""Pipes per worker process: at most this many posters wait for (or are in) one worker."""
CLOSE_TIMEOUT_S = 30.0


class VerifierCrashed(Exception):
    """The verifier process died while decoding (or the pool was shut down)."""


def warm_up_verification() -> None:
    """Verify a tiny picture once, so the lazy imports (Pillow plugins, scipy for the
    perceptual hash) happen now and not under the import lock in many threads at once."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 64, 32)).save(out, format="JPEG")
    verify_image(out.getvalue(), allowed_formats=["JPEG"], max_pixels=64)


def _answer(request: tuple[bytes, list[str], int]) -> tuple[bool, object]:
    data, allowed_formats, max_pixels = request
    try:
        return True, verify_image(data, allowed_formats=allowed_formats, max_pixels=max_pixels)
    except Exception as exc:  # PosterRejected mostly: raised again in the parent
        return False, exc


def _serve(conns: list[Connection]) -> None:
    """A worker's loop: answer each request on any of its pipes until all are closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One poster at a time, single-threaded: numpy's and scipy's OpenBLAS would each start
    # a thread per CPU at import that spins for a while (about 0.1 s of CPU each), for
    # nothing, as verification makes no BLAS call. Read when they load, just below.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    warm_up_verification()
    live = list(conns)
    while live:
        for ready in wait(live):
            conn = cast(Connection, ready)  # wait() returns some of the objects it was given
            try:
                ok, value = _answer(conn.recv())
                try:
                    conn.send((ok, value))
                except Exception:  # an exception that does not pickle: say what it was
                    conn.send((False, RuntimeError(f"{value.__class__.__name__}: {value}")))
            except (EOFError, OSError):  # the parent closed this pipe, or died
                conn.close()
                live.remove(conn)


def spawn_is_safe() -> bool:
    """Whether worker processes can start without running someone's unguarded script.

    ``spawn`` re-imports the ``__main__`` module in each worker. That is harmless for the
    ``reelset`` command, ``python -m reelset...``, ``python -c`` and interactive sessions,
    but a user's script without an ``if __name__ == "__main__":`` guard would run again.
    """
    main = sys.modules.get("__main__")
    if main is None:
        return True
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if spec_name.split(".")[0] == "reelset":
        return True
    path = getattr(main, "__file__", None)
    return path is None or os.path.basename(path) == "reelset"


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conns: list[Connection]
    alive: bool = True  # False once replaced: its pipes are not lent again


@dataclass(eq=False)
class _Channel:
    worker: _Worker
    conn: Connection


class VerifierPool:
    """``processes`` worker processes running :func:`verify_image`. Thread-safe."""

    def __init__(self, processes: int, *, channels_per_process: int = CHANNELS_PER_PROCESS):
        self.processes = processes
        self.channels_per_process = max(1, channels_per_process)
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._returned = threading.Condition(self._lock)
        self._closed = False
        self._lent = 0
        self._idle: queue.SimpleQueue[_Channel | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        with self._lock:
            for _ in range(processes):
                self._start_worker()

    def _start_worker(self) -> None:
        """Start one worker and make its pipes available (under ``self._lock``)."""
        pairs = [self._ctx.Pipe(duplex=True) for _ in range(self.channels_per_process)]
        process = self._ctx.Process(
            target=_serve, args=([child for _, child in pairs],), daemon=True,
            name="reelset-verifier",
        )
        process.start()
        for _, child in pairs:  # the worker holds them now: its death closes them
            child.close()
        worker = _Worker(process, [parent for parent, _ in pairs])
        self._workers.append(worker)
        for conn in worker.conns:
            self._idle.put(_Channel(worker, conn))

    def pids(self) -> list[int]:
        """The process ids of the current workers."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def _borrow(self) -> _Channel:
        while True:
            channel = self._idle.get()
            if channel is None:  # closed: pass the word on to the next waiting thread
                self._idle.put(None)
                raise VerifierCrashed("the verifier pool is shut down")
            with self._lock:
                if self._closed:
                    self._idle.put(None)
                    raise VerifierCrashed("the verifier pool is shut down")
                if not channel.worker.alive:
                    continue  # a pipe of a worker that died: dropped
                self._lent += 1
                return channel

    def _give_back(self, channel: _Channel | None) -> None:
        with self._lock:
            self._lent -= 1
            if channel is not None:
                self._idle.put(channel)
            self._returned.notify_all()

    def verify(
        self, data: bytes, *, allowed_formats: Sequence[str], max_pixels: int
    ) -> VerifiedImage:
        """:func:`verify_image` in a worker; raises PosterRejected or VerifierCrashed."""
        channel = self._borrow()
        try:
            channel.conn.send((data, list(allowed_formats), max_pixels))
            ok, value = channel.conn.recv()
        except (EOFError, OSError):
            self._replace(channel.worker)
            self._give_back(None)
            raise VerifierCrashed("the image decoder process died") from None
        except BaseException:
            # Interrupted mid-exchange: the pipe may hold half a message; never lend it again.
            self._replace(channel.worker)
            self._give_back(None)
            raise
        self._give_back(channel)
        if ok:
            assert isinstance(value, VerifiedImage)
            return value
        assert isinstance(value, BaseException)
        raise value

    def _replace(self, broken: _Worker) -> None:
        with self._lock:
            if not broken.alive:
                return
            broken.alive = False
            self._workers.remove(broken)
            if not self._closed:
                log.warning("a poster verifier process died; starting a new one")
                self._start_worker()
        for conn in broken.conns:
            conn.close()
        broken.process.join(timeout=1.0)
        if broken.process.is_alive():  # alive but unusable (a pipe out of step)
            broken.process.kill()
            broken.process.join()

    def close(self) -> None:
        """Stop the workers (waiting for the verifications in progress)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._returned.wait_for(lambda: self._lent == 0, timeout=CLOSE_TIMEOUT_S)
            workers, self._workers = self._workers, []
        self._idle.put(None)  # wakes the threads waiting for a pipe
        for worker in workers:
            worker.alive = False
            for conn in worker.conns:
                conn.close()
        for worker in workers:
            worker.process.join(timeout=CLOSE_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
