"""The shared limiter, on a fake clock: N in any window, jitter, pauses, thread safety."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import threading
from typing import Any

import pytest

from reelset.sandbox.rate_limiter import AdmissionLimiter
from reelset.transport.limiter import (
    FAST_GROWTH,
    IN_FLIGHT_POLL_S,
    LimiterCancelled,
    SlidingWindowLimiter,
)
from reelset.transport.ratespec import RateSpec


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


# -- learning the server's limit from its answers (release with a status) -----------------


def answer(
    lim: SlidingWindowLimiter,
    clock: FakeClock,
    status: int,
    *,
    retry_after: float | None = None,
    gap: float = 0.0,
) -> None:
    """One tracked request answered with ``status`` after 10 ms, then ``gap`` seconds."""
    slot = lim.acquire_slot()
    clock.advance(0.01)
    lim.release(slot, status=status, retry_after=retry_after)
    clock.advance(gap)


def proven(configured: int, accepted: int) -> tuple[FakeClock, SlidingWindowLimiter]:
    """A limiter configured ``configured``/1s that has seen ``accepted`` answers of 200."""
    clock = FakeClock()
    lim = limiter(clock, configured, 1.0, smoothing=0.0)
    for _ in range(accepted):
        answer(lim, clock, 200)
    return clock, lim


def burst(
    lim: SlidingWindowLimiter, clock: FakeClock, size: int, accepted: int, **release: Any
) -> None:
    """``size`` requests sent at once; the first ``accepted`` get 200, the rest 429."""
    slots = [lim.acquire_slot() for _ in range(size)]
    clock.advance(0.01)
    for index, slot in enumerate(slots):
        lim.release(slot, status=200 if index < accepted else 429, **release)


def test_429s_above_the_proven_pace_bring_the_allowance_back_to_it() -> None:
    clock, lim = proven(50, 10)
    assert lim.proven == 10 and lim.allowance == 50
    steps = []
    for _ in range(5):
        answer(lim, clock, 429)
        steps.append(lim.allowance)
    assert steps == [37, 27, 20, 15, 11]  # a quarter at most per step
    assert lim.decreases == 5 and lim.storms == 0

    clock, lim = proven(12, 10)
    answer(lim, clock, 429)
    assert lim.allowance == 10  # never below the proven pace


def test_a_lone_429_at_the_proven_pace_costs_one_request_below_it_nothing() -> None:
    clock, lim = proven(10, 10)
    clock.advance(lim.window_s)
    answer(lim, clock, 429)
    assert (lim.allowance, lim.proven) == (9, 10)
    clock.advance(lim.window_s)  # that 429 leaves the window: the next one is alone again
    answer(lim, clock, 429)
    assert lim.allowance == 9 and lim.decreases == 1
    # Below the proven pace it climbs back fast: one request per allowance/4 successes.
    for _ in range(math.ceil(9 / FAST_GROWTH)):
        answer(lim, clock, 200)
    assert lim.allowance == 10


def test_a_third_of_429s_at_the_full_allowance_lowers_the_pace_below_the_proven_one() -> None:
    clock, lim = proven(10, 10)
    clock.advance(lim.window_s)
    allowances = []
    for status in (200, 200, 200, 200, 200, 429, 429, 429, 429):
        answer(lim, clock, status)
        allowances.append(lim.allowance)
    # At the proven pace one less (10 -> 9); below it nothing while the allowance is not
    # used up; then four of nine answers refused at the full allowance: one less.
    assert allowances == [10, 10, 10, 10, 10, 9, 9, 9, 8]
    assert lim.storms == 0  # more accepted than refused: no storm

    # The same 429s among a few requests (only retries left, say) change nothing.
    clock.advance(lim.window_s)
    for status in (200, 429, 429, 429, 429):
        answer(lim, clock, status, gap=0.15)
    assert lim.allowance == 8 and lim.storms == 0


def test_429s_of_requests_sent_before_a_decrease_change_nothing() -> None:
    clock, lim = proven(50, 10)
    early = [lim.acquire_slot() for _ in range(3)]
    clock.advance(0.01)
    for slot in early:
        lim.release(slot, status=429, retry_after=1.0)
    assert lim.allowance == 37 and lim.decreases == 1  # one pace, one decrease
    answer(lim, clock, 429)  # sent after the decrease: a new step
    assert lim.allowance == 27 and lim.decreases == 2


def test_a_storm_pauses_everyone_and_drops_to_what_the_server_accepted() -> None:
    clock, lim = proven(50, 0)
    burst(lim, clock, 50, 10, retry_after=2.0)  # the configured 50/1s at once; server: 10
    assert lim.storms == 1
    assert lim.allowance == 10 and lim.proven == 10
    lim.acquire()
    assert clock() == pytest.approx(0.01 + 2.0)  # everyone waited the Retry-After


def test_after_a_storm_the_pace_climbs_back_fast_to_the_proven_one_then_probes() -> None:
    clock, lim = proven(50, 20)
    clock.advance(lim.window_s)
    burst(lim, clock, 20, 5, retry_after=1.0)  # the server refuses most for a moment
    assert (lim.storms, lim.allowance, lim.proven) == (1, 5, 20)
    successes = 0
    while lim.allowance < 20:
        answer(lim, clock, 200)
        successes += 1
    # One request per allowance/4 successes up to the proven 20 (plain AIMD: 5+6+...+19).
    assert successes == sum(math.ceil(a / FAST_GROWTH) for a in range(5, 20))
    assert successes < sum(range(5, 20)) / 3
    for _ in range(19):
        answer(lim, clock, 200)
    assert lim.allowance == 20  # beyond the proven pace: one more per window of successes
    answer(lim, clock, 200)
    assert lim.allowance == 21


def test_a_second_storm_soon_after_lowers_the_proven_pace() -> None:
    clock, lim = proven(50, 20)

    def storm(accepted: int) -> None:
        clock.advance(lim.window_s)
        burst(lim, clock, 20, accepted)

    storm(8)
    assert (lim.storms, lim.allowance, lim.proven) == (1, 8, 20)  # one storm proves little
    while lim.allowance < 20:
        answer(lim, clock, 200)
    storm(3)
    # Another one soon after: the proven pace drops a quarter (not to 3 at once).
    assert (lim.storms, lim.allowance, lim.proven) == (2, 3, 15)


def test_5xx_answers_neither_lower_nor_raise_the_pace() -> None:
    clock, lim = proven(8, 4)
    answer(lim, clock, 429)
    assert lim.allowance == 6
    for status in (500, 502, 503, 504) * 3:
        answer(lim, clock, status, gap=0.2)
    assert lim.allowance == 6 and lim.decreases == 1 and lim.storms == 0
    assert lim.proven < 6  # probing: one more per window (6) of successes, 5xx not among them
    for _ in range(5):
        answer(lim, clock, 200, gap=0.2)
    assert lim.allowance == 6
    answer(lim, clock, 200, gap=0.2)
    assert lim.allowance == 7


def _simulated_scrape(tracked: bool, seconds: float = 300.0) -> float:
    """Requests a server limited to 10/1s admitted per second, over ``seconds`` of fake
    time, from a client configured 50/1s; 20 % of admitted requests get a stray 429 or
    503 (half each). ``tracked``: the transport's way (slots and statuses), else the
    untracked throttled()/succeeded() calls."""
    clock = FakeClock()
    server = AdmissionLimiter(RateSpec(10, 1.0), clock=clock)
    rng = random.Random(7)
    lim = limiter(clock, 50, 1.0)
    admitted = 0
    while clock() < seconds:
        slot = lim.acquire_slot() if tracked else None
        if slot is None:
            lim.acquire()
        clock.advance(0.01)
        wait = server.try_acquire()
        retry_after: float | None = None
        if wait is not None:
            status, retry_after = 429, float(max(1, math.ceil(wait)))
        else:
            admitted += 1
            draw = rng.random()
            status = 429 if draw < 0.1 else 503 if draw < 0.2 else 200
            retry_after = 1.0 if status == 429 else None
        clock.advance(0.01)
        if slot is not None:
            lim.release(slot, status=status, retry_after=retry_after)
        elif status == 429:
            lim.throttled(retry_after or 0.0)
        elif status == 200:
            lim.succeeded()
    return admitted / clock() / 10


def test_stray_429s_do_not_collapse_the_pace() -> None:
    # The case on a fake clock: the server allows 10/1s, the client is configured
    # 50/1s, and a fifth of the admitted requests fail with a stray 429 or 503.
    assert _simulated_scrape(tracked=True) >= 0.9
    # Without knowing which request was refused, every 429 pauses everyone: far less.
    assert _simulated_scrape(tracked=False) < 0.6
