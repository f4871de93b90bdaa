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

**A stricter server.** The limiter learns the server's limit from its answers: the
transport reports each tracked request's status with
:meth:`~SlidingWindowLimiter.release`. A 429 does not say whether the pace was too high:
a proxy, a flaky gateway or the server itself may answer 429 now and then at any pace
(a plain AIMD limiter then decreases again and again and collapses to a few percent of
what the server allows). So the limiter compares with what the server *accepted*:

- every answer other than 429 counts as accepted; the most accepted answers within one
  window over the last :data:`PROVEN_MEMORY_WINDOWS` windows is the *proven* pace, a
  level the server evidently allows;
- a 429 above the proven pace brings the allowance back to it (by a quarter at most per
  step); at the proven pace it costs one request; below it nothing, unless a third or
  more of the last window's answers were 429s while we used the whole allowance (then
  one request per step). A step is a
  "generation": 429s of requests granted before the last decrease were caused by the pace
  before it and change nothing;
- a *storm*, at least :data:`STORM_MIN_REFUSED` 429s and no fewer than the accepted
  answers in a window although we sent at least the proven pace, means the server is
  refusing for real:
  the allowance drops to what it accepted and every worker pauses for the
  ``Retry-After``. A storm soon after another one lowers the proven pace toward that
  level. Otherwise a 429 pauses only its own request (its retry waits the
  ``Retry-After``, see :mod:`reelset.transport.retry`);
- the allowance climbs back fast below the proven pace (one request per
  ``allowance / FAST_GROWTH`` successes) and probes beyond it slowly (one request per
  window's worth of successes), up to the configured limit;
- 5xx answers count as accepted (the server took the request) but neither lower the pace
  nor raise it: an unwell server is retried with backoff by the request that met it.

Callers that cannot say which request was refused use :meth:`~SlidingWindowLimiter.throttled`
(every worker pauses, the allowance drops by a quarter at most once per window) and
:meth:`~SlidingWindowLimiter.succeeded`.

Untracked grants (:meth:`acquire`) take their place at the grant time. Time and sleeping are
injectable, so the tests use a fake clock (no timing thresholds).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reelset.transport.ratespec import RateSpec, parse_rate

DEFAULT_MARGIN = 0.01
DEFAULT_MIN_MARGIN_S = 0.01
DECREASE_FACTOR = 0.75
"""One step down keeps at least this share of the allowance (and of the proven pace)."""
STORM_MIN_REFUSED = 3
"""429s within one window (and no fewer than the accepted answers) that make a storm."""
FAST_GROWTH = 4
"""Below the proven rate the allowance grows this many requests per window of successes."""
PROVEN_MEMORY_WINDOWS = 30
"""How many windows back the proven rate (most accepted answers in one window) looks."""
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

    ``acquire()`` blocks until a request may be sent; ``slot()`` / ``acquire_slot()`` do
    the same and track the request until ``release(slot, status=...)``, which also tells
    the limiter how the server answered (see the module docstring). For untracked requests
    ``throttled(pause_s)`` reports a 429 and ``succeeded()`` an accepted request. All
    methods are thread-safe.
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
        self._decreased_at = -math.inf
        self._storm_at = -math.inf
        self._successes = 0
        # Answer times in the last window: accepted (any status but 429) and refused (429).
        self._accepted: deque[float] = deque()
        self._refused: deque[float] = deque()
        # (time, accepted answers in the window then), decreasing counts: the sliding
        # maximum over PROVEN_MEMORY_WINDOWS windows is the first entry.
        self._peaks: deque[tuple[float, int]] = deque()
        self.decreases = 0
        self.storms = 0

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
    def proven(self) -> int:
        """The most answers the server accepted within one window, over the last
        :data:`PROVEN_MEMORY_WINDOWS` windows (0 before any)."""
        with self._lock:
            return self._proven_at(self._clock())

    @property
    def fastest_round_trip(self) -> float | None:
        """The fastest answered request so far, in seconds (None before the first)."""
        return self._fastest

    # -- granting ----------------------------------------------------------------------

    def _occupied(self, now: float) -> int:
        """Requests holding a place in the window now (in flight or recently ended).
        Caller holds the lock."""
        ended = self._ended
        horizon = now - self.window_s
        while ended and self._place(ended[0]) <= horizon:
            heapq.heappop(ended)
        # Requests behind the earliest-ended one count until it leaves (they end later,
        # so their places are at least as late, save for the max() with the grant time).
        return self._in_flight + len(ended)

    def _delay(self, now: float) -> float:
        """Seconds until a grant is possible (0 = now). Caller holds the lock."""
        if now < self._paused_until:
            return self._paused_until - now
        if self._occupied(now) >= self._allowance:
            if self._ended:
                return max(self._place(self._ended[0]) - (now - self.window_s), 1e-6)
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

    def release(
        self,
        slot: Slot,
        *,
        answered: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The request of ``slot`` ended (``answered``: a response came back, so its
        round trip counts toward the fastest one seen).

        ``status`` is the answer's HTTP status, the server's word on the pace (see the
        module docstring); ``retry_after`` the seconds a 429 asked to wait.
        """
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
            if not answered or status is None:
                return
            if status == 429:
                self._refused_locked(now, slot.granted_at, retry_after)
            else:
                self._accepted_locked(now, grow=status < 500)

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

    def _trim(self, now: float) -> None:
        """Forget answers older than a window. Caller holds the lock."""
        horizon = now - self.window_s
        for answers in (self._accepted, self._refused):
            while answers and answers[0] <= horizon:
                answers.popleft()

    def _proven_at(self, now: float) -> int:
        """The proven rate (see :attr:`proven`). Caller holds the lock."""
        horizon = now - self.window_s * PROVEN_MEMORY_WINDOWS
        peaks = self._peaks
        while peaks and peaks[0][0] <= horizon:
            peaks.popleft()
        return peaks[0][1] if peaks else 0

    def _accepted_locked(self, now: float, *, grow: bool) -> None:
        """An answer other than 429 (``grow``: one that lets the pace grow)."""
        self._trim(now)
        self._accepted.append(now)
        count = len(self._accepted)
        while self._peaks and self._peaks[-1][1] <= count:
            self._peaks.pop()
        self._peaks.append((now, count))
        if not grow or self._allowance >= self.requests:
            return
        self._successes += 1
        if self._allowance < self._proven_at(now):
            needed = math.ceil(self._allowance / FAST_GROWTH)  # back to a known-good pace
        else:
            needed = self._allowance  # probing: one more per window of successes
        if self._successes >= needed:
            self._allowance += 1
            self._successes = 0

    def _refused_locked(self, now: float, granted_at: float, retry_after: float | None) -> None:
        """A 429 for a request granted at ``granted_at``. Caller holds the lock."""
        self._trim(now)
        self._refused.append(now)
        self._successes = 0
        accepted, refused = len(self._accepted), len(self._refused)
        several = refused >= STORM_MIN_REFUSED
        proven = self._proven_at(now)
        occupied = self._occupied(now)
        # A storm: most answers of the last window are 429s although we sent at least as
        # many requests as the server is known to accept (429s among a few requests, as
        # when only retries are left, are no storm: the pace was not what was refused).
        if (
            several
            and occupied >= proven
            and refused >= accepted
            and now >= self._storm_at + self.window_s
        ):
            self._storm_locked(now, accepted, retry_after)
            return
        if not self.adaptive or granted_at < self._decreased_at:
            return  # sent at the pace before the last decrease: that pace is gone already
        # One 429 proves little (a proxy's, or a stray one, looks the same): above the
        # proven pace it means "back to it" (by a quarter at most); at the proven pace, or
        # while a third of the answers are 429s at the full allowance, one request less;
        # else nothing.
        allowance = self._allowance
        pressed = several and occupied >= allowance and refused * 3 >= accepted + refused
        if allowance > proven:
            target = max(proven, math.floor(allowance * DECREASE_FACTOR))
        elif allowance == proven or pressed:
            target = allowance - 1
        else:
            return
        self._allowance = max(1, min(allowance - 1, target))
        self._decreased_at = now
        self.decreases += 1

    def _storm_locked(self, now: float, accepted: int, retry_after: float | None) -> None:
        """Most answers of the last window were 429s: the server is refusing for real.

        Every worker waits the ``Retry-After``, and the allowance drops to what the server
        accepted in the window (whichever request's 429 this is: the level is absolute).
        A storm soon after another one means the proven pace is gone (a stricter limit,
        another client on the key): it drops toward the same level, by a quarter at most
        per storm (a storm among a few stragglers must not erase it). Caller holds the lock.
        """
        repeated = now < self._storm_at + self.window_s * PROVEN_MEMORY_WINDOWS
        self.storms += 1
        self._storm_at = now
        if retry_after is not None:
            self._paused_until = max(self._paused_until, now + max(retry_after, 0.0))
        if repeated:
            proven = max(accepted, math.floor(self._proven_at(now) * DECREASE_FACTOR))
            self._peaks.clear()
            self._peaks.append((now, proven))
        if self.adaptive and self._allowance > max(accepted, 1):
            self._allowance = max(accepted, 1)
            self._decreased_at = now
            self.decreases += 1

    def throttled(self, pause_s: float) -> None:
        """The server answered 429 to a request not tracked by a slot: pause everyone
        ``pause_s`` and slow down by a quarter (at most once per window)."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            self._refused.append(now)
            self._paused_until = max(self._paused_until, now + max(pause_s, 0.0))
            self._successes = 0
            if self.adaptive and now >= self._next_decrease_at:
                # One decrease per window: the 429s of requests already in flight were all
                # caused by the old pace.
                self._allowance = max(1, math.floor(self._allowance * DECREASE_FACTOR))
                self._next_decrease_at = now + max(pause_s, 0.0) + self.window_s
                self._decreased_at = now
                self.decreases += 1

    def succeeded(self) -> None:
        """A request not tracked by a slot went through: it counts as accepted and lets
        the allowance grow (see the module docstring)."""
        with self._lock:
            self._accepted_locked(self._clock(), grow=True)
