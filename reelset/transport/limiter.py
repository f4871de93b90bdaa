"""One thread-safe request limiter shared by all workers: at most N requests in any window.

TMDB (and the sandbox) limit clients with a *sliding* window: a request is refused when N
requests already arrived in the last W seconds. A token bucket or a fixed window on the
client can still put N+1 requests into some W-second span the server sees, so the client
keeps the same "N in any W" rule over a log of its requests, with three refinements:

**Jitter.** The server sees request *i* at some time between our sending it and our
receiving its answer. Requests granted exactly W apart can reach the server's check less
than W apart when one of them is delayed on the way (a busy network, a stalled process),
and a fixed safety margin is either too small for a stall or wastes throughput. So a
request *tracked* with :meth:`SlidingWindowLimiter.slot` occupies its place in the window

- for as long as it is in flight (it may not have reached the server yet), and
- once answered, from ``answered_at - fastest_round_trip``: the request's own delay beyond
  the fastest round trip seen so far is added to its place in the window.

With that, request *i + N* is never sent until W after request *i* can have been checked,
whatever the jitter, at the cost of only the jitter actually seen. A small fixed margin
(``max(W * margin, min_margin_s)``) covers the rest (clock granularity, server work).

**Bursts.** Grants are paced (``smoothing`` 0.5: at most one per ``W / 2N``, keeping the
schedule when a grant wakes up a little late), so a window's N requests do not all leave
at once; bursts are what make delays vary most.

**A stricter server.** When the server still answers 429, every worker pauses
(``Retry-After`` when given) and the allowance drops multiplicatively; it climbs back one
request per window's worth of successes (AIMD), up to the configured limit.

Untracked grants (:meth:`acquire`) take their place at the grant time. Time and sleeping are
injectable, so the tests use a fake clock (no timing thresholds).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reelset.transport.ratespec import RateSpec, parse_rate

DEFAULT_MARGIN = 0.01
DEFAULT_MIN_MARGIN_S = 0.01
DECREASE_FACTOR = 0.75
IN_FLIGHT_POLL_S = 0.01


class LimiterCancelled(Exception):
    """``acquire`` gave up because the stop event was set."""


Clock = Callable[[], float]
Sleeper = Callable[[float, "threading.Event | None"], bool]


def _real_sleep(seconds: float, stop: threading.Event | None) -> bool:
    """Sleep ``seconds``; return True when ``stop`` was set meanwhile."""
    if stop is not None:
        return stop.wait(seconds)
    time.sleep(seconds)
    return False


class Slot:
    """A tracked grant: in flight until :meth:`SlidingWindowLimiter.release`."""

    __slots__ = ("granted_at", "released")

    def __init__(self, granted_at: float) -> None:
        self.granted_at = granted_at
        self.released = False


class SlidingWindowLimiter:
    """At most ``requests`` in any ``per_seconds`` window, as the server can see them.

    ``acquire()`` blocks until a request may be sent; ``slot()`` does the same and tracks
    the request until it is answered (see the module docstring). ``throttled(pause_s)``
    tells the limiter the server answered 429; ``succeeded()`` lets the allowance grow
    back. All methods are thread-safe.
    """

    def __init__(
        self,
        requests: int,
        per_seconds: float,
        *,
        margin: float = DEFAULT_MARGIN,
        min_margin_s: float = DEFAULT_MIN_MARGIN_S,
        adaptive: bool = True,
        smoothing: float = 0.5,
        clock: Clock = time.monotonic,
        sleep: Sleeper = _real_sleep,
    ) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs at least 1 request per positive window")
        self.requests = requests
        self.per_seconds = per_seconds
        self.window_s = per_seconds + max(per_seconds * margin, min_margin_s)
        self.adaptive = adaptive
        self.smoothing = smoothing
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Finished requests as (ended_at, granted_at), a heap by end time; a request's place
        # in the window is computed when needed, with the fastest round trip known *then*
        # (early round trips are slow: connections are being opened).
        self._ended: list[tuple[float, float]] = []
        self._in_flight = 0
        self._fastest: float | None = None
        self._allowance = requests
        self._next_slot = -math.inf
        self._paused_until = -math.inf
        self._next_decrease_at = -math.inf
        self._successes = 0
        self.decreases = 0

    @classmethod
    def from_spec(cls, spec: RateSpec | str, **kwargs: object) -> SlidingWindowLimiter:
        """A limiter for ``"40/10s"`` or a parsed :class:`RateSpec`."""
        rate = parse_rate(spec) if isinstance(spec, str) else spec
        return cls(rate.requests, rate.per_seconds, **kwargs)  # type: ignore[arg-type]

    @property
    def allowance(self) -> int:
        """Requests currently allowed per window (the configured limit, or less after 429s)."""
        return self._allowance

    @property
    def effective_rate(self) -> float:
        """The current pace in requests per second."""
        return self._allowance / self.window_s

    @property
    def fastest_round_trip(self) -> float | None:
        """The fastest answered request so far, in seconds (None before the first)."""
        return self._fastest

    # -- granting ----------------------------------------------------------------------

    def _delay(self, now: float) -> float:
        """Seconds until a grant is possible (0 = now). Caller holds the lock."""
        if now < self._paused_until:
            return self._paused_until - now
        ended = self._ended
        horizon = now - self.window_s
        while ended and self._place(ended[0]) <= horizon:
            heapq.heappop(ended)
        # Requests behind the earliest-ended one count until it leaves (they end later,
        # so their places are at least as late, save for the max() with the grant time).
        if self._in_flight + len(ended) >= self._allowance:
            if ended:
                return max(self._place(ended[0]) - horizon, 1e-6)
            return IN_FLIGHT_POLL_S  # every place is held by a request still in flight
        return max(0.0, self._next_slot - now)

    def _place(self, entry: tuple[float, float]) -> float:
        """Where a finished request sits in the window: its end minus the fastest round
        trip (its own delay beyond the fastest), never before its grant."""
        ended_at, granted_at = entry
        return max(granted_at, ended_at - (self._fastest or 0.0))

    def _grant(self, now: float) -> None:
        spacing = self.smoothing * self.window_s / self._allowance
        if now - self._next_slot < spacing:
            # Keep the schedule: a grant that woke up a little late does not push the
            # next ones back (the window still bounds every W-second span).
            self._next_slot += spacing
        else:
            self._next_slot = now + spacing

    def _wait_for_grant(self, stop: threading.Event | None, tracked: bool) -> tuple[float, float]:
        waited = 0.0
        while True:
            if stop is not None and stop.is_set():
                raise LimiterCancelled()
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0.0:
                    self._grant(now)
                    if tracked:
                        self._in_flight += 1
                    else:
                        heapq.heappush(self._ended, (now, now))
                    return now, waited
            waited += delay
            if self._sleep(delay, stop):
                raise LimiterCancelled()

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Block until a request may be sent (placed at the grant time); return seconds waited.

        Raises :class:`LimiterCancelled` when ``stop`` is set before a grant.
        """
        return self._wait_for_grant(stop, tracked=False)[1]

    def acquire_slot(self, stop: threading.Event | None = None) -> Slot:
        """Block until a request may be sent; it stays in flight until :meth:`release`."""
        granted_at, _ = self._wait_for_grant(stop, tracked=True)
        return Slot(granted_at)

    def release(self, slot: Slot, *, answered: bool = True) -> None:
        """The request of ``slot`` ended (``answered``: a response came back, so its
        round trip counts toward the fastest one seen)."""
        with self._lock:
            if slot.released:
                return
            slot.released = True
            now = self._clock()
            round_trip = max(now - slot.granted_at, 0.0)
            if answered and (self._fastest is None or round_trip < self._fastest):
                self._fastest = round_trip
            self._in_flight -= 1
            heapq.heappush(self._ended, (now, slot.granted_at))

    @contextmanager
    def slot(self, stop: threading.Event | None = None) -> Iterator[Slot]:
        """``with limiter.slot(stop): send()``: a tracked grant released on exit."""
        granted = self.acquire_slot(stop)
        answered = False
        try:
            yield granted
            answered = True
        finally:
            self.release(granted, answered=answered)

    # -- feedback from the server ------------------------------------------------------

    def throttled(self, pause_s: float) -> None:
        """The server answered 429: pause everyone ``pause_s`` and slow down."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + max(pause_s, 0.0))
            self._successes = 0
            if self.adaptive and now >= self._next_decrease_at:
                # One decrease per window: the 429s of requests already in flight were all
                # caused by the old pace.
                self._allowance = max(1, math.floor(self._allowance * DECREASE_FACTOR))
                self._next_decrease_at = now + max(pause_s, 0.0) + self.window_s
                self.decreases += 1

    def succeeded(self) -> None:
        """A request went through: after a window's worth of them, allow one more."""
        if self._allowance >= self.requests:
            return
        with self._lock:
            self._successes += 1
            if self._successes >= self._allowance and self._allowance < self.requests:
                self._allowance += 1
                self._successes = 0
