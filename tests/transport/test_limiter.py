"""The shared limiter, on a fake clock: N in any window, jitter, pauses, thread safety."""

from __future__ import annotations

import bisect
import itertools
import threading

import pytest

from reelset.transport.limiter import (
    IN_FLIGHT_POLL_S,
    LimiterCancelled,
    SlidingWindowLimiter,
)


class FakeClock:
    """A clock that only moves when someone sleeps (to the sleeper's wake-up time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float, stop: threading.Event | None) -> bool:
        with self.lock:
            self.sleeps.append(seconds)
            self.now = max(self.now, self.now + seconds)
        return stop is not None and stop.is_set()

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def limiter(clock: FakeClock, requests: int, per: float, **kw: object) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        requests,
        per,
        clock=clock,
        sleep=clock.sleep,
        **kw,  # type: ignore[arg-type]
    )


def grant_times(lim: SlidingWindowLimiter, clock: FakeClock, count: int) -> list[float]:
    """The (fake) times at which ``count`` consecutive acquires were granted."""
    grants = []
    for _ in range(count):
        lim.acquire()
        grants.append(clock())
    return grants


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(
        bisect.bisect_right(times, t) - bisect.bisect_left(times, t - window + 1e-12) for t in times
    )


def test_n_grants_then_wait_a_whole_window() -> None:
    clock = FakeClock()
    lim = limiter(clock, 3, 1.0, smoothing=0.0)
    grants = grant_times(lim, clock, 7)
    w = lim.window_s
    assert w > 1.0  # the safety margin
    assert grants == pytest.approx([0, 0, 0, w, w, w, 2 * w])


def test_smoothing_spreads_grants_without_losing_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, 10, 1.0, smoothing=1.0)
    grants = grant_times(lim, clock, 30)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) == pytest.approx(lim.window_s / 10, abs=1e-5)
    assert max_in_window(grants, 1.0) <= 10
    assert grants[-1] == pytest.approx(29 * lim.window_s / 10, abs=1e-5)


def test_thread_safe_n_in_any_window() -> None:
    clock = FakeClock()
    lim = limiter(clock, 5, 1.0)
    grants: list[float] = []
    grants_lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            slot = lim.acquire_slot()
            with grants_lock:
                grants.append(slot.granted_at)
            lim.release(slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 200
    assert max_in_window(grants, lim.window_s) <= 5


def test_requests_in_flight_hold_their_place() -> None:
    clock = FakeClock()
    lim = limiter(clock, 2, 1.0, smoothing=0.0)
    lim.acquire_slot()
    lim.acquire_slot()
    clock.advance(5.0)  # long after the window: both are still unanswered
    stop = threading.Event()

    def sleep_then_stop(seconds: float, _stop: threading.Event | None) -> bool:
        clock.sleeps.append(seconds)
        stop.set()
        return True

    lim._sleep = sleep_then_stop
    with pytest.raises(LimiterCancelled):
        lim.acquire(stop)
    assert clock.sleeps == [IN_FLIGHT_POLL_S]


def test_a_delayed_answer_moves_its_place_by_the_delay() -> None:
    clock = FakeClock()
    lim = limiter(clock, 2, 1.0, smoothing=0.0)
    fast = lim.acquire_slot()
    slow = lim.acquire_slot()
    clock.advance(0.05)
    lim.release(fast)  # fastest round trip: 0.05 s
    clock.advance(0.25)
    lim.release(slow)  # 0.3 s: 0.25 s slower than the fastest
    assert lim.fastest_round_trip == pytest.approx(0.05)
    lim.acquire()
    # fast sits at 0.0 (no extra delay), slow at 0.25: the third grant waits for fast only,
    # the fourth for slow's place.
    assert clock() == pytest.approx(lim.window_s)
    lim.acquire()
    assert clock() == pytest.approx(0.25 + lim.window_s)


def test_failed_requests_count_from_their_end() -> None:
    clock = FakeClock()
    lim = limiter(clock, 1, 1.0, smoothing=0.0)
    slot = lim.acquire_slot()
    clock.advance(0.4)
    lim.release(slot, answered=False)  # no round trip known: no discount
    lim.acquire()
    assert clock() == pytest.approx(0.4 + lim.window_s)


def test_throttled_pauses_everyone_and_slows_down_then_recovers() -> None:
    clock = FakeClock()
    lim = limiter(clock, 8, 1.0)
    lim.acquire()
    lim.throttled(2.0)
    lim.throttled(2.0)  # more 429s of the same burst: one decrease only
    assert lim.allowance == 6
    assert lim.decreases == 1
    start = clock()
    lim.acquire()
    assert clock() - start == pytest.approx(2.0)
    for _ in range(6):
        lim.succeeded()
    assert lim.allowance == 7
    for _ in range(100):
        lim.succeeded()
    assert lim.allowance == 8


def test_non_adaptive_limiter_keeps_its_pace() -> None:
    clock = FakeClock()
    lim = limiter(clock, 8, 1.0, adaptive=False)
    lim.throttled(0.5)
    assert lim.allowance == 8


def test_stop_cancels_a_waiting_acquire() -> None:
    clock = FakeClock()
    lim = limiter(clock, 1, 1.0)
    lim.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(LimiterCancelled):
        lim.acquire(stop)


def test_from_spec() -> None:
    lim = SlidingWindowLimiter.from_spec("40/10s")
    assert (lim.requests, lim.per_seconds) == (40, 10.0)
    assert 10.0 < lim.window_s <= 10.2
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 1.0)
