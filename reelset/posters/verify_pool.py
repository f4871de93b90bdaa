"""Poster verification in worker processes: decoding without the GIL, and crash isolation.

Decoding and hashing a poster is CPU work in C (Pillow, numpy, scipy) wrapped in Python;
in the download threads it competes for the GIL with every request. :class:`VerifierPool`
runs :func:`~reelset.posters.verify.verify_image` in ``spawn``-ed processes instead
(safe with threads, and the same on every platform). A decoder that crashes on hostile
bytes then takes down a worker, not reelset: the poster counts as failed
(``verifier_crashed``) and the pool is replaced.

Workers ignore SIGINT (the parent decides when to stop and shuts the pool down) and exit
on their own when the parent dies without shutting them down (SIGKILL).
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image

from reelset.posters.verify import VerifiedImage, verify_image

log = logging.getLogger(__name__)

PARENT_CHECK_S = 0.5


class VerifierCrashed(Exception):
    """The verifier process died while decoding (or the pool was shut down)."""


def warm_up_verification() -> None:
    """Verify a tiny picture once, so the lazy imports (Pillow plugins, scipy for the
    perceptual hash) happen now and not under the import lock in many threads at once."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 64, 32)).save(out, format="JPEG")
    verify_image(out.getvalue(), allowed_formats=["JPEG"], max_pixels=64)


def _exit_with_parent(parent: int) -> None:
    # A worker holds both ends of its task pipe, so a parent killed with SIGKILL would
    # leave it waiting for ever: leave as soon as we are someone else's child.
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch"
    ).start()
    warm_up_verification()


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


class VerifierPool:
    """``processes`` worker processes running :func:`verify_image`. Thread-safe."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    def verify(
        self, data: bytes, *, allowed_formats: Sequence[str], max_pixels: int
    ) -> VerifiedImage:
        """:func:`verify_image` in a worker; raises PosterRejected or VerifierCrashed."""
        with self._lock:
            if self._closed:
                raise VerifierCrashed("the verifier pool is shut down")
            pool = self._pool
        try:
            future = pool.submit(
                verify_image, data, allowed_formats=list(allowed_formats), max_pixels=max_pixels
            )
            return future.result()
        except BrokenProcessPool:
            self._replace(pool)
            raise VerifierCrashed("the image decoder process died") from None
        except RuntimeError as exc:  # submitted after shutdown: the run is stopping
            if "shutdown" not in str(exc):
                raise
            raise VerifierCrashed("the verifier pool is shut down") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._closed or self._pool is not broken:
                return
            log.warning("a poster verifier process died; starting new ones")
            self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (waiting for the verifications in progress)."""
        with self._lock:
            self._closed = True
            pool = self._pool
        pool.shutdown(wait=True, cancel_futures=True)
