"""``reelset scrape``: fetch TMDB movies into the store (see ``reelset.tmdb.scrape``)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from reelset.commands.app import App, flag, json_option
from reelset.console import print_summary
from reelset.errors import UsageError

log = logging.getLogger(__name__)

STRATEGIES = ("popular", "discover", "export", "ids", "changes")
"""``reelset.tmdb.discovery.STRATEGIES``, repeated so that ``--help`` does not import the
scraper (numpy, requests); ``tests/test_startup.py`` checks that they are equal."""


@click.command("scrape")
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="export",
    show_default=True,
    help="How movies are found: popular pages, discover by release date, the daily ID "
    "export (every movie), ids from a file, or changes since the last changes run.",
)
@click.option(
    "--from",
    "ids_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --strategy ids: a file of TMDB ids or IMDb ids (tt...), one a line.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Stop after this many movies from discovery (skipped fresh ones included).",
)
@click.option(
    "--min-popularity",
    type=click.FloatRange(min=0),
    help="Leave out movies listed with a lower popularity (popular, discover, export).",
)
@flag("--refresh", "Fetch movies again even if fetched within tmdb.refresh_after_days.")
@flag("--retry-failures", "Only retry the open failures of earlier runs (no discovery).")
@flag("--retry-abandoned", "Also retry the abandoned failures (see `reelset failures`).")
@flag("--no-posters", "Do not download posters after the scrape.")
@json_option
@click.pass_obj
def scrape_command(
    app: App, strategy: str, ids_file: Path | None, no_posters: bool, as_json: bool, **more: Any
) -> int:
    """Scrape TMDB into the store: one request per movie, rate limited, resumable.

    Exit codes: 0 done (failures abandoned under [failures] do not count); 1 done with
    failures that are new or still retried next run; 2 usage or configuration error; 3
    another run holds the store's lock; 4 TMDB refused the credentials; 130 interrupted
    (the next run resumes).

    \b
    Examples:
      reelset scrape --strategy changes
      reelset scrape --retry-failures --retry-abandoned
    """
    with _no_collection_during_start_up() as started:
        from reelset.tmdb.discovery import read_ids_file
        from reelset.tmdb.scrape import ScrapeOptions, run_scrape

        _exit_without_collecting()
        if strategy != "ids" and ids_file is not None:
            raise UsageError("--from FILE only goes with --strategy ids")
        if ids_file is not None:
            read_ids_file(ids_file)  # a bad line is a usage error before anything else
        settings = app.settings
        options = ScrapeOptions(
            strategy=strategy, ids_file=ids_file, posters=not no_posters, **more
        )  # more: limit, min_popularity, refresh, retry_failures, retry_abandoned
        result = run_scrape(settings, options, started=started)
    title = f"scrape run {result.run_id}: {result.status}"
    print_summary(title, result.summary, as_json=as_json)
    if result.status == "interrupted":
        log.warning("interrupted: the next `reelset scrape` resumes from the last checkpoint")
    elif result.status == "partial":
        movies = result.summary["movies"]
        log.warning(
            "%d movies failed; they are in fetch_failures and retried first next run",
            movies["failed"] - movies["failures_abandoned"],
        )
    return result.exit_code


@contextlib.contextmanager
def _no_collection_during_start_up() -> Iterator[Callable[[], None]]:
    """No garbage collection until the scrape calls the function yielded (its start-up is
    over), which freezes what start-up made and turns collection back on.

    Start-up (SQLAlchemy, pydantic, requests, Alembic for a new store) makes hundreds of
    thousands of objects and almost no garbage; the collector went over all of them two
    or three times there, 0.15-0.3 s of CPU before the first request (measured with
    ``gc.callbacks``). Frozen, they are not gone over again while the scrape runs, where
    a full collection would hold up the workers' answers (each one's place in the rate
    window). When the body ends, the collector is as it was before.
    """
    was_enabled = gc.isenabled()
    froze = False

    def started() -> None:
        nonlocal froze
        if not froze:
            froze = True
            gc.freeze()
            if was_enabled:
                gc.enable()

    gc.disable()
    try:
        yield started
    finally:
        if froze:
            gc.unfreeze()  # back to the oldest generation: collectable again
        if was_enabled:
            gc.enable()


@functools.cache
def _exit_without_collecting() -> None:
    """Leave this process's objects to the OS at exit instead of garbage-collecting them.

    The interpreter's shutdown collects everything a scrape imported and made (SQLAlchemy,
    pydantic, tmdbsimple, ...): 0.2-0.4 s measured after a run, about 1 % of a 2,000-movie
    scrape at 50/1s. Freezing skips that. Nothing needs those collections: the store and
    the client are closed explicitly, and ``logging.shutdown`` (an earlier atexit handler,
    so it runs after this one) flushes the log.
    """
    atexit.register(gc.freeze)
