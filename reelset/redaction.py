"""Secrets never leave the process: the registry of secret values and the redaction of text.

Every line reelset prints, logs or stores passes through :func:`redact`; log handlers carry
:class:`RedactSecrets`. URLs are shown through :func:`redact_url`, and the HTTP libraries'
own loggers (which print request lines with their query strings) carry
:class:`RedactQuerySecrets` as well (installed by :mod:`reelset.transport.session`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_secrets: set[str] = set()

_SECRET_PARAMS = frozenset({"api_key", "apikey", "access_token", "token", "session_id", "password"})
"""Query parameters whose values are secrets, whatever their value."""

_SECRET_QUERY = re.compile(
    r"((?:" + "|".join(sorted(_SECRET_PARAMS)) + r")=)[^&\s\"']+", re.IGNORECASE
)


class RedactSecrets(logging.Filter):
    """Replace every registered secret in a log record's message with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def register_secrets(values: Iterable[str]) -> None:
    """Make sure these values never appear in a log line or an error message we print."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


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


class RedactQuerySecrets(logging.Filter):
    """Replace the values of secret query parameters (``api_key=...``) in a log record.

    For loggers that print URLs we never see (urllib3's request lines at DEBUG), so the
    value is hidden even before it is registered as a secret.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SECRET_QUERY.sub(r"\1***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
