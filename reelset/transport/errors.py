"""What a failed request raises, and how a transport exception is put into words.

Every failure of a TMDB call, a poster download or an IMDb dataset download ends up as
a :class:`FetchError` (or a subclass). Whether it is worth another attempt is its
``transient`` flag, set by the one classification in :mod:`reelset.transport.retry`.

requests' own exception texts contain the full URL (with the ``api_key`` query parameter
of TMDB calls), so no exception text from requests is passed on: :func:`describe_exception`
names what happened from the exception types alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from reelset.errors import ReelsetError
from reelset.redaction import redact

BAD_URL_EXCEPTIONS: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)
"""What requests raises for an address it cannot use (e.g. where a redirect pointed)."""


class FetchError(ReelsetError):
    """A request that failed (after its retries). The message never holds a secret.

    ``reason`` is a short code for tallies and stored rows (``http_503``, ``timeout``,
    ``connection``, ``incomplete``...); ``retry_after`` the seconds the server asked us to
    wait (``Retry-After``), if it said.
    """

    exit_code = 1
    transient = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        url: str = "",
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.http_status = http_status
        self.url = url
        self.reason = reason
        self.retry_after = retry_after


class TransientError(FetchError):
    """Worth retrying: connection errors, timeouts, cut-off or unparsable bodies."""

    transient = True


class RetryableStatusError(TransientError):
    """An HTTP answer that asks to be tried again: 5xx, 408 or 425."""


class ThrottledError(RetryableStatusError):
    """A 429 answer (too many requests)."""


class NotFoundError(FetchError):
    """A 404 answer: the resource is gone (for a movie: mark it gone)."""


class ClientError(FetchError):
    """Another answer we cannot use (most 4xx), or a body we refuse: retrying would not help."""


class Cancelled(FetchError):
    """The run is stopping; the request was not (or no longer) attempted."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="cancelled")


def bad_redirect(where: str) -> ClientError:
    """The failure for a redirect to an address that does not parse.

    requests raises a bare ``ValueError`` for ``Location: http://[::1`` (not one of its
    own exceptions); callers of ``session.get`` turn it into this (not retried).
    """
    return ClientError(
        f"the server redirected to an invalid URL ({where})", url=where, reason="bad_url"
    )


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
    if any(isinstance(e, requests.exceptions.ContentDecodingError) for e in chain):
        return "the body's Content-Encoding does not decode"
    if any(isinstance(e, requests.TooManyRedirects) for e in chain):
        return "too many redirects"
    if any(isinstance(e, BAD_URL_EXCEPTIONS) for e in chain):
        return "invalid URL"
    if any(isinstance(e, requests.exceptions.SSLError) for e in chain):
        return "TLS error"
    if any(isinstance(e, requests.ConnectionError) for e in chain):
        return "connection error"
    return f"transport error ({type(exc).__name__})"
