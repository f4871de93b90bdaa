"""The one retry behaviour: what is worth another attempt, and how long to wait for it.

TMDB calls, poster downloads and IMDb dataset downloads all decide with
:func:`is_retryable` and retry with :func:`retrying`:

- retryable: HTTP 408, 425, 429 and 5xx; connection errors (refused, reset, DNS, TLS),
  timeouts, bodies cut off or not decodable, and bodies that do not parse (readers raise
  :class:`~reelset.transport.errors.TransientError` for those); nothing else;
- the wait before a retry is the server's ``Retry-After`` when it sent one (at most
  :data:`MAX_RETRY_AFTER_S`), else exponential backoff with jitter; a 429 under a rate
  limiter without ``Retry-After`` is retried when the limiter (whose pace it lowered)
  grants the next request;
- a stop event cuts any wait short (:class:`~reelset.transport.errors.Cancelled`).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception

from reelset.transport.errors import (
    BAD_URL_EXCEPTIONS,
    Cancelled,
    ClientError,
    FetchError,
    NotFoundError,
    RetryableStatusError,
    ThrottledError,
    TransientError,
    describe_exception,
)

MAX_RETRY_AFTER_S = 120.0
"""Longest ``Retry-After`` honoured as given; a longer one is cut to this."""

MAX_THROTTLE_RETRIES = 100
"""429s one call may receive before it fails, by default (they do not use max_retries)."""

_RETRYABLE_STATUSES = frozenset({408, 425, 429})

_RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,  # refused, reset, DNS, TLS, connect timeouts, stalls mid-body
    requests.Timeout,  # no answer within the read timeout
    requests.exceptions.ChunkedEncodingError,  # the body was cut off
    requests.exceptions.ContentDecodingError,  # the body does not decode (cut off or damaged)
)


# -- classification --------------------------------------------------------------------


def is_retryable(failure: int | BaseException) -> bool:
    """Whether a failure is worth another attempt: the one answer for every download.

    ``failure`` is an HTTP status code or an exception. Retryable: 408, 425, 429 and 5xx;
    requests' connection errors, timeouts and cut-off or undecodable bodies; a
    :class:`FetchError` that is ``transient``. Everything else is not (other statuses, too
    many redirects, invalid URLs, refused bodies, any other exception).
    """
    if isinstance(failure, int):
        return failure in _RETRYABLE_STATUSES or 500 <= failure <= 599
    if isinstance(failure, FetchError):
        return failure.transient
    return isinstance(failure, _RETRYABLE_EXCEPTIONS)


def status_error(
    status: int, message: str, *, url: str = "", retry_after: float | None = None
) -> FetchError:
    """The exception for an HTTP answer that is not the one wanted (reason ``http_<status>``).

    404 -> :class:`NotFoundError`; 429 -> :class:`ThrottledError`; other retryable
    statuses -> :class:`RetryableStatusError`; anything else -> :class:`ClientError`.
    """
    reason = f"http_{status}"
    if status == 404:
        return NotFoundError(message, http_status=status, url=url, reason=reason)
    if not is_retryable(status):
        return ClientError(message, http_status=status, url=url, reason=reason)
    cls = ThrottledError if status == 429 else RetryableStatusError
    return cls(message, http_status=status, url=url, reason=reason, retry_after=retry_after)


def request_failure(
    exc: requests.RequestException,
    message: str | None = None,
    *,
    url: str = "",
    http_status: int | None = None,
) -> FetchError:
    """The :class:`FetchError` for an exception raised by requests (never its text).

    Transient when :func:`is_retryable` says so. ``message`` defaults to
    :func:`describe_exception`; ``reason`` is ``timeout``, ``connection``, ``incomplete``,
    ``bad_encoding``, ``redirects``, ``bad_url`` or ``request``.
    """
    cls = TransientError if is_retryable(exc) else FetchError
    text = message if message is not None else describe_exception(exc)
    return cls(text, url=url, http_status=http_status, reason=_exception_reason(exc))


def _exception_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "incomplete"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "bad_encoding"
    if isinstance(exc, requests.TooManyRedirects):
        return "redirects"
    if isinstance(exc, BAD_URL_EXCEPTIONS):
        return "bad_url"
    if isinstance(exc, requests.ConnectionError):
        return "connection"
    return "request"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None.

    Negative waits become 0, longer ones than :data:`MAX_RETRY_AFTER_S` are cut to it.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (now if now is not None else time.time())
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


# -- the policy and the retrying loop -------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry transient failures.

    ``max_throttle_retries`` gives 429s a budget of their own (a rate limiter slows every
    worker down after one, so a few are expected); ``None`` counts them as ordinary retries.
    """

    max_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_throttle_retries: int | None = MAX_THROTTLE_RETRIES

    def backoff_s(self, failures: int) -> float:
        """The wait after the ``failures``-th failure: exponential, capped, plus jitter."""
        exponent = min(max(failures - 1, 0), 30)
        initial = self.backoff_initial_s
        return min(self.backoff_max_s, initial * 2**exponent) + random.uniform(0, initial)


class _Attempts:
    """One call's tenacity stop and wait: counts its failures (429s apart when budgeted)."""

    def __init__(self, policy: RetryPolicy, *, limited: bool) -> None:
        self.policy = policy
        self.limited = limited
        self.failures = 0
        self.throttled = 0
        self._counted = 0

    def _count(self, state: RetryCallState) -> BaseException | None:
        # tenacity asks wait and stop after each failed attempt (in an order that changed
        # between versions); count each attempt once, whichever asks first.
        failure = _failure(state)
        if state.attempt_number > self._counted:
            self._counted = state.attempt_number
            if self._own_budget(failure):
                self.throttled += 1
            else:
                self.failures += 1
        return failure

    def _own_budget(self, failure: BaseException | None) -> bool:
        return isinstance(failure, ThrottledError) and self.policy.max_throttle_retries is not None

    def stop(self, state: RetryCallState) -> bool:
        failure = self._count(state)
        if self._own_budget(failure):
            return self.throttled > (self.policy.max_throttle_retries or 0)
        return self.failures > self.policy.max_retries

    def wait(self, state: RetryCallState) -> float:
        failure = self._count(state)
        if isinstance(failure, ThrottledError) and self.limited:
            # The refused request waits what the server asked; the limiter paces the rest
            # (and pauses every worker in a storm of 429s).
            return min(failure.retry_after or 0.0, MAX_RETRY_AFTER_S)
        if isinstance(failure, FetchError) and failure.retry_after is not None:
            return min(failure.retry_after, MAX_RETRY_AFTER_S)
        return self.policy.backoff_s(self.failures)


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def retrying(
    policy: RetryPolicy,
    *,
    stop: threading.Event | None = None,
    limited: bool = False,
    on_retry: Callable[[BaseException], None] | None = None,
) -> Retrying:
    """The tenacity ``Retrying`` for one call: ``retrying(policy)(fn, *args)``.

    Calls ``fn`` again while it raises what :func:`is_retryable` accepts, at most
    ``policy.max_retries`` times (429s: ``max_throttle_retries`` when set), then re-raises
    the last failure; anything not retryable is re-raised at once. Waits as the module
    docstring says; ``limited`` means a rate limiter paces the retries of 429s (no
    backoff of their own). Waiting ends early with :class:`Cancelled` when ``stop`` is
    set. ``on_retry`` is called with each failure about to be retried. Make one per call:
    it counts attempts.
    """
    attempts = _Attempts(policy, limited=limited)
    event = stop if stop is not None else threading.Event()

    def sleep(seconds: float) -> None:
        if event.wait(seconds):
            raise Cancelled("stopped while waiting to retry")

    def before_sleep(state: RetryCallState) -> None:
        failure = _failure(state)
        if on_retry is not None and failure is not None:
            on_retry(failure)

    return Retrying(
        retry=retry_if_exception(is_retryable),
        stop=attempts.stop,
        wait=attempts.wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
