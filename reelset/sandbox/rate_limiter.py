"""The sandbox's side of a rate limit: at most N admitted requests in any window of W seconds.

Unlike the client's :class:`~reelset.transport.limiter.SlidingWindowLimiter`, which waits
until a request may go, this one never waits: it admits a request or refuses it (the server
then answers 429 with ``Retry-After``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from reelset.transport.ratespec import RateSpec


class AdmissionLimiter:
    """Admits a request when fewer than ``spec.requests`` were admitted in the last window.

    Refused requests do not count. ``clock`` is injectable for tests of the arithmetic.
    """

    def __init__(self, spec: RateSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> float | None:
        """Admit one request (returns None) or return the seconds until one would be admitted."""
        with self._lock:
            # Read the clock under the lock: a time read before waiting for it could be
            # older than an admission recorded meanwhile and refuse a request that fits.
            now = self._clock()
            horizon = now - self.spec.per_seconds
            while self._admitted and self._admitted[0] <= horizon:
                self._admitted.popleft()
            if len(self._admitted) < self.spec.requests:
                self._admitted.append(now)
                return None
            return max(self._admitted[0] + self.spec.per_seconds - now, 0.0)

    def reset(self) -> None:
        """Forget every admitted request."""
        with self._lock:
            self._admitted.clear()


def retry_after_header(wait_seconds: float) -> str:
    """The ``Retry-After`` value for a wait: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
