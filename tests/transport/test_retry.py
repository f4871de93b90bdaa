"""The one classification (retryable or not) and the one retry loop, tested directly."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from reelset.transport import errors, retry
from tests.transport.scripted_server import Reply, closed_port, scripted_server

RETRYABLE_STATUSES = [408, 425, 429, 500, 501, 502, 503, 504, 599]
PERMANENT_STATUSES = [200, 204, 206, 301, 304, 400, 401, 403, 404, 410, 416, 418, 422, 451]


@pytest.mark.parametrize("status", RETRYABLE_STATUSES)
def test_retryable_statuses(status: int) -> None:
    assert retry.is_retryable(status)
    error = retry.status_error(status, f"HTTP {status}", url="/x", retry_after=2.0)
    assert isinstance(error, errors.RetryableStatusError) and retry.is_retryable(error)
    assert isinstance(error, errors.ThrottledError) == (status == 429)
    assert (error.reason, error.http_status, error.retry_after) == (f"http_{status}", status, 2.0)


@pytest.mark.parametrize("status", PERMANENT_STATUSES)
def test_permanent_statuses(status: int) -> None:
    assert not retry.is_retryable(status)
    error = retry.status_error(status, f"HTTP {status}")
    assert not retry.is_retryable(error) and error.reason == f"http_{status}"
    assert type(error) is (errors.NotFoundError if status == 404 else errors.ClientError)


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError(),
        requests.ConnectTimeout(),
        requests.ReadTimeout(),
        requests.Timeout(),
        requests.exceptions.SSLError(),
        requests.exceptions.ChunkedEncodingError(),
        requests.exceptions.ContentDecodingError(),
        errors.TransientError("cut off"),
        errors.RetryableStatusError("HTTP 503"),
        errors.ThrottledError("HTTP 429"),
    ],
    ids=type,
)
def test_retryable_exceptions(exc: BaseException) -> None:
    assert retry.is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        requests.TooManyRedirects(),
        requests.exceptions.InvalidURL(),
        requests.exceptions.MissingSchema(),
        requests.exceptions.InvalidHeader(),
        requests.RequestException(),
        errors.FetchError("refused"),
        errors.ClientError("HTTP 400"),
        errors.NotFoundError("HTTP 404"),
        errors.Cancelled("stopping"),
        ValueError("not JSON"),
        OSError("disk full"),
        KeyboardInterrupt(),
    ],
    ids=type,
)
def test_permanent_exceptions(exc: BaseException) -> None:
    assert not retry.is_retryable(exc)


def _raised(url: str, **kwargs: object) -> requests.RequestException:
    try:
        requests.get(url, **kwargs)  # type: ignore[arg-type]
    except requests.RequestException as exc:
        return exc
    raise AssertionError(f"{url} did not fail")


def test_real_transport_failures_are_classified_without_their_url() -> None:
    secret = "?api_key=SECRET-0123"
    gzip_garbage = Reply(body=b"this is not gzip", headers={"Content-Encoding": "gzip"})
    with scripted_server(
        Reply(delay_s=1.0),
        Reply(body=b"x" * 5000, cut_after=100),
        gzip_garbage,
        Reply(reset=True),
        default=Reply(302, headers={"Location": "/loop"}),
    ) as script:
        failures = {
            "timeout": _raised(script.url + "/slow" + secret, timeout=0.2),
            "incomplete": _raised(script.url + "/cut" + secret, timeout=5),
            "bad_encoding": _raised(script.url + "/gzip" + secret, timeout=5),
            "connection": _raised(script.url + "/reset" + secret, timeout=5),
            "redirects": _raised(script.url + "/loop" + secret, timeout=5),
        }
    failures["refused"] = _raised(f"http://127.0.0.1:{closed_port()}/x{secret}", timeout=5)
    failures["bad_url"] = _raised("http://" + secret, timeout=5)
    failures["request"] = _raised("http://127.0.0.1:1/x" + secret, timeout=5, headers={"a": "b\n"})
    expected = {
        "timeout": (True, "timeout", "read timed out"),
        "incomplete": (True, "incomplete", "connection closed before the whole response arrived"),
        "bad_encoding": (True, "bad_encoding", "the body's Content-Encoding does not decode"),
        "connection": (True, "connection", "connection reset by peer"),
        "refused": (True, "connection", "connection refused"),
        "redirects": (False, "redirects", "too many redirects"),
        "bad_url": (False, "bad_url", "invalid URL"),
        "request": (False, "request", "transport error (InvalidHeader)"),
    }
    for name, exc in failures.items():
        error = retry.request_failure(exc, url="/x")
        retryable, reason, message = expected[name]
        assert retry.is_retryable(exc) == error.transient == retryable, name
        assert (error.reason, str(error)) == (reason, message), name
        assert "SECRET" not in str(error)
    assert "SECRET" in str(failures["refused"])  # requests' own text does carry it


def test_parse_retry_after() -> None:
    assert retry.parse_retry_after("3") == 3.0
    assert retry.parse_retry_after("0.5") == 0.5
    assert retry.parse_retry_after(None) is None
    assert retry.parse_retry_after("soon") is None
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry.parse_retry_after("99999") == retry.MAX_RETRY_AFTER_S


# -- the retry loop ---------------------------------------------------------------------


class Waits(threading.Event):
    """A stop event that records the waits of the retry loop instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def failing(*failures: BaseException, result: str = "done") -> tuple[list[int], object]:
    """A function raising ``failures`` one per call, then returning ``result``."""
    calls: list[int] = []
    queue = list(failures)

    def fn() -> str:
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return result

    return calls, fn


POLICY = retry.RetryPolicy(max_retries=3, backoff_initial_s=0.1, backoff_max_s=0.5)


def test_transient_failures_are_retried_with_exponential_backoff_and_jitter() -> None:
    stop = Waits()
    seen: list[BaseException] = []
    failures = [errors.TransientError(f"cut {i}") for i in range(3)]
    calls, fn = failing(*failures)
    assert retry.retrying(POLICY, stop=stop, on_retry=seen.append)(fn) == "done"
    assert len(calls) == 4 and seen == failures
    # 0.1, 0.2, 0.4 (cap 0.5), each plus up to 0.1 of jitter.
    for wait, base in zip(stop.waits, [0.1, 0.2, 0.4], strict=True):
        assert base <= wait <= base + 0.1
    first_waits = set()
    for _ in range(20):
        stop = Waits()
        retry.retrying(POLICY, stop=stop)(failing(errors.TransientError("cut"))[1])
        first_waits.add(stop.waits[0])
    assert len(first_waits) > 1  # jittered


def test_backoff_is_capped() -> None:
    policy = retry.RetryPolicy(max_retries=8, backoff_initial_s=0.1, backoff_max_s=0.3)
    stop = Waits()
    retry.retrying(policy, stop=stop)(failing(*[errors.TransientError("x") for _ in range(6)])[1])
    assert all(w <= 0.3 + 0.1 for w in stop.waits) and min(stop.waits[3:]) >= 0.3


def test_giving_up_reraises_the_last_failure() -> None:
    failures = [errors.RetryableStatusError(f"HTTP 50{i}") for i in range(5)]
    calls, fn = failing(*failures)
    with pytest.raises(errors.RetryableStatusError) as info:
        retry.retrying(POLICY, stop=Waits())(fn)
    assert info.value is failures[3] and len(calls) == POLICY.max_retries + 1


@pytest.mark.parametrize(
    "failure", [errors.NotFoundError("HTTP 404"), errors.ClientError("HTTP 400"), ValueError("bug")]
)
def test_permanent_failures_are_not_retried(failure: BaseException) -> None:
    stop = Waits()
    calls, fn = failing(failure)
    with pytest.raises(type(failure)):
        retry.retrying(POLICY, stop=stop)(fn)
    assert len(calls) == 1 and stop.waits == []


def test_retry_after_wins_over_the_backoff_up_to_its_cap() -> None:
    stop = Waits()
    failures = [
        errors.RetryableStatusError("HTTP 503", retry_after=7.0),
        errors.ThrottledError("HTTP 429", retry_after=0.0),
        errors.RetryableStatusError("HTTP 503", retry_after=10_000.0),
    ]
    retry.retrying(POLICY, stop=stop)(failing(*failures)[1])
    assert stop.waits == [7.0, 0.0, retry.MAX_RETRY_AFTER_S]


def test_a_429_under_a_limiter_waits_its_retry_after_not_a_backoff() -> None:
    # The refused request waits what the server asked (the limiter paces everyone else);
    # without a Retry-After it waits for nothing but the limiter.
    stop = Waits()
    failures = [
        errors.ThrottledError("HTTP 429", retry_after=5.0),
        errors.ThrottledError("HTTP 429"),
        errors.TransientError("cut"),
    ]
    retry.retrying(POLICY, stop=stop, limited=True)(failing(*failures)[1])
    assert stop.waits[:2] == [5.0, 0.0] and 0.1 <= stop.waits[2] <= 0.2


def test_429s_have_their_own_budget_unless_the_policy_counts_them() -> None:
    throttled = [errors.ThrottledError("HTTP 429", retry_after=0.0) for _ in range(10)]
    calls, fn = failing(*throttled, errors.TransientError("cut"), errors.TransientError("cut"))
    assert retry.retrying(POLICY, stop=Waits())(fn) == "done"  # 10 429s, 2 other failures
    assert len(calls) == 13

    shared = retry.RetryPolicy(max_retries=3, max_throttle_retries=None)
    calls, fn = failing(*throttled)
    with pytest.raises(errors.ThrottledError):
        retry.retrying(shared, stop=Waits())(fn)
    assert len(calls) == 4

    few = retry.RetryPolicy(max_retries=3, max_throttle_retries=2)
    calls, fn = failing(*throttled)
    with pytest.raises(errors.ThrottledError):
        retry.retrying(few, stop=Waits())(fn)
    assert len(calls) == 3


def test_a_set_stop_event_cancels_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    calls, fn = failing(errors.TransientError("cut"))
    started = time.monotonic()
    with pytest.raises(errors.Cancelled):
        retry.retrying(retry.RetryPolicy(backoff_initial_s=30, backoff_max_s=30), stop=stop)(fn)
    assert len(calls) == 1 and time.monotonic() - started < 5


def test_a_stop_event_set_while_waiting_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    _, fn = failing(errors.TransientError("cut"))
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(errors.Cancelled):
        retry.retrying(retry.RetryPolicy(backoff_initial_s=30, backoff_max_s=30), stop=stop)(fn)
    assert 0.15 < time.monotonic() - started < 5


def test_requests_exceptions_are_retried_as_classified() -> None:
    calls, fn = failing(requests.ConnectionError(), requests.ReadTimeout())
    assert retry.retrying(POLICY, stop=Waits())(fn) == "done" and len(calls) == 3
    calls, fn = failing(requests.TooManyRedirects())
    with pytest.raises(requests.TooManyRedirects):
        retry.retrying(POLICY, stop=Waits())(fn)
    assert len(calls) == 1
