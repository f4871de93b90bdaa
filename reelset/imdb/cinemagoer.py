"""IMDb titles from a cinemagoer ``s3`` database, for users who already keep one.

cinemagoer (the maintained IMDbPY) builds such a database from IMDb's same TSV files
with its ``s32cinemagoer.py`` script. Titles are read through its public API,
``Cinemagoer('s3', uri=...).get_movie(id)``, for the IMDb ids TMDB movies in the store
link to. In s3 mode a Movie carries ``kind`` (``titleType``, with ``tvEpisode`` etc.
renamed: ``episode``, ``tv series`` ...), ``title``, ``original title``, ``adult``,
``year`` (text, ``1994`` or ``1994-1998``), ``runtimes`` (a one-element list),
``genres`` (lower-cased: ``sci-fi``), ``rating`` and ``votes``.

Cinemagoer's ``get_movie`` reads every table of the database (crew, episodes,
principals, akas, names), so the database must have been built from all of IMDb's
files; one built from a subset is refused with a one-line error naming what is missing.
For SQLite URIs cinemagoer uses the standard library's sqlite3; other URIs go through
SQLAlchemy (2.x works with cinemagoer 2026.8).

Values are held to the TSV import's limits (:mod:`reelset.imdb.tsv`): control characters
are stripped from text, and a year, runtime, rating or vote count out of range is
dropped (``None``), so a damaged database cannot put anything into the store that the
TSV import would refuse; a title without a rating keeps the one stored.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reelset.config import mask_url
from reelset.console import progress
from reelset.errors import ConfigError, ReelsetError, error_line
from reelset.imdb import tsv  # the same limits and cleaning as the TSV import
from reelset.imdb.importer import RUN_COMMAND, ImportReport
from reelset.runs import IMDB_LOCK, recorded_run
from reelset.storage import Store
from reelset.storage.imdb import ImdbTitle, imdb_coverage, movie_imdb_ids, upsert_imdb_titles

log = logging.getLogger(__name__)

_IMDB_ID = re.compile(r"tt(\d{1,10})")
_YEAR = re.compile(r"(\d{4})(?!\d)")
# IMDb's genre names; cinemagoer lower-cases them, the TSV import keeps IMDb's spelling.
IMDB_GENRES = (
    "Action",
    "Adult",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Film-Noir",
    "Game-Show",
    "History",
    "Horror",
    "Music",
    "Musical",
    "Mystery",
    "News",
    "Reality-TV",
    "Romance",
    "Sci-Fi",
    "Short",
    "Sport",
    "Talk-Show",
    "Thriller",
    "War",
    "Western",
)
_GENRE_SPELLING = {g.lower(): g for g in IMDB_GENRES}


class CinemagoerError(ReelsetError):
    """The cinemagoer database cannot be used (exit 2)."""

    exit_code = 2


def imdb_genre(name: str) -> str:
    """IMDb's spelling of a genre cinemagoer lower-cased (``sci-fi`` -> ``Sci-Fi``)."""
    known = _GENRE_SPELLING.get(name.lower())
    if known:
        return known
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def _title_type(kind: str) -> str:
    from imdb.parser.s3.utils import KIND

    reverse = {v: k for k, v in KIND.items()}
    return reverse.get(kind, kind)


def _int(value: Any, low: int, high: int) -> int | None:
    """A whole number between ``low`` and ``high`` from an int or a digit string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        # The length check first: int() of thousands of digits raises ValueError.
        if not (text.isdigit() and text.isascii() and len(text) <= len(str(high))):
            return None
        value = int(text)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def _rating(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # Compared before float(): float() of a huge int overflows; NaN fails the comparison.
    return float(value) if 0 <= value <= tsv.MAX_RATING else None


def _text(value: Any) -> str | None:
    return (tsv.clean_text(str(value)) or None) if value else None


def _name(value: Any) -> str | None:
    name = _text(value)
    return name if name is not None and len(name) <= tsv.MAX_NAME_CHARS else None


def title_from_movie(imdb_id: str, movie: Any) -> ImdbTitle | None:
    """An :class:`ImdbTitle` from a cinemagoer s3 Movie, or ``None`` when it was not found.

    A Movie without a usable ``kind`` counts as not found.
    """
    kind = _name(movie.get("kind"))
    if kind is None:
        return None  # cinemagoer returns an (almost) empty Movie for an unknown id
    title_type = _name(_title_type(kind))
    if title_type is None:
        return None
    year_match = _YEAR.match(str(movie.get("year") or ""))
    runtimes = movie.get("runtimes")
    runtime = runtimes[0] if isinstance(runtimes, list) and runtimes else None
    adult = movie.get("adult")
    listed = movie.get("genres")
    genres = {_name(g) for g in listed if isinstance(g, str)} if isinstance(listed, list) else ()
    return ImdbTitle(
        imdb_id=imdb_id,
        title_type=title_type,
        primary_title=_text(movie.get("title")),
        original_title=_text(movie.get("original title")),
        is_adult=None if adult is None else bool(adult),
        start_year=_int(year_match.group(1), tsv.MIN_YEAR, tsv.MAX_YEAR) if year_match else None,
        runtime_minutes=_int(runtime, 0, tsv.MAX_RUNTIME_MINUTES),
        average_rating=_rating(movie.get("rating")),
        num_votes=_int(movie.get("votes"), 0, tsv.MAX_VOTES),
        genres=tuple(sorted({imdb_genre(g) for g in genres if g is not None})),
    )


@contextmanager
def _quiet_cinemagoer() -> Iterator[None]:
    # cinemagoer logs every exception at CRITICAL with a traceback before re-raising it;
    # reelset reports errors itself, in one line.
    logger = logging.getLogger("imdbpy")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def open_cinemagoer(uri: str) -> Any:
    """A cinemagoer s3 access system on ``uri`` (raises :class:`CinemagoerError`)."""
    if not uri:
        raise ConfigError(
            "no cinemagoer database: set [imdb] cinemagoer_uri (e.g. sqlite:////path/imdb.db)"
        )
    try:
        from imdb import Cinemagoer
        from imdb.parser.s3.adapters import sqlite_path_from_uri
    except ImportError as exc:
        raise CinemagoerError(
            f"cinemagoer is not installed ({exc}): pip install 'reelset[cinemagoer]'"
        ) from None
    masked = mask_url(uri)
    if uri.startswith("sqlite:"):
        try:
            path = sqlite_path_from_uri(uri)
        except Exception as exc:
            raise CinemagoerError(f"cinemagoer database {masked}: {error_line(exc)}") from None
        # sqlite3 would silently create an empty database at a wrong path.
        if path != ":memory:" and not Path(path).is_file():
            raise CinemagoerError(f"cinemagoer database {masked}: no such file {path}")
    with _quiet_cinemagoer():
        try:
            return Cinemagoer("s3", uri=uri, reraiseExceptions=True)
        except Exception as exc:
            raise CinemagoerError(f"cinemagoer database {masked}: {error_line(exc)}") from None


def fetch_title(access: Any, imdb_id: str, uri: str) -> ImdbTitle | None:
    """Read one title through cinemagoer (``None`` when the database lacks it)."""
    from imdb._exceptions import IMDbDataAccessError

    match = _IMDB_ID.fullmatch(imdb_id)
    if not match:
        return None
    with _quiet_cinemagoer():
        try:
            movie = access.get_movie(match.group(1))
        except IMDbDataAccessError as exc:
            raise CinemagoerError(
                f"cinemagoer database {mask_url(uri)}: {error_line(exc)} (build it with "
                "s32cinemagoer.py from all of IMDb's dataset files)"
            ) from None
    return title_from_movie(imdb_id, movie)


def import_from_cinemagoer(
    store: Store, uri: str, *, title_types: list[str], batch_size: int
) -> ImportReport:
    """Fill ``imdb_titles`` from a cinemagoer s3 database for the store's movie IMDb ids.

    Like :func:`~reelset.imdb.importer.import_tsv`, a recorded run (command ``imdb
    import``) under the ``imdb`` lock; SIGINT/SIGTERM stop it after the titles read so
    far are written.
    """
    started = time.monotonic()
    access = open_cinemagoer(uri)
    ids = movie_imdb_ids(store)
    valid = [i for i in ids if _IMDB_ID.fullmatch(i)]
    report = ImportReport(source={"cinemagoer_uri": mask_url(uri)}, title_types=list(title_types))
    report.extra = {
        "store_imdb_ids": len(ids),
        "invalid_ids": len(ids) - len(valid),
        "not_in_cinemagoer": 0,
        "other_title_types": 0,
    }
    wanted = set(title_types)
    params = {"cinemagoer_uri": mask_url(uri), "title_types": list(title_types)}
    with recorded_run(store, RUN_COMMAND, params, locks=(IMDB_LOCK,)) as run:
        report.run_id = run.run_id
        batch: list[ImdbTitle] = []
        with progress("reading cinemagoer titles", len(valid), unit="titles") as bar:
            for imdb_id in valid:
                if run.stop.is_set():
                    break
                title = fetch_title(access, imdb_id, uri)
                bar.advance()
                if title is None:
                    report.extra["not_in_cinemagoer"] += 1
                    continue
                if title.title_type not in wanted:
                    report.extra["other_title_types"] += 1
                    continue
                if title.average_rating is not None:
                    report.with_rating += 1
                batch.append(title)
                if len(batch) >= batch_size:
                    report.written += upsert_imdb_titles(store, batch)
                    run.counts = report.counts()
                    batch = []
            if batch:
                report.written += upsert_imdb_titles(store, batch)
                run.counts = report.counts()
        run.raise_if_stopped()
        store.genre_map.sync()  # [genres] imdb_to_tmdb and the IMDb genres stored now
        report.coverage = imdb_coverage(store).as_dict()
        report.elapsed_s = time.monotonic() - started
        run.counts = report.counts()
    return report
