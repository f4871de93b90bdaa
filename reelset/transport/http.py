"""The transport: one pooled keep-alive ``requests.Session``, the limiter, retries, redaction.

Endpoint code (``tmdb.py``) never sleeps or retries: it hands a URL to
:class:`HttpTransport`, which

- waits for the shared :class:`~reelset.transport.limiter.SlidingWindowLimiter`,
- sends the request over the session (connections kept alive and pooled per worker),
- maps the answer: 401 -> :class:`~reelset.errors.AuthError` (never retried), 404 ->
  :class:`NotFoundError`, 429 -> :class:`ThrottledError` (everyone pauses, the pace drops),
  5xx / connection errors / timeouts / truncated or unparsable bodies -> retried with
  exponential backoff and jitter (``Retry-After`` wins), other 4xx -> :class:`ClientError`,
- and keeps counters (requests sent, 429s received, retries).

Secrets: the API key travels as the ``api_key`` query parameter, added by an auth hook at
the last moment, so the URLs we build and report never hold it. requests' own exception
texts do contain the full URL, so no exception text from requests is ever passed on:
messages are rebuilt from the exception type and the key-less URL, and redacted again.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from tenacity import RetryCallState, Retrying

from reelset import __version__
from reelset.errors import AuthError, ReelsetError
from reelset.redaction import RedactSecrets, redact, register_secrets
from reelset.transport.limiter import LimiterCancelled, SlidingWindowLimiter, Slot

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest API response body read; a larger one is refused (the API never sends that)."""

MAX_RETRY_AFTER_S = 120.0
"""Longest ``Retry-After`` honoured as given; a longer one is cut to this."""

MAX_THROTTLE_RETRIES = 100
"""429s one request may receive before it counts as failed (429s do not use max_retries)."""

_SECRET_PARAMS = {"api_key", "apikey", "access_token", "token", "session_id", "password"}
_USER_AGENT = f"reelset/{__version__} (+requests)"


# -- errors ----------------------------------------------------------------------------


class FetchError(ReelsetError):
    """A request that failed (after its retries). The message never holds a secret."""

    exit_code = 1
    transient = False

    def __init__(self, message: str, *, http_status: int | None = None, url: str = "") -> None:
        super().__init__(redact(message))
        self.http_status = http_status
        self.url = url


class TransientError(FetchError):
    """Worth retrying: connection errors, timeouts, truncated or unparsable bodies."""

    transient = True


class ServerError(TransientError):
    """A 5xx answer."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, url=url)
        self.retry_after = retry_after


class ThrottledError(ServerError):
    """A 429 answer (too many requests)."""


class NotFoundError(FetchError):
    """A 404 answer: the resource is gone (for a movie: mark it gone)."""


class ClientError(FetchError):
    """Another 4xx answer, or a body we refuse: retrying would not help."""


class Cancelled(FetchError):
    """The run is stopping; the request was not (or no longer) attempted."""


# -- redaction -------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without credentials: secret query values and userinfo become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
        )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def url_path(url: str) -> str:
    """The path of ``url`` (no host, no query): what error messages name."""
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return "?"


def describe_exception(exc: BaseException) -> str:
    """A short description of a transport exception, built without its (URL-bearing) text."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
        reason = getattr(chain[-1], "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
    names = [type(e).__name__ for e in chain]
    if any(isinstance(e, requests.ConnectTimeout) for e in chain):
        return "connect timed out"
    if any(isinstance(e, (requests.ReadTimeout, TimeoutError)) for e in chain) or any(
        "Timeout" in n for n in names
    ):
        return "read timed out"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "connection reset by peer"
    if any(n in ("IncompleteRead", "ChunkedEncodingError", "ProtocolError") for n in names):
        return "connection closed before the whole response arrived"
    if any(isinstance(e, requests.exceptions.SSLError) for e in chain):
        return "TLS error"
    if any(isinstance(e, requests.ConnectionError) for e in chain):
        return "connection error"
    return f"transport error ({type(exc).__name__})"


def _server_message(body: bytes) -> str:
    """TMDB's ``status_message`` from an error body, cleaned (it is untrusted)."""
    try:
        data = json.loads(body[:65536])
        message = str(data.get("status_message", "")) if isinstance(data, dict) else ""
    except (ValueError, UnicodeDecodeError):
        message = ""
    message = re.sub(r"[\x00-\x1f\x7f]+", " ", message).strip()
    return redact(message[:200])


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
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


# -- session and auth ------------------------------------------------------------------


def make_session(pool_size: int, *, user_agent: str = _USER_AGENT) -> requests.Session:
    """A ``requests.Session`` for ``pool_size`` concurrent workers.

    One connection pool per host with room for every worker (so connections are reused,
    never opened and thrown away), keep-alive, no retries of its own (callers retry with
    backoff), and no ``Connection: close``.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Connection": "keep-alive"})
    _guard_library_logs()
    return session


_guarded = False


def _guard_library_logs() -> None:
    # urllib3 logs request lines (with the query string) at DEBUG under -vv.
    global _guarded
    if _guarded:
        return
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.response"):
        logging.getLogger(name).addFilter(RedactSecrets())
        logging.getLogger(name).addFilter(_RedactQuery())
    _guarded = True


class _RedactQuery(logging.Filter):
    _pattern = re.compile(r"((?:api_key|access_token|token|session_id)=)[^&\s\"']+", re.I)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._pattern.sub(r"\1***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class ApiKeyAuth(AuthBase):
    """Adds ``api_key=...`` to the request URL when it is sent (TMDB v3 style)."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        register_secrets([api_key])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url, {"api_key": self._api_key})
        return r

    def __repr__(self) -> str:
        return "ApiKeyAuth(***)"


class BearerAuth(AuthBase):
    """Sends ``Authorization: Bearer <token>`` (a TMDB read access token)."""

    def __init__(self, token: str) -> None:
        self._token = token
        register_secrets([token])

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "BearerAuth(***)"


# -- the transport ---------------------------------------------------------------------


@dataclass
class TransportCounters:
    """What the transport did; thread-safe increments."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` by ``n``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        """``{"requests", "throttled", "retries"}``."""
        with self._lock:
            return {"requests": self.requests, "throttled": self.throttled, "retries": self.retries}


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry transient failures."""

    max_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_throttle_retries: int = MAX_THROTTLE_RETRIES


class _AttemptBudget:
    """Per-call tenacity stop/wait: 429s and other transient errors have separate budgets."""

    def __init__(self, policy: RetryPolicy, *, limited: bool) -> None:
        self.policy = policy
        self.limited = limited
        self.other = 0
        self.throttled = 0

    def stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ThrottledError):
            self.throttled += 1
            return self.throttled > self.policy.max_throttle_retries
        self.other += 1
        return self.other > self.policy.max_retries

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ThrottledError) and self.limited:
            return 0.0  # the limiter holds every worker until the pause is over
        if isinstance(exc, ServerError) and exc.retry_after is not None:
            return exc.retry_after
        # Exponential in the number of non-429 failures of this call, plus jitter.
        initial, cap = self.policy.backoff_initial_s, self.policy.backoff_max_s
        exponent = min(max(self.other - 1, 0), 30)
        return min(cap, initial * 2**exponent) + random.uniform(0, initial)


def _retryable(state: RetryCallState) -> bool:
    exc = state.outcome.exception() if state.outcome else None
    return isinstance(exc, FetchError) and exc.transient


class HttpTransport:
    """Rate-limited, retrying GETs over one session. Thread-safe; shared by all workers."""

    def __init__(
        self,
        session: requests.Session,
        *,
        limiter: SlidingWindowLimiter | None,
        timeout_s: float,
        policy: RetryPolicy,
        auth: AuthBase | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.limiter = limiter
        self.timeout_s = timeout_s
        self.policy = policy
        self.auth = auth
        self.stop = stop or threading.Event()
        self.counters = TransportCounters()

    # -- public ----------------------------------------------------------------------

    def get_json(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        *,
        validate: Callable[[Any], None] | None = None,
        limited: bool = True,
    ) -> Any:
        """GET ``url`` and return its JSON body, retrying transient failures.

        ``validate`` may raise ``ValueError`` for a body of the wrong shape; that counts as
        an unparsable body (retried). Raises :class:`FetchError` subclasses or AuthError.
        """
        return self._retrying(limited)(self._attempt_json, url, params, validate, limited)

    def call_with_retries(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` again on transient :class:`FetchError` (e.g. a whole download)."""
        return self._retrying(False)(fn)

    @contextmanager
    def stream(self, url: str, *, limited: bool = False) -> Iterator[requests.Response]:
        """GET ``url`` as a stream (connecting is retried; the body is the caller's).

        Non-2xx answers raise like :meth:`get_json` (404 -> NotFoundError).
        """
        response: requests.Response = self._retrying(limited)(self._attempt_stream, url, limited)
        try:
            yield response
        finally:
            response.close()

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()

    # -- internals ---------------------------------------------------------------------

    def _retrying(self, limited: bool) -> Retrying:
        budget = _AttemptBudget(self.policy, limited=limited and self.limiter is not None)
        return Retrying(
            retry=_retryable,
            stop=budget.stop,
            wait=budget.wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Cancelled("stopped while waiting to retry")

    def _before_sleep(self, state: RetryCallState) -> None:
        self.counters.add("retries")
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and not isinstance(exc, ThrottledError):
            log.debug("retrying after: %s", exc)

    def _send(self, url: str, params: dict[str, Any] | None, limited: bool) -> requests.Response:
        if self.stop.is_set():
            raise Cancelled("stopped before the request")
        limiter = self.limiter if limited else None
        slot: Slot | None = None
        if limiter is not None:
            try:
                slot = limiter.acquire_slot(self.stop)
            except LimiterCancelled:
                raise Cancelled("stopped while waiting for the rate limiter") from None
        self.counters.add("requests")
        where = url_path(url)
        try:
            response = self.session.get(
                url,
                params=params,
                auth=self.auth,
                timeout=(self.timeout_s, self.timeout_s),
                stream=True,
            )
        except requests.RequestException as exc:
            if limiter is not None and slot is not None:
                limiter.release(slot, answered=False)
            raise TransientError(f"{describe_exception(exc)} ({where})", url=where) from None
        except BaseException:
            if limiter is not None and slot is not None:
                limiter.release(slot, answered=False)
            raise
        # The server decided on the request before it sent these headers.
        if limiter is not None and slot is not None:
            limiter.release(slot)
        return response

    def _check_status(self, response: requests.Response, where: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            if self.limiter is not None:
                self.limiter.succeeded()
            return
        body = b""
        try:
            body = _read_capped(response, 65536, where)
        except FetchError:
            pass
        finally:
            response.close()
        message = _server_message(body)
        detail = f": {message}" if message else ""
        if status == 401:
            raise AuthError(
                "TMDB refused the credentials (HTTP 401"
                f"{detail}); check TMDB_API_KEY or TMDB_READ_ACCESS_TOKEN"
            )
        if status == 404:
            raise NotFoundError(f"HTTP 404 from {where}{detail}", http_status=404, url=where)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            self.counters.add("throttled")
            if self.limiter is not None:
                pause = retry_after if retry_after is not None else self.policy.backoff_initial_s
                self.limiter.throttled(pause)
            raise ThrottledError(
                f"HTTP 429 from {where}{detail}",
                http_status=429,
                url=where,
                retry_after=retry_after,
            )
        if status >= 500:
            raise ServerError(
                f"HTTP {status} from {where}{detail}",
                http_status=status,
                url=where,
                retry_after=retry_after,
            )
        raise ClientError(f"HTTP {status} from {where}{detail}", http_status=status, url=where)

    def _attempt_json(
        self,
        url: str,
        params: dict[str, Any] | None,
        validate: Callable[[Any], None] | None,
        limited: bool,
    ) -> Any:
        where = url_path(url)
        response = self._send(url, params, limited)
        self._check_status(response, where)
        try:
            raw = _read_capped(response, MAX_BODY_BYTES, where)
        finally:
            response.close()
        try:
            data = json.loads(raw)
            if validate is not None:
                validate(data)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)[:120]
            raise TransientError(
                f"unparsable response body from {where} ({reason}; {len(raw)} bytes)",
                http_status=response.status_code,
                url=where,
            ) from None
        return data

    def _attempt_stream(self, url: str, limited: bool) -> requests.Response:
        response = self._send(url, None, limited)
        self._check_status(response, url_path(url))
        return response


def _read_capped(response: requests.Response, limit: int, where: str) -> bytes:
    """The whole body, or ClientError past ``limit`` bytes; transport errors -> transient."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ClientError(f"response from {where} too large ({declared} bytes)", url=where)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > limit:
                raise ClientError(f"response from {where} larger than {limit} bytes", url=where)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise TransientError(
            f"{describe_exception(exc)} ({where}, {size} bytes read)",
            http_status=response.status_code,
            url=where,
        ) from None
    return b"".join(chunks)
