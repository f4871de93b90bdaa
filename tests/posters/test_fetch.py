"""One poster download over a real socket: what is retried, rejected, counted and cut short.

(Which failures are retried at all is the shared transport's; see
``tests/transport/test_clients.py``. These are the poster-specific rules on top.)
"""

from __future__ import annotations

import threading

import pytest

from reelset.posters.fetch import (
    Fetched,
    FetchPolicy,
    PosterFetchError,
    fetch_poster,
    poster_retry_policy,
)
from reelset.transport.limiter import SlidingWindowLimiter
from reelset.transport.session import make_session
from tests.transport.scripted_server import Reply, scripted_server

JPEG = b"\xff\xd8\xff" + b"x" * 20_000
OK = Reply(body=JPEG, headers={"Content-Type": "image/jpeg"})


def policy(
    retries: int = 3, timeout_s: float = 2.0, max_bytes: int = 100_000, backoff_s: float = 0.01
) -> FetchPolicy:
    return FetchPolicy(timeout_s, max_bytes, poster_retry_policy(retries, backoff_s, 2 * backoff_s))


def fetch(
    url: str,
    fetch_policy: FetchPolicy | None = None,
    *,
    limiter: SlidingWindowLimiter | None = None,
    stop: threading.Event | None = None,
) -> Fetched:
    session = make_session(1)
    return fetch_poster(
        session, url + "/t/p/w500/a.jpg", fetch_policy or policy(), limiter=limiter, stop=stop
    )


def test_attempts_and_retries_are_counted() -> None:
    retries: list[int] = []
    with scripted_server(Reply(503), Reply(reset=True), default=OK) as script:
        fetched = fetch_poster(
            make_session(1), script.url + "/a.jpg", policy(), on_retry=lambda: retries.append(1)
        )
    assert (fetched.data, fetched.attempts, fetched.content_type) == (JPEG, 3, "image/jpeg")
    assert len(retries) == 2 and len(script.seen) == 3


def test_a_failure_that_stays_names_its_attempts() -> None:
    with scripted_server(default=Reply(503)) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url, policy(retries=2))
    error = info.value
    assert (error.reason, error.detail) == ("http_503", "HTTP 503 (after 3 attempts)")
    assert (error.attempts, error.http_status, error.rejected) == (3, 503, False)


def test_a_permanent_failure_is_tried_once() -> None:
    with scripted_server(default=Reply(404)) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url)
    assert (info.value.reason, info.value.detail, info.value.attempts) == (
        "http_404",
        "HTTP 404",
        1,
    )
    assert len(script.seen) == 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "while-streaming"])
def test_too_large_is_rejected_at_once(declared: bool) -> None:
    big = Reply(body=JPEG, length=declared)
    with scripted_server(default=big) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url, policy(max_bytes=10_000))
    assert info.value.reason == "too_large" and info.value.rejected
    assert ("Content-Length" in info.value.detail) == declared
    assert info.value.attempts == 1 and len(script.seen) == 1


def test_the_deadline_cuts_a_dripping_body_and_is_retried() -> None:
    drip = Reply(body=JPEG, drip_s=0.05)  # 20 chunks: 1 s, more than 3 x 0.2 s
    with scripted_server(drip, default=OK) as script:
        fetched = fetch_poster(make_session(1), script.url + "/a.jpg", policy(timeout_s=0.2))
    assert fetched.attempts == 2 and len(script.seen) == 2
    with scripted_server(default=drip) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url, policy(retries=0, timeout_s=0.2))
    assert info.value.reason == "timeout"
    assert info.value.detail == "download took longer than 0.6s (after 1 attempt)"


def test_a_429_pauses_the_limiter_for_retry_after() -> None:
    limiter = SlidingWindowLimiter(1000, 1.0)
    throttled = Reply(429, headers={"Retry-After": "1"})
    with scripted_server(throttled, default=OK) as script:
        fetched = fetch_poster(make_session(1), script.url + "/a.jpg", policy(), limiter=limiter)
    assert fetched.attempts == 2 and script.gaps()[0] >= 0.95
    assert limiter.allowance < 1000  # and the pace dropped


def test_a_stop_ends_the_download_as_cancelled() -> None:
    stop = threading.Event()
    stop.set()
    limiter = SlidingWindowLimiter(1000, 1.0)
    with scripted_server(default=OK) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url, limiter=limiter, stop=stop)
    assert (info.value.reason, info.value.attempts, len(script.seen)) == ("cancelled", 0, 0)

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with scripted_server(default=Reply(503)) as script, pytest.raises(PosterFetchError) as info:
        fetch(script.url, policy(backoff_s=30), stop=stop)  # stopped while waiting to retry
    assert (info.value.reason, info.value.attempts, len(script.seen)) == ("cancelled", 1, 1)
