"""HttpTransport: rate-limited, retrying GETs of the TMDB API over one pooled session.

Endpoint code (:mod:`reelset.tmdb.client`) never sleeps or retries: it hands a URL to
:class:`HttpTransport`, which

- waits for the shared :class:`~reelset.transport.limiter.SlidingWindowLimiter`,
- sends the request over the session (:func:`~reelset.transport.session.make_session`:
  connections kept alive and pooled per worker),
- maps the answer: 401 -> :class:`~reelset.errors.AuthError` (never retried), anything
  else that is not 2xx by :func:`~reelset.transport.retry.status_error` (404 ->
  ``NotFoundError``, 429 -> ``ThrottledError``); every answer's status is reported to the
  limiter, which lowers the pace on 429s and lets it grow back on the others,
- retries what :func:`~reelset.transport.retry.is_retryable` accepts, including truncated
  or unparsable bodies, with :func:`~reelset.transport.retry.retrying`,
- and keeps counters (requests sent, 429s received, retries).

Messages are rebuilt from the exception type and the key-less URL path, and redacted again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from requests.auth import AuthBase
from tenacity import Retrying

from reelset.errors import AuthError
from reelset.redaction import redact
from reelset.transport.errors import (
    Cancelled,
    ClientError,
    FetchError,
    ThrottledError,
    TransientError,
    bad_redirect,
    describe_exception,
    url_path,
)
from reelset.transport.limiter import LimiterCancelled, SlidingWindowLimiter, Slot
from reelset.transport.retry import (
    RetryPolicy,
    parse_retry_after,
    request_failure,
    retrying,
    status_error,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest API response body read; a larger one is refused (the API never sends that)."""


def _server_message(body: bytes) -> str:
    """TMDB's ``status_message`` from an error body, cleaned (it is untrusted)."""
    try:
        data = json.loads(body[:65536])
        message = str(data.get("status_message", "")) if isinstance(data, dict) else ""
    except (ValueError, UnicodeDecodeError):
        message = ""
    message = re.sub(r"[\x00-\x1f\x7f]+", " ", message).strip()
    # Redacted before it is cut: a cut could leave part of an echoed secret unmatched.
    return redact(message)[:200]


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
        a bad body like an unparsable one (retried; reason ``invalid_body``). Raises
        :class:`FetchError` subclasses or AuthError (a redirect to an unparsable address is
        a :class:`ClientError`).
        """
        return self._retrying(limited)(self._attempt_json, url, params, validate, limited)

    def call_with_retries(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` again on retryable failures (e.g. a whole download), as get_json."""
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
        return retrying(
            self.policy,
            stop=self.stop,
            limited=limited and self.limiter is not None,
            on_retry=self._on_retry,
        )

    def _on_retry(self, failure: BaseException) -> None:
        self.counters.add("retries")
        if not isinstance(failure, ThrottledError):
            log.debug("retrying after: %s", failure)

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
            raise request_failure(exc, f"{describe_exception(exc)} ({where})", url=where) from None
        except ValueError:
            # Our URLs are valid, so this is a redirect to an address that does not parse
            # (``Location: http://[::1``): the server's fault, not a bug of ours.
            if limiter is not None and slot is not None:
                limiter.release(slot, answered=False)
            raise bad_redirect(where) from None
        except BaseException:
            if limiter is not None and slot is not None:
                limiter.release(slot, answered=False)
            raise
        # The server decided on the request before it sent these headers; its status is
        # the limiter's feedback (429: slow down; anything else: accepted).
        if limiter is not None and slot is not None:
            retry_after = None
            if response.status_code == 429:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            limiter.release(slot, status=response.status_code, retry_after=retry_after)
        return response

    def _check_status(self, response: requests.Response, where: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
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
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            self.counters.add("throttled")
        raise status_error(
            status, f"HTTP {status} from {where}{detail}", url=where, retry_after=retry_after
        )

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
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise TransientError(
                f"unparsable response body from {where} (not JSON; {len(raw)} bytes)",
                http_status=response.status_code,
                url=where,
                reason="unparsable",
            ) from None
        if validate is not None:
            try:
                validate(data)
            except ValueError as exc:
                # Redacted before it is cut, so no part of an echoed secret survives.
                problem = redact(" ".join(str(exc).split()))[:160]
                raise TransientError(
                    f"unusable response body from {where} ({problem}; {len(raw)} bytes)",
                    http_status=response.status_code,
                    url=where,
                    reason="invalid_body",
                ) from None
        return data

    def _attempt_stream(self, url: str, limited: bool) -> requests.Response:
        response = self._send(url, None, limited)
        self._check_status(response, url_path(url))
        return response


def _read_capped(response: requests.Response, limit: int, where: str) -> bytes:
    """The whole body, or ClientError past ``limit`` bytes; requests' errors classified."""
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
        raise request_failure(
            exc,
            f"{describe_exception(exc)} ({where}, {size} bytes read)",
            http_status=response.status_code,
            url=where,
        ) from None
    return b"".join(chunks)
