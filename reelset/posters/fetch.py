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
lying server is cut off at ``max_bytes`` too. Failures are classified and retried by the
shared transport (:mod:`reelset.transport.retry`: 408, 425, 429, 5xx, connection errors,
timeouts and bodies cut short are retried with exponential backoff and jitter,
``Retry-After`` is honoured); here a 429 counts as an ordinary retry. Every attempt
passes the politeness limiter first and is counted.

Given a ``verify`` function, :func:`fetch_poster` also verifies each downloaded body
inside the retried attempt. Bytes that fail verification for a reason a new download
can fix (:data:`~reelset.posters.verify.RETRYABLE_REJECTIONS`: ``truncated``,
``not_an_image``, ``corrupt``, as a cache or proxy serves now and then) are a transient
failure (:class:`BadBody`), retried with backoff like a network error. They are rejected
for good when the same bytes (same SHA-256) fail twice, or when the retries run out;
any other rejection (``decompression_bomb``, ``format_not_allowed``, ``too_large``) is
final at once.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from reelset.errors import ConfigError
from reelset.posters.filestore import sha256_hex
from reelset.posters.verify import RETRYABLE_REJECTIONS, PosterRejected, VerifiedImage
from reelset.transport.errors import Cancelled, FetchError, TransientError, bad_redirect, url_path
from reelset.transport.limiter import LimiterCancelled, SlidingWindowLimiter
from reelset.transport.retry import (
    RetryPolicy,
    parse_retry_after,
    request_failure,
    retrying,
    status_error,
)
from reelset.transport.session import get as transport_get

MAX_SEGMENT_CHARS = 255
DEADLINE_FACTOR = 3.0
CHUNK_BYTES = 64 * 1024
# C0 controls, DEL, and whitespace other than a plain space (re's \s is str.isspace()).
_CONTROL_OR_ODD_SPACE = re.compile(r"[\x00-\x1f\x7f]|[^\S ]")
_SIZE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class PosterFetchError(FetchError):
    """A poster that could not be had: ``rejected`` (bad content or path) or failed.

    ``reason`` is the short code stored with the row (``invalid_path``, ``too_large``,
    ``http_404``, ``timeout``...), ``detail`` the rest of the message; ``attempts`` the
    requests made for it.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        rejected: bool = False,
        http_status: int | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(f"{reason}: {detail}", http_status=http_status, reason=reason)
        self.detail = detail
        self.rejected = rejected
        self.attempts = attempts


class BadBody(TransientError):
    """Downloaded bytes that failed verification in a way a new download may fix.

    ``reason`` is the verification's (``truncated``, ``not_an_image``, ``corrupt``).
    """


def poster_retry_policy(
    max_retries: int = 3, backoff_initial_s: float = 0.5, backoff_max_s: float = 10.0
) -> RetryPolicy:
    """The shared retry policy as poster downloads use it: a 429 is an ordinary retry."""
    return RetryPolicy(
        max_retries=max_retries,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=backoff_max_s,
        max_throttle_retries=None,
    )


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and retries of poster downloads (from ``[posters]``)."""

    timeout_s: float = 20.0
    max_bytes: int = 10_000_000
    retry: RetryPolicy = field(default_factory=poster_retry_policy)


@dataclass(frozen=True)
class Fetched:
    """A downloaded body with how many attempts it took (and what verification found)."""

    data: bytes
    attempts: int
    content_type: str
    image: VerifiedImage | None = None


Verify = Callable[[bytes], VerifiedImage]
"""Verifies downloaded bytes: returns what they are or raises
:class:`~reelset.posters.verify.PosterRejected` (or :class:`PosterFetchError`)."""


@functools.lru_cache(maxsize=16)  # one base URL per run, checked for every poster
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
    if _CONTROL_OR_ODD_SPACE.search(segment):
        return "contains control characters"
    return None


def poster_url(image_base_url: str, size: str, poster_path: str) -> str:
    """The URL of a poster, built so that no ``poster_path`` can leave the image server.

    Raises :class:`PosterFetchError` (``rejected``, reason ``invalid_path``) for a path that
    is not a plausible single file name.
    """
    problem = invalid_poster_path(poster_path)
    if problem:
        raise PosterFetchError("invalid_path", f"poster_path {problem}", rejected=True)
    base = check_base_url(image_base_url)
    url = f"{base}{check_poster_size(size)}/{quote(poster_path[1:], safe='')}"
    parts, base_parts = urlsplit(url), urlsplit(base)
    if (
        parts.netloc != base_parts.netloc
        or not parts.path.startswith(base_parts.path)
        or parts.query
        or parts.fragment
    ):  # cannot happen with the checks above; kept as the last line of defence
        raise PosterFetchError(
            "invalid_path", "poster_path escapes the image server", rejected=True
        )
    return url


def public_url(url: str) -> str:
    """``url`` without any user:password part (what may be stored as ``source_url``)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _read_body(response: requests.Response, policy: FetchPolicy, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise PosterFetchError(
            "too_large",
            f"Content-Length {int(declared):,} bytes exceeds max_bytes {policy.max_bytes:,}",
            rejected=True,
        )
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > policy.max_bytes:
            raise PosterFetchError(
                "too_large",
                f"body exceeds max_bytes {policy.max_bytes:,} (stopped reading)",
                rejected=True,
            )
        if time.monotonic() > deadline:
            raise TransientError(
                f"download took longer than {deadline_s(policy):g}s", reason="timeout"
            )
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
    try:
        timeout = (policy.timeout_s, policy.timeout_s)
        with transport_get(session, url, stream=True, timeout=timeout) as resp:
            status = resp.status_code
            if status != 200:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if status == 429 and limiter is not None:
                    initial = policy.retry.backoff_initial_s
                    limiter.throttled(retry_after if retry_after is not None else initial)
                raise status_error(status, f"HTTP {status}", retry_after=retry_after)
            data = _read_body(resp, policy, deadline)
            if limiter is not None:
                limiter.succeeded()
            return Fetched(data, 0, resp.headers.get("Content-Type", ""))
    except requests.RequestException as exc:
        # requests' texts name the URL; request_failure words the failure without it.
        raise request_failure(exc) from None
    except ValueError:  # requests' bare ValueError for a redirect that does not parse
        raise bad_redirect(url_path(url)) from None


def _checked(fetched: Fetched, verify: Verify, failed: set[str]) -> Fetched:
    """``fetched`` with its verified image; a rejection a new download may fix is a
    :class:`BadBody` the first time these bytes fail (``failed`` holds their SHA-256s)."""
    try:
        image = verify(fetched.data)
    except PosterRejected as exc:
        detail = exc.detail
        if fetched.content_type:
            detail += f" (served as {fetched.content_type[:60]})"
        if exc.reason not in RETRYABLE_REJECTIONS:
            raise PosterFetchError(exc.reason, detail, rejected=True) from None
        digest = sha256_hex(fetched.data)
        if digest in failed:
            raise PosterFetchError(
                exc.reason, f"{detail}; the same bytes twice", rejected=True
            ) from None
        failed.add(digest)
        raise BadBody(detail, reason=exc.reason) from None
    return replace(fetched, image=image)


def fetch_poster(
    session: requests.Session,
    url: str,
    policy: FetchPolicy,
    *,
    limiter: SlidingWindowLimiter | None = None,
    stop: threading.Event | None = None,
    on_retry: Callable[[], None] | None = None,
    verify: Verify | None = None,
) -> Fetched:
    """Download ``url`` with retries; raises :class:`PosterFetchError` when it cannot be had.

    A rejection (``too_large``) ends the download at once; failures that stay after the
    retries say how many attempts were made; a set ``stop`` gives reason ``cancelled``.
    With ``verify``, each body is verified within its attempt (see the module docstring)
    and the result carries the :class:`~reelset.posters.verify.VerifiedImage`; bytes
    that fail it twice, or on every attempt, are rejected with the verification's reason.
    """
    attempts = 0
    failed_bodies: set[str] = set()

    def once() -> Fetched:
        nonlocal attempts
        if limiter is not None:
            try:
                limiter.acquire(stop)
            except LimiterCancelled:
                raise Cancelled("stopped while waiting for the rate limiter") from None
        attempts += 1
        fetched = _attempt(session, url, policy, limiter)
        return _checked(fetched, verify, failed_bodies) if verify is not None else fetched

    retry = retrying(
        policy.retry,
        stop=stop,
        limited=limiter is not None,
        on_retry=(lambda _failure: on_retry()) if on_retry is not None else None,
    )
    try:
        fetched = retry(once)
    except PosterFetchError as exc:
        exc.attempts = attempts
        raise
    except Cancelled:
        raise PosterFetchError("cancelled", "the run is stopping", attempts=attempts) from None
    except FetchError as exc:
        detail = str(exc)
        if exc.transient:
            detail += f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
        raise PosterFetchError(
            exc.reason,
            detail,
            rejected=isinstance(exc, BadBody),
            http_status=exc.http_status,
            attempts=attempts,
        ) from None
    return replace(fetched, attempts=attempts)
