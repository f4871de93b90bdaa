"""What the user sees: logging (with secrets redacted), progress and summaries.

On a terminal, long work shows a rich progress bar with rate and ETA; when stderr is not
a TTY (cron, CI), it logs a progress line every ``REELSET_PROGRESS_INTERVAL`` seconds
(default 10) instead. Summaries go to stdout, as text or as JSON (``--json``). Logs go to
stderr, or appended to ``--log-file``; ``--log-format json`` writes one JSON object a line.

rich is imported only when a bar or a terminal log handler is drawn, so that the CLI
starts fast.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reelset.errors import UsageError
from reelset.redaction import RedactSecrets, redact

if TYPE_CHECKING:
    from rich.progress import Progress

log = logging.getLogger("reelset")

_quiet = False
_json_documents = 0

LOG_FORMATS = ("text", "json")

_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
"""Attributes every log record has; any other attribute came from ``extra=``."""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, any
    ``extra=`` fields (e.g. run_id), and the traceback as ``exc_info`` if there is one.

    The line is redacted once more as a whole: extra fields do not pass through the
    :class:`RedactSecrets` filter, which only rewrites the message and the traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RECORD_FIELDS and key not in entry
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def stderr_is_tty() -> bool:
    """Whether progress can be drawn as a live bar."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def setup_logging(
    verbosity: int = 0,
    *,
    quiet: bool = False,
    log_format: str = "text",
    log_file: Path | None = None,
) -> None:
    """Configure the ``reelset`` logger: -v for debug, --quiet for warnings only.

    ``log_format`` is ``text`` (a rich handler on a terminal, plain lines otherwise) or
    ``json`` (one object a line, see :class:`JsonLogFormatter`); ``log_file`` appends the
    log to that file instead of stderr. Every handler redacts secrets.
    """
    global _quiet
    _quiet = quiet
    if log_format not in LOG_FORMATS:
        choices = ", ".join(LOG_FORMATS)
        raise UsageError(f"--log-format must be one of {choices}, not {log_format!r}")
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity > 0 else logging.INFO)
    root = logging.getLogger("reelset")
    for old in root.handlers:
        old.close()  # a --log-file of an earlier setup (tests run many commands per process)
    root.handlers.clear()
    handler = _handler(log_format, log_file)
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    for noisy in ("urllib3", "PIL", "alembic", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 2 else logging.DEBUG)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record, not to the stream
    it was made with: a program (or a test runner) that swaps stderr, and closes the old
    one, gets the records and no "I/O operation on closed file" logging errors."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _handler(log_format: str, log_file: Path | None) -> logging.Handler:
    handler: logging.Handler
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file: cannot open {log_file}: {exc.strerror}") from None
    elif log_format == "text" and stderr_is_tty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    else:
        handler = _StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    return handler


class ProgressReporter:
    """Counts work done; draws a bar or logs periodic lines. Thread-safe."""

    def __init__(self, description: str, total: int | None, unit: str, interval_s: float) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self._interval = interval_s
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_log = self._started
        self._bar: Progress | None = None
        self._task: Any = None

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(self._task, advance=n)
                return
            now = time.monotonic()
            if not _quiet and now - self._last_log >= self._interval:
                self._last_log = now
                log.info("%s", self.status_line(now))

    def set_total(self, total: int | None) -> None:
        """Change the expected total (e.g. once discovery knows it)."""
        with self._lock:
            self.total = total
            if self._bar is not None:
                self._bar.update(self._task, total=total)

    def status_line(self, now: float | None = None) -> str:
        """``description: done/total unit (rate/s, ETA)``."""
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta_text = f", ETA {eta:.0f}s" if eta != float("inf") else ""
            pct = 100.0 * self.done / self.total
            return (
                f"{self.description}: {self.done}/{self.total} {self.unit} ({pct:.1f}%, "
                f"{rate:.1f} {self.unit}/s{eta_text})"
            )
        return f"{self.description}: {self.done} {self.unit} ({rate:.1f} {self.unit}/s)"

    @property
    def elapsed_s(self) -> float:
        """Seconds since the work started."""
        return time.monotonic() - self._started


@contextmanager
def progress(
    description: str, total: int | None = None, *, unit: str = "items", bytes_: bool = False
) -> Iterator[ProgressReporter]:
    """Show progress of long work: a bar on a terminal, periodic log lines otherwise."""
    interval = float(os.environ.get("REELSET_PROGRESS_INTERVAL", "10") or 10)
    reporter = ProgressReporter(description, total, unit, interval)
    if _quiet or not stderr_is_tty():
        yield reporter
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    columns += [TransferSpeedColumn()] if bytes_ else [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        reporter._bar = bar
        reporter._task = bar.add_task(description, total=total)
        try:
            yield reporter
        finally:
            reporter._bar = None


def print_summary(title: str, data: Mapping[str, Any], *, as_json: bool = False) -> None:
    """Print a command's summary to stdout: ``key: value`` lines, or one JSON object."""
    if as_json:
        print_json(data)
        return
    lines = [title]
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {_fmt(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {_fmt(value)}")
    sys.stdout.write(redact("\n".join(lines)) + "\n")


def print_json(data: Mapping[str, Any]) -> None:
    """Print one JSON document (a summary, or a failed command's error) to stdout."""
    global _json_documents
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False, default=str)) + "\n")
    _json_documents += 1


def json_documents_printed() -> int:
    """How many JSON documents this process printed to stdout so far."""
    return _json_documents


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else "-"
    return "-" if value is None else str(value)
