"""Secrets never leave the process: the registry of secret values and the redaction of text.

Every line reelset prints, logs or stores passes through :func:`redact`; log handlers carry
:class:`RedactSecrets`. URLs are shown through :func:`redact_url`, and the HTTP libraries'
own loggers (which print request lines with their query strings) carry
:class:`RedactQuerySecrets` as well (installed by :mod:`reelset.transport.session`).

A secret is found in whatever encoding it comes back in: a server may echo the API key
from the query string in an error body percent-encoded (``%2B`` or ``%2b``), form-encoded
(a space as ``+``), encoded twice (``%252B``), JSON-escaped (``\\u002b``, ``\\/``) or
HTML-escaped (``&amp;``), or mix these character by character. :func:`register_secrets`
compiles one pattern that matches each character of a secret in any of these forms.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered (they would blank out ordinary words)."""

MASK = "***"

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()

_SECRET_PARAMS = frozenset({"api_key", "apikey", "access_token", "token", "session_id", "password"})
"""Query parameters whose values are secrets, whatever their value."""

_SECRET_QUERY = re.compile(
    r"((?:" + "|".join(sorted(_SECRET_PARAMS)) + r")=)[^&\s\"']+", re.IGNORECASE
)

_JSON_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/"}
_HTML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


class RedactSecrets(logging.Filter):
    """Replace every registered secret in a log record (message, traceback) with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatters cache the traceback text here; exception messages may hold secrets.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _hex(value: int, digits: int) -> str:
    """A pattern for ``value`` in ``digits`` hex digits, letters in either case."""
    text = f"{value:0{digits}x}"
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in text)


def _char_forms(char: str) -> str:
    """A pattern matching ``char`` raw or in any of the encodings named in the module doc."""
    forms = [re.escape(char)]
    utf8 = char.encode("utf-8")
    forms.append("".join("%" + _hex(b, 2) for b in utf8))  # percent-encoded
    forms.append("".join("%25" + _hex(b, 2) for b in utf8))  # percent-encoded twice
    if char == " ":
        forms.append(r"\+")  # form-encoded
    code = ord(char)
    if code > 0xFFFF:  # JSON escapes astral characters as a surrogate pair
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(r"\\u" + _hex(high, 4) + r"\\u" + _hex(low, 4))
    else:
        forms.append(r"\\u" + _hex(code, 4))
    if char in _JSON_SHORT_ESCAPES:
        forms.append(re.escape(_JSON_SHORT_ESCAPES[char]))
    if char in _HTML_NAMED:
        forms.append(re.escape(_HTML_NAMED[char]))
    forms.append(f"&#0*{code};")
    forms.append("&#[xX]0*" + _hex(code, len(f"{code:x}")) + ";")
    return "(?:" + "|".join(forms) + ")"


def _compile(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for every registered secret in every encoding (longest first)."""
    ordered = sorted(set(secrets), key=lambda s: (-len(s), s))
    if not ordered:
        return None
    return re.compile("|".join("".join(_char_forms(c) for c in s) for s in ordered))


def register_secrets(values: Iterable[str]) -> None:
    """Make sure these values never appear in a log line, an error message we print or
    a stored row, in any encoding (see the module docstring)."""
    global _pattern
    new = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
    with _lock:
        if new <= _secrets:
            return
        _secrets.update(new)
        _pattern = _compile(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret, in any encoding, replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


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
