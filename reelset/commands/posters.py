"""``reelset posters``: download missing posters; ``reelset posters verify``: check files.

Plain ``reelset posters`` downloads every poster still needed (no row yet, ``failed``, or
a changed ``poster_path``) and exits 1 when some downloads failed. ``verify`` checks the
files against the table and exits 1 when problems remain (after ``--repair``, if given).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from reelset.commands.app import App, json_option
from reelset.config import Settings
from reelset.console import print_summary
from reelset.posters.audit import AuditReport, audit_posters
from reelset.posters.download import PostersInterrupted, download_posters
from reelset.runs import recorded_run

if TYPE_CHECKING:
    from reelset.tmdb.client import TmdbClient

RUN_COMMAND = "posters"
VERIFY_COMMAND = "posters-verify"
LOCK_NAME = "posters"
SCRAPE_LOCK_NAME = "scrape"
"""The scraper's run lock: ``verify --repair`` holds it too, as scrapes download posters."""



class _LazyClient:
    """A TMDB client made only if the image base URL must come from ``/configuration``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: TmdbClient | None = None

    def image_base_url(self) -> str:
        """``[tmdb] image_base_url``, else TMDB's ``/configuration`` (needs credentials)."""
        if self.settings.tmdb.image_base_url:
            return self.settings.tmdb.image_base_url
        if self._client is None:
            from reelset.tmdb.client import TmdbClient

            self._client = TmdbClient(self.settings)
        return self._client.image_base_url()

    def close(self) -> None:
        """Close the client's connections, if one was made."""
        if self._client is not None:
            self._client.close()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C: the work in flight is recorded first."""

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group("posters", invoke_without_command=True)
@json_option
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Also download again posters rejected before (e.g. after an image server fault).",
)
@click.option(
    "--id",
    "tmdb_ids",
    type=int,
    multiple=True,
    metavar="TMDB_ID",
    help="Only these movies (repeatable).",
)
@click.pass_context
def posters_group(
    ctx: click.Context, as_json: bool, retry_rejected: bool, tmdb_ids: tuple[int, ...]
) -> int | None:
    """Download every poster still missing or failed (or whose poster_path changed).

    Exit codes: 0 all done; 1 some downloads failed (they are retried by the next run);
    2 configuration error; 3 the store is locked; 130 interrupted.
    """
    if ctx.invoked_subcommand is not None:
        return None
    app: App = ctx.obj
    settings = app.settings
    params = {"retry_rejected": retry_rejected, "tmdb_ids": list(tmdb_ids) or None}
    client = _LazyClient(settings)
    with (
        app.open_store() as store,
        recorded_run(store, RUN_COMMAND, params, locks=(LOCK_NAME,)) as run,
    ):
        try:
            with _sigterm_interrupts():
                summary = download_posters(
                    store,
                    settings,
                    client=client,
                    tmdb_ids=tmdb_ids or None,
                    run_id=run.run_id,
                    retry_rejected=retry_rejected,
                    lock_name=LOCK_NAME,
                )
        except PostersInterrupted as exc:
            run.counts = exc.summary.as_dict()
            print_summary("posters (interrupted)", run.counts, as_json=as_json)
            raise
        finally:
            client.close()
        counts = run.counts = summary.as_dict()
        run.status = "partial" if summary.failed else "succeeded"
    print_summary("posters", counts, as_json=as_json)
    return 1 if summary.failed else 0


def _text_report(report: AuditReport) -> dict[str, Any]:
    data = report.as_dict()
    examples = {k: v[:5] for k, v in data.pop("examples").items() if v}
    if examples:
        data["examples"] = examples
    return data


@posters_group.command("verify")
@click.option(
    "--repair",
    is_flag=True,
    help="Download again missing or corrupt files, remove orphans and stale temp files.",
)
@json_option
@click.pass_obj
def posters_verify(app: App, repair: bool, as_json: bool) -> int:
    """Re-hash every poster file against the store; report missing, corrupt, orphaned files.

    Exit codes: 0 no problems (left); 1 problems remain; 2 configuration error; 3 the
    store is locked (--repair waits for no scrape or poster run); 130 interrupted.
    """
    settings = app.settings
    with app.open_store() as store:
        if not repair:
            report = audit_posters(store, settings)
        else:
            client = _LazyClient(settings)
            locks = (SCRAPE_LOCK_NAME, LOCK_NAME)
            with recorded_run(store, VERIFY_COMMAND, {"repair": True}, locks=locks) as run:
                try:
                    with _sigterm_interrupts():
                        report = audit_posters(
                            store,
                            settings,
                            repair=True,
                            client=client,
                            run_id=run.run_id,
                            lock_name=LOCK_NAME,
                        )
                finally:
                    client.close()
                run.counts = report.as_dict()
                run.counts.pop("examples", None)
                run.status = "partial" if report.problems else "succeeded"
    if as_json:
        print_summary("posters verify", report.as_dict(), as_json=True)
    else:
        print_summary("posters verify", _text_report(report))
    return 1 if report.problems else 0
