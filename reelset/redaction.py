"""Secrets never leave the process: the registry of secret values and the redaction of text.

Every line reelset prints, logs or stores passes through :func:`redact`; log handlers carry
:class:`RedactSecrets`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

_secrets: set[str] = set()


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
