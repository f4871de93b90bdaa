"""``reelset posters``: download missing posters; ``reelset posters verify``: check files.

Plain ``reelset posters`` downloads every poster still needed (no row yet, ``failed``, or
a changed ``poster_path``) and exits 1 when some downloads failed. ``verify`` checks the
files against the table and exits 1 when problems remain (after ``--repair``, if given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from reelset.commands.app import App, flag, json_option
from reelset.console import print_summary

if TYPE_CHECKING:  # imported in the commands: they load the store and the HTTP stack
    from reelset.posters.audit import AuditReport


@click.group("posters", invoke_without_command=True)
@json_option
@flag("--retry-rejected", "Also download again posters rejected before (e.g. a server fault).")
@flag("--retry-abandoned", "Also retry failed posters whose failure was abandoned.")
@flag(
    "--worker",
    "Be one of any number of workers sharing the downloads through a PostgreSQL store "
    "(on any machines): each claims [posters] claim_batch posters at a time under a lease.",
)
@click.option(
    "--id",
    "tmdb_ids",
    type=click.IntRange(1, 2**31 - 1),
    multiple=True,
    metavar="TMDB_ID",
    help="Only these movies (repeatable).",
)
@click.pass_context
def posters_group(
    ctx: click.Context,
    as_json: bool,
    retry_rejected: bool,
    retry_abandoned: bool,
    worker: bool,
    tmdb_ids: tuple[int, ...],
) -> int | None:
    """Download every poster still missing or failed (or whose poster_path changed).

    Exit codes: 0 all done (failures abandoned under [failures] do not count); 1 some
    downloads failed (they are retried by the next run); 2 configuration error; 3 the
    store is locked (a run holds the posters lock, or --worker processes are running); 130
    interrupted.

    \b
    Examples:
      reelset posters
      reelset posters --id 603 --retry-rejected --json
      reelset posters --worker   # on each machine, sharing a PostgreSQL store
    """
    if ctx.invoked_subcommand is not None:
        return None
    from reelset.posters.download import LazyTmdbClient, PostersInterrupted, download_posters
    from reelset.posters.workers import run_poster_worker

    app: App = ctx.obj
    settings = app.settings
    run = run_poster_worker if worker else download_posters
    with app.open_store() as store, LazyTmdbClient(settings) as client:
        try:
            summary = run(
                store,
                settings,
                client=client,
                tmdb_ids=tmdb_ids or None,
                retry_rejected=retry_rejected,
                retry_abandoned=retry_abandoned,
            )
        except PostersInterrupted as exc:
            print_summary("posters (interrupted)", exc.summary.as_dict(), as_json=as_json)
            raise
    print_summary("posters", summary.as_dict(), as_json=as_json)
    return 1 if summary.open_failures else 0


def _text_report(report: AuditReport) -> dict[str, Any]:
    data = report.as_dict()
    examples = {k: v[:5] for k, v in data.pop("examples").items() if v}
    if examples:
        data["examples"] = examples
    return data


@posters_group.command("verify")
@flag("--repair", "Download again missing or corrupt files, remove orphans and stale temp files.")
@json_option
@click.pass_obj
def posters_verify(app: App, repair: bool, as_json: bool) -> int:
    """Re-hash every poster file against the store; report missing, corrupt, orphaned files.

    Exit codes: 0 no problems (left); 1 problems remain; 2 configuration error; 3 the
    store is locked (--repair waits for no scrape or poster run); 130 interrupted.

    \b
    Examples:
      reelset posters verify
      reelset posters verify --repair --json
    """
    from reelset.posters.audit import audit_posters
    from reelset.posters.download import LazyTmdbClient

    settings = app.settings
    with app.open_store() as store, LazyTmdbClient(settings) as client:
        report = audit_posters(store, settings, repair=repair, client=client)
    if as_json:
        print_summary("posters verify", report.as_dict(), as_json=True)
    else:
        print_summary("posters verify", _text_report(report))
    return 1 if report.problems else 0
