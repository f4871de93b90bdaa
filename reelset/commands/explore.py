"""``reelset browse`` (Datasette over the store) and ``reelset report`` (one HTML page).

Datasette and matplotlib are optional extras, imported only inside :mod:`reelset.explore`'s
functions, so the CLI starts without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from reelset.commands.app import App, flag, json_option
from reelset.console import print_summary
from reelset.errors import UsageError


def _sqlite_path(app: App) -> Path:
    """The store's SQLite file; a one-line error for any other store."""
    url = make_url(app.settings.database_url)
    backend = url.get_backend_name()
    if backend != "sqlite":
        raise UsageError(
            f"reelset browse serves SQLite stores only (Datasette reads SQLite); this store "
            f"is {backend}: use `reelset report` or a PostgreSQL client"
        )
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise UsageError("reelset browse needs a store in a SQLite file")
    return Path(url.database)


@click.command("browse")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")
@flag("--print-metadata",
      "Print Datasette's metadata JSON (for `datasette DB -m FILE`) and exit.")
@click.pass_obj
def browse_command(app: App, host: str, port: int, print_metadata: bool) -> int:
    """Browse and query the store in Datasette, with reelset's descriptions and queries.

    Serves the SQLite store read-only until Ctrl-C: every table and view described, facets,
    full-text search on movies, and canned queries (genre counts per year, posters not
    usable, TMDB vs IMDb disagreement, genre pairs, run history, open failures, rejected
    posters by reason). Needs Datasette: pip install 'reelset[browse]'.

    \b
    Examples:
      reelset browse
      reelset browse --port 8002
      reelset browse --print-metadata > metadata.json
    """
    from reelset.explore.datasette import (
        build_metadata,
        check_port_free,
        database_name,
        datasette_app,
        run_server,
    )

    db_path = _sqlite_path(app)
    with app.open_store():  # creates or upgrades it, so the views exist
        pass
    metadata = build_metadata(database_name(db_path))
    if print_metadata:
        click.echo(json.dumps(metadata, indent=2, ensure_ascii=False))
        return 0
    asgi = datasette_app(db_path, metadata)
    check_port_free(host, port)
    click.echo(f"serving {db_path.name} with Datasette at http://{host}:{port}/ (Ctrl-C to stop)")
    run_server(asgi, host=host, port=port)
    click.echo("stopped")
    return 0


@click.command("report")
@click.option("--out", "out", default="report.html", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (its folder is created).")
@flag("--no-plots", "Tables only: draw no plots.")
@json_option
@click.pass_obj
def report_command(app: App, out: Path, no_plots: bool, as_json: bool) -> int:
    """Write one self-contained HTML page about the store: tables and plots.

    Movies per year, genre frequencies, the genre co-occurrence heatmap, poster status,
    IMDb coverage and agreement per genre, and the run history. Plots need matplotlib
    (pip install 'reelset[plot]'); without it the page has the tables and says so.

    \b
    Examples:
      reelset report
      reelset report --out reports/store.html --json
    """
    from reelset.explore.report import build_report
    from reelset.files import write_text

    seed = app.settings.build.seed
    with app.open_store() as store:
        report = build_report(store, seed=seed, plots=not no_plots)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, report.html)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    data: dict[str, object] = {
        "path": str(out),
        "movies": report.movies,
        "sections": report.sections,
        "plots": report.plots,
    }
    if report.plots_skipped:
        data["note"] = report.plots_skipped
    print_summary(f"report written to {out}", data, as_json=as_json)
    return 0
