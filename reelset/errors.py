"""The errors reelset raises for users, each with its process exit code.

The CLI turns any :class:`ReelsetError` into one line on stderr and the exit code it
carries; nothing else about the error (no traceback) reaches the user.
"""

from __future__ import annotations


class ReelsetError(Exception):
    """An error meant for the user: a one-line message and an exit code."""

    exit_code = 1


class UsageError(ReelsetError):
    """A command was called with input it cannot use (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file, an option or the environment is wrong (exit 2)."""


class StoreError(UsageError):
    """The store cannot be opened or is of a schema version we cannot use (exit 2)."""


class LockedError(ReelsetError):
    """Another run holds the store's run lock (exit 3)."""

    exit_code = 3


class AuthError(ReelsetError):
    """The API refused our credentials (exit 4). The message never contains a secret."""

    exit_code = 4


class Interrupted(ReelsetError):
    """The run was stopped by SIGINT/SIGTERM after finishing the writes in flight (exit 130)."""

    exit_code = 130


def error_line(exc: BaseException, *, limit: int = 300, with_type: bool = False) -> str:
    """The first line of an exception's text, redacted and cut to ``limit`` characters.

    The one way reelset turns an exception into text it prints, logs or stores. A database
    error's driver message (``exc.orig``) is preferred to SQLAlchemy's wrapper text; an
    exception without text is named by its class. ``with_type`` prefixes the class name.
    """
    from reelset.redaction import redact

    raw = str(getattr(exc, "orig", None) or exc)
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    name = exc.__class__.__name__
    text = redact(lines[0]) if lines else name
    if with_type and lines:
        text = f"{name}: {text}"
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
