"""Poster downloads: safe URLs from untrusted ``poster_path`` values, bounded streaming, retries.

URL safety: TMDB poster paths look like ``/kqjL17yufvn9OVLyXYpvtyrFfak.jpg``. A path is
accepted when it is ``/`` followed by exactly one non-empty segment of at most
:data:`MAX_SEGMENT_CHARS` characters, without ``/``, ``\\``, control characters or
whitespace other than plain spaces, and not ``.`` or ``..``. The segment is then
percent-encoded completely (``quote(segment, safe="")``), so ``%2F``, ``?``, ``#`` and
unicode reach the image server as literal name characters, and the finished URL is
checked to still be on the image server's host under its path. Anything else is
rejected (reason ``invalid_path``) without a request.

Downloads stream with a connect/read timeout and an overall deadline per attempt
(:data:`DEADLINE_FACTOR` x ``timeout_s``). A ``Content-Length`` above ``max_bytes`` is
rejected before the body is read; the body is counted while streaming, so a chunked or
lying server is cut off at ``max_bytes`` too. Transient failures (5xx, 408, 429,
connection errors, timeouts, bodies cut short) are retried with tenacity (exponential
backoff with jitter; ``Retry-After`` is honoured up to the backoff cap). Every attempt
passes the politeness limiter first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from reelset.errors import ConfigError
from reelset.transport.http import describe_exception, parse_retry_after
from reelset.transport.limiter import LimiterCancelled, SlidingWindowLimiter

MAX_SEGMENT_CHARS = 255
DEADLINE_FACTOR = 3.0
CHUNK_BYTES = 64 * 1024
_SIZE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class DownloadError(Exception):
    """A poster that could not be had: ``rejected`` (bad content) or failed (network)."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        rejected: bool = False,
        http_status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.rejected = rejected
        self.http_status = http_status
        self.attempts = attempts


class _Transient(Exception):
    """One attempt failed in a way a later attempt may not."""

    def __init__(
        self, reason: str, detail: str, http_status: int | None = None, retry_after: float = 0.0
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and retries of poster downloads (from ``[posters]``)."""

    timeout_s: float = 20.0
    max_bytes: int = 10_000_000
    max_retries: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0


@dataclass(frozen=True)
class Fetched:
    """A downloaded body with how many attempts it took."""

    data: bytes
    attempts: int
    content_type: str


def check_base_url(image_base_url: str) -> str:
    """Validate an image base URL (from the config or from /configuration); end it with /."""
    parts = urlsplit(image_base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"image base URL is not an http(s) URL: {image_base_url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"image base URL must not have a query or fragment: {image_base_url!r}")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_poster_size(size: str) -> str:
    """Validate ``tmdb.poster_size`` (``w500``, ``original``...) as a URL segment."""
    if not size or len(size) > 32 or not set(size) <= _SIZE_CHARS:
        raise ConfigError(f"[tmdb] poster_size: not a TMDB image size: {size!r}")
    return size


def invalid_poster_path(poster_path: str) -> str | None:
    """Why ``poster_path`` is not a plausible single file name, or ``None`` when it is."""
    if not poster_path.startswith("/"):
        return "does not start with '/'"
    segment = poster_path[1:]
    if not segment:
        return "is empty"
    if len(segment) > MAX_SEGMENT_CHARS:
        return f"is {len(segment)} characters long (more than {MAX_SEGMENT_CHARS})"
    if "/" in segment or "\\" in segment:
        return "has more than one path segment"
    if segment in (".", ".."):
        return "is a relative path"
    if any(ord(c) < 0x20 or ord(c) == 0x7F or (c.isspace() and c != " ") for c in segment):
        return "contains control characters"
    return None


def poster_url(image_base_url: str, size: str, poster_path: str) -> str:
    """The URL of a poster, built so that no ``poster_path`` can leave the image server.

    Raises :class:`DownloadError` (``rejected``, reason ``invalid_path``) for a path that
    is not a plausible single file name.
    """
    problem = invalid_poster_path(poster_path)
    if problem:
        raise DownloadError("invalid_path", f"poster_path {problem}", rejected=True)
    base = check_base_url(image_base_url)
    url = f"{base}{check_poster_size(size)}/{quote(poster_path[1:], safe='')}"
    parts, base_parts = urlsplit(url), urlsplit(base)
    if (
        parts.netloc != base_parts.netloc
        or not parts.path.startswith(base_parts.path)
        or parts.query
        or parts.fragment
    ):  # cannot happen with the checks above; kept as the last line of defence
        raise DownloadError("invalid_path", "poster_path escapes the image server", rejected=True)
    return url


def public_url(url: str) -> str:
    """``url`` without any user:password part (what may be stored as ``source_url``)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _read_body(response: requests.Response, policy: FetchPolicy, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise DownloadError(
            "too_large",
            f"Content-Length {int(declared):,} bytes exceeds max_bytes {policy.max_bytes:,}",
            rejected=True,
        )
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > policy.max_bytes:
            raise DownloadError(
                "too_large",
                f"body exceeds max_bytes {policy.max_bytes:,} (stopped reading)",
                rejected=True,
            )
        if time.monotonic() > deadline:
            raise _Transient("timeout", f"download took longer than {deadline_s(policy):g}s")
    return bytes(body)


def deadline_s(policy: FetchPolicy) -> float:
    """The overall time limit of one download attempt, in seconds."""
    return policy.timeout_s * DEADLINE_FACTOR


def _attempt(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    limiter: SlidingWindowLimiter | None,
) -> Fetched:
    deadline = time.monotonic() + deadline_s(policy)
    # requests' exception texts name the URL; describe_exception rebuilds a short message.
    try:
        with session.get(url, stream=True, timeout=(policy.timeout_s, policy.timeout_s)) as resp:
            status = resp.status_code
            retry_after = parse_retry_after(resp.headers.get("Retry-After")) or 0.0
            if status == 429 and limiter is not None:
                limiter.throttled(retry_after or policy.backoff_initial_s)
            if status >= 500 or status in (408, 425, 429):
                raise _Transient(
                    f"http_{status}", f"HTTP {status}", http_status=status, retry_after=retry_after
                )
            if status != 200:
                raise DownloadError(f"http_{status}", f"HTTP {status}", http_status=status)
            data = _read_body(resp, policy, deadline)
            if limiter is not None:
                limiter.succeeded()
            return Fetched(data, 0, resp.headers.get("Content-Type", ""))
    except requests.Timeout as exc:
        raise _Transient("timeout", describe_exception(exc)) from None
    except requests.exceptions.ChunkedEncodingError as exc:
        raise _Transient("incomplete", describe_exception(exc)) from None
    except requests.exceptions.ContentDecodingError:
        raise _Transient("bad_encoding", "the body's Content-Encoding does not decode") from None
    except requests.TooManyRedirects:
        raise DownloadError("redirects", "too many redirects") from None
    except requests.ConnectionError as exc:
        raise _Transient("connection", describe_exception(exc)) from None
    except requests.RequestException as exc:
        raise DownloadError("request", describe_exception(exc)) from None


def fetch_poster(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    *,
    limiter: SlidingWindowLimiter | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> Fetched:
    """Download ``url`` with retries; raises :class:`DownloadError` when it cannot be had."""
    attempts = 0
    base_wait = wait_exponential(
        multiplier=policy.backoff_initial_s, max=policy.backoff_max_s
    ) + wait_random(0, policy.backoff_initial_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, _Transient) else 0.0
        return max(min(hint, policy.backoff_max_s), base_wait(state))

    def sleep(seconds: float) -> None:
        if stop is None:
            time.sleep(seconds)
        elif stop.wait(seconds):
            raise DownloadError("cancelled", "the run is stopping")

    def before_sleep(_state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry()

    def once() -> Fetched:
        nonlocal attempts
        if limiter is not None:
            try:
                limiter.acquire(stop)
            except LimiterCancelled:
                raise DownloadError("cancelled", "the run is stopping") from None
        attempts += 1
        return _attempt(session, url, policy, limiter)

    stop_rule: stop_base = stop_after_attempt(policy.max_retries + 1)
    if stop is not None:
        stop_rule = stop_rule | stop_when_event_set(stop)
    retrying = Retrying(
        stop=stop_rule,
        wait=wait,
        sleep=sleep,
        retry=retry_if_exception_type(_Transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        fetched = retrying(once)
    except _Transient as exc:
        raise DownloadError(
            exc.reason,
            f"{exc.detail} (after {attempts} attempt{'s' if attempts != 1 else ''})",
            http_status=exc.http_status,
            attempts=attempts,
        ) from None
    except DownloadError as exc:
        exc.attempts = attempts
        raise
    return Fetched(fetched.data, attempts, fetched.content_type)
