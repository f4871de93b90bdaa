"""``reelset failures`` and ``reelset runs``: the failure ledger and the run history.

Thin layers over :meth:`Failures.entries <reelset.storage.bookkeeping.Failures.entries>`
and :meth:`Runs.recent <reelset.storage.bookkeeping.Runs.recent>`: a text table, or
``--json``. Both only read the store (after upgrading an older schema, like every command).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from reelset.commands.app import App, json_option
from reelset.console import print_summary
from reelset.redaction import redact

if TYPE_CHECKING:
    from reelset.storage.bookkeeping import FailureEntry, RunEntry

FAILURE_STATES = ("open", "abandoned", "resolved")
"""``reelset.storage.bookkeeping.FAILURE_STATES``, repeated so that ``--help`` does not
import the store (SQLAlchemy); ``tests/test_startup.py`` checks that they are equal."""

KIND_ALIASES = {"imdb": "find"}
"""``--kind`` names that stand for a stored kind: ``imdb`` is ``find`` (IMDb id lookups)."""
KIND_CHOICES = ("movie", "poster", "imdb", "find")
DEFAULT_STATES = ("open", "abandoned")
ERROR_WIDTH = 60


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Rows under headers in aligned columns (those in ``right`` aligned right)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _clip(text: str | None, width: int) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _write(text: str) -> None:
    sys.stdout.write(redact(text) + "\n")


# -- reelset failures ---------------------------------------------------------------------


@click.command("failures")
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(KIND_CHOICES),
    multiple=True,
    help="Only failures of this kind (repeatable): movie, poster, or imdb (IMDb ids that "
    "TMDB's /find could not look up; stored as kind find).",
)
@click.option(
    "--state",
    "states",
    type=click.Choice((*FAILURE_STATES, "all")),
    multiple=True,
    help="Only failures in this state (repeatable; default: open and abandoned; all: every "
    "state, resolved ones included).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N failures (the newest).")
@json_option
@click.pass_obj
def failures_command(
    app: App, kinds: tuple[str, ...], states: tuple[str, ...], limit: int | None, as_json: bool
) -> int:
    """List the failure ledger (fetch_failures), newest first.

    A failure is open (retried by the next run), abandoned (it failed [failures]
    max_attempts times over min_age_days: no longer retried automatically, nor making runs
    exit 1; `--retry-abandoned` of scrape and posters tries it again) or resolved.

    \b
    Examples:
      reelset failures
      reelset failures --kind movie --state abandoned --json
    """
    wanted_kinds = sorted({KIND_ALIASES.get(k, k) for k in kinds}) if kinds else None
    wanted_states = (
        list(FAILURE_STATES)
        if "all" in states
        else [s for s in FAILURE_STATES if s in states]
        if states
        else list(DEFAULT_STATES)
    )
    with app.open_store() as store:
        counts = store.failures.count_by_state(kinds=wanted_kinds, states=wanted_states)
        entries = store.failures.entries(kinds=wanted_kinds, states=wanted_states, limit=limit)
    if as_json:
        print_summary(
            "failures",
            {
                "kinds": wanted_kinds,
                "states": wanted_states,
                "counts": counts,
                "shown": len(entries),
                "failures": [e.as_dict() for e in entries],
            },
            as_json=True,
        )
        return 0
    _write(_failures_text(entries, counts))
    return 0


def _failures_text(entries: Sequence[FailureEntry], counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    by_state = ", ".join(f"{state} {n:,}" for state, n in counts.items())
    if not entries:
        return f"no failures ({by_state})"
    shown = f"{len(entries):,}" if len(entries) == total else f"{len(entries):,} of {total:,}"
    headers = (
        "id",
        "kind",
        "key",
        "state",
        "attempts",
        "first failed",
        "last failed",
        "http",
        "error",
    )
    rows = [
        (
            str(e.failure_id),
            e.kind,
            e.key,
            e.state,
            str(e.attempts),
            _when(e.first_failed_at),
            _when(e.last_failed_at),
            str(e.http_status) if e.http_status is not None else "-",
            _clip(e.error, ERROR_WIDTH),
        )
        for e in entries
    ]
    table = _table(headers, rows, right={0, 4, 7})
    return f"failures: {shown} shown ({by_state})\n{table}"


# -- reelset runs -------------------------------------------------------------------------


@click.command("runs")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show the N newest runs.",
)
@json_option
@click.pass_obj
def runs_command(app: App, limit: int, as_json: bool) -> int:
    """List the run history (scrape_runs), newest first: every scrape, posters, imdb import
    and build run with its status, duration and counts.

    \b
    Examples:
      reelset runs
      reelset runs --limit 5 --json
    """
    with app.open_store() as store:
        runs = store.runs.recent(limit=limit)
    if as_json:
        print_summary("runs", {"runs": [r.as_dict() for r in runs]}, as_json=True)
        return 0
    _write(_runs_text(runs))
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _counts(counts: Mapping[str, Any]) -> str:
    """The run's non-zero top-level numbers as ``name=value`` (nested ones are in --json)."""
    parts = [
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in counts.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value
    ]
    return " ".join(parts) or "-"


def _runs_text(runs: Sequence[RunEntry]) -> str:
    if not runs:
        return "no runs yet"
    with_errors = any(r.error for r in runs)
    headers = ["run", "command", "status", "started", "duration", "counts"]
    if with_errors:
        headers.append("error")
    rows = []
    for r in runs:
        row = [
            str(r.run_id),
            r.command,
            r.status,
            _when(r.started_at),
            _duration(r.duration_s) if r.finished_at is not None else "running",
            _counts(r.counts),
        ]
        if with_errors:
            row.append(_clip(r.error, ERROR_WIDTH))
        rows.append(row)
    return f"runs: {len(runs)} newest\n{_table(headers, rows, right={0})}"
