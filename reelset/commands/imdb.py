"""``reelset imdb``: download IMDb's datasets, import them, show coverage.

The stage modules are imported inside the commands: they pull in numpy, requests and
cinemagoer, which other commands (and ``--help``) should not pay for.
"""

from __future__ import annotations

from pathlib import Path

import click

from reelset.commands.app import App, flag, json_option
from reelset.console import print_summary
from reelset.errors import UsageError

_file = click.Path(dir_okay=False, path_type=Path)


@click.group("imdb")
def imdb_group() -> None:
    """IMDb's official datasets (genres, ratings, votes) into the store.

    \b
    Examples:
      reelset imdb download --to data/imdb
      reelset imdb import data/imdb
    """


@imdb_group.command("download")
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to download into (created if missing).",
)
@click.option(
    "--files",
    "extra",
    default="",
    metavar="A,B",
    help="More dataset files to fetch besides [imdb] files (e.g. title.akas.tsv.gz).",
)
@json_option
@click.pass_obj
def imdb_download(app: App, directory: Path, extra: str, as_json: bool) -> int:
    """Download IMDb's dataset files: resumable, retried, verified before use.

    \b
    Examples:
      reelset imdb download --to data/imdb
      reelset imdb download --to data/imdb --files title.akas.tsv.gz
    """
    from reelset.imdb.download import check_names, download_datasets

    cfg = app.settings.imdb
    names = check_names([*cfg.files, *extra.split(",")])
    results = download_datasets(
        cfg.datasets_base_url,
        names,
        directory,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        backoff_initial_s=cfg.backoff_initial_s,
    )
    print_summary(
        f"downloaded into {directory}",
        {
            r.name: {
                "status": r.status,
                "bytes": r.size,
                "received": r.bytes_received,
                "attempts": r.attempts,
            }
            for r in results
        },
        as_json=as_json,
    )
    return 0


@imdb_group.command("import")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--basics", type=_file, help="A title.basics.tsv(.gz) file.")
@click.option("--ratings", type=_file, help="A title.ratings.tsv(.gz) file (optional).")
@flag(
    "--from-cinemagoer",
    "Instead of TSV files: the titles of the store's movies' IMDb ids, read from the "
    "cinemagoer s3 database at [imdb] cinemagoer_uri.",
)
@json_option
@click.pass_obj
def imdb_import(
    app: App,
    directory: Path | None,
    basics: Path | None,
    ratings: Path | None,
    from_cinemagoer: bool,
    as_json: bool,
) -> int:
    """Import IMDb titles (of [imdb] title_types) with genres and ratings into the store.

    DIRECTORY holds title.basics.tsv.gz (or .tsv) and, optionally, title.ratings.tsv.gz.
    Safe to run again: unchanged titles are not written. Malformed rows are counted,
    sampled in the summary and skipped.

    \b
    Examples:
      reelset imdb import data/imdb
      reelset imdb import --basics title.basics.tsv.gz --json
    """
    from reelset.imdb.cinemagoer import import_from_cinemagoer
    from reelset.imdb.importer import import_tsv, resolve_import_files

    cfg = app.settings.imdb
    if from_cinemagoer:
        if directory is not None or basics is not None or ratings is not None:
            raise UsageError("--from-cinemagoer takes no folder and no --basics/--ratings")
        with app.open_store() as store:
            report = import_from_cinemagoer(
                store,
                cfg.cinemagoer_uri,
                title_types=list(cfg.title_types),
                batch_size=cfg.batch_size,
            )
    else:
        basics_path, ratings_path = resolve_import_files(directory, basics, ratings)
        with app.open_store() as store:
            report = import_tsv(
                store,
                basics_path,
                ratings_path,
                title_types=list(cfg.title_types),
                batch_size=cfg.batch_size,
            )
    print_summary("imdb import", report.summary(), as_json=as_json)
    return 0


@imdb_group.command("coverage")
@json_option
@click.pass_obj
def imdb_coverage_command(app: App, as_json: bool) -> int:
    """How many TMDB movies in the store have a matching IMDb title.

    \b
    Example:
      reelset imdb coverage --json
    """
    from reelset.storage.imdb import imdb_coverage, imdb_title_count

    with app.open_store() as store:
        data = {"imdb_titles": imdb_title_count(store), **imdb_coverage(store).as_dict()}
    print_summary("imdb coverage", data, as_json=as_json)
    return 0
