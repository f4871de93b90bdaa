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
from reelset.posters.verify import VerifiedImage, verify_image
from reelset.sandbox.poster_faults import (
    HTML_ERROR_PAGE,
    decompression_bomb_png,
    tiny_jpeg,
    truncated,
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


def _verify(data: bytes) -> VerifiedImage:
    return verify_image(data, allowed_formats=["JPEG", "PNG"], max_pixels=40_000_000)


PICTURE = tiny_jpeg((10, 120, 200))
CUT = Reply(body=truncated(PICTURE), headers={"Content-Type": "image/jpeg"})
PAGE = Reply(body=HTML_ERROR_PAGE, headers={"Content-Type": "image/jpeg"})
GOOD = Reply(body=PICTURE, headers={"Content-Type": "image/jpeg"})


def verified_fetch(url: str, retries: int = 3) -> Fetched:
    limits = policy(retries, max_bytes=1_000_000)
    return fetch_poster(make_session(1), url + "/a.jpg", limits, verify=_verify)


def test_a_bad_body_is_downloaded_again_like_a_network_error() -> None:
    retries: list[int] = []
    with scripted_server(CUT, PAGE, default=GOOD) as script:
        fetched = fetch_poster(
            make_session(1),
            script.url + "/a.jpg",
            policy(),
            on_retry=lambda: retries.append(1),
            verify=_verify,
        )
    assert (fetched.data, fetched.attempts) == (PICTURE, 3)
    assert fetched.image is not None and (fetched.image.width, fetched.image.height) == (16, 24)
    assert len(retries) == 2 and len(script.seen) == 3


def test_the_same_bad_bytes_twice_are_rejected() -> None:
    with scripted_server(default=CUT) as script, pytest.raises(PosterFetchError) as info:
        verified_fetch(script.url)
    error = info.value
    assert (error.reason, error.rejected, error.attempts) == ("truncated", True, 2)
    assert error.detail.endswith("(served as image/jpeg); the same bytes twice")


def test_bad_bodies_on_every_attempt_are_rejected_after_the_retries() -> None:
    pages = [Reply(body=HTML_ERROR_PAGE + b"<!-- %d -->" % n) for n in range(5)]
    with scripted_server(*pages) as script, pytest.raises(PosterFetchError) as info:
        verified_fetch(script.url, retries=2)
    error = info.value
    assert (error.reason, error.rejected, error.attempts) == ("not_an_image", True, 3)
    assert error.detail == "an HTML page, not an image (after 3 attempts)"


def test_a_final_rejection_is_not_downloaded_again() -> None:
    bomb = Reply(body=decompression_bomb_png(), headers={"Content-Type": "image/png"})
    with scripted_server(default=bomb) as script, pytest.raises(PosterFetchError) as info:
        verified_fetch(script.url)
    assert (info.value.reason, info.value.rejected, info.value.attempts) == (
        "decompression_bomb",
        True,
        1,
    )
    assert len(script.seen) == 1


def test_a_verifier_failure_is_a_failed_download() -> None:
    def crashing(_data: bytes) -> VerifiedImage:
        raise PosterFetchError("verifier_crashed", "the image decoder process died")

    with scripted_server(default=GOOD) as script, pytest.raises(PosterFetchError) as info:
        fetch_poster(make_session(1), script.url + "/a.jpg", policy(), verify=crashing)
    assert (info.value.reason, info.value.rejected, info.value.attempts) == (
        "verifier_crashed",
        False,
        1,
    )
