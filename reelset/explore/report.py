"""``reelset report``: one self-contained HTML page about the store.

Sections: movies per year, genre frequencies, the genre co-occurrence heatmap (ordered
and drawn by :mod:`reelset.dataset.cooccurrence`, as the builder draws it), poster status,
IMDb coverage and agreement per genre, and the run history. Every number is in an HTML
table (``<table id="<query name>">``, the canned query of :mod:`.queries` it shows);
plots are matplotlib PNGs embedded as ``data:`` URIs, so the page loads nothing from
anywhere. Without matplotlib (the ``plot`` extra) the page has the tables and a note.

The page depends only on the store and the seed: no date, path or URL of the store goes
in, and the same store gives a byte-identical page.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import html
import io
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from reelset import __version__
from reelset.explore.queries import Result, run_queries
from reelset.storage import Store

PLOT_INSTALL_HINT = "pip install 'reelset[plot]'"
RUNS_SHOWN = 50
"""The newest runs the report lists."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1, h2 { font-weight: 600; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; } img { max-width: 100%; display: block; margin: 1em 0; }
.note { color: #555; font-style: italic; } nav a { margin-right: 1em; }
"""


@dataclass
class Report:
    """The page and what went into it."""

    html: str
    movies: int
    sections: list[str]
    plots: int = 0
    plots_skipped: str | None = None


def _matplotlib_missing() -> str | None:
    """Why plots cannot be drawn, or ``None`` when matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"plots skipped: matplotlib is not installed ({PLOT_INSTALL_HINT})"
    return None


def _png(draw: Callable[[Any], None], *, size: tuple[float, float]) -> bytes:
    """A PNG of one matplotlib figure drawn by ``draw(ax)`` (no timestamp in the file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _bars(
    labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
    horizontal: bool = False,
) -> bytes:
    """A bar chart (horizontal bars list the first label at the top)."""

    def draw(ax: Any) -> None:
        positions = np.arange(len(labels))
        if horizontal:
            ax.barh(positions, values, color="#4477aa")
            ax.set_yticks(positions, labels, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(xlabel)
        else:
            ax.bar(positions, values, color="#4477aa")
            step = max(1, len(labels) // 30)
            ax.set_xticks(positions[::step], list(labels)[::step], rotation=90, fontsize=8)
            ax.set_ylabel(xlabel)
        ax.set_title(title, fontsize=10)

    height = max(3.0, 0.25 * len(labels) + 1.0) if horizontal else 4.0
    return _png(draw, size=(9.0, height))


def _heatmap(counts: npt.NDArray[np.int64], names: list[str], seed: int) -> bytes:
    """The builder's P(column | row) heatmap of the store's active movies, as PNG bytes."""
    from reelset.dataset.cooccurrence import draw_heatmap

    with tempfile.TemporaryDirectory(prefix="reelset-report-") as folder:
        path = Path(folder) / "cooccurrence.png"
        draw_heatmap(counts, names, path, seed=seed,
                     title="Store (active movies): P(column genre | row genre)")
        return path.read_bytes()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cell(value: Any) -> tuple[str, bool]:
    """A value as table text, and whether it is a number (right-aligned)."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, decimal.Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return (f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"), True
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), False
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True, ensure_ascii=False), False
    return str(value), False


def html_table(table_id: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table with a header row; ``table_id`` names it for readers and tests."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for value in row:
            shown, numeric = _cell(value)
            css = ' class="n"' if numeric else ""
            cells.append(f"<td{css}>{html.escape(shown)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table id="{html.escape(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _result_table(name: str, result: Result) -> str:
    if not result.rows:
        return f'<p class="note" id="{name}-empty">No rows.</p>'
    return html_table(name, result.columns, result.rows)


def _without_empty_columns(result: Result, *, keep: Sequence[str], drop: Sequence[str]) -> Result:
    """The result less the ``drop`` columns and those empty in every row (bar ``keep``)."""
    chosen = [
        i for i, name in enumerate(result.columns)
        if name not in drop and (name in keep or any(r[i] is not None for r in result.rows))
    ]
    return Result(
        tuple(result.columns[i] for i in chosen),
        [tuple(row[i] for i in chosen) for row in result.rows],
    )


def cooccurrence_counts(store: Store) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The genre count matrix of the active movies (genres by id) and the genre names."""
    from reelset.dataset.cooccurrence import count_matrix

    with store.read() as conn:
        pairs = conn.execute(
            text("SELECT tmdb_id, genre_id, genre FROM movie_genres_named "
                 "ORDER BY tmdb_id, genre_id")
        ).all()
    names_by_id = dict(sorted({(int(g), str(n)) for _, g, n in pairs}))
    genre_ids = list(names_by_id)
    movie_ids = sorted({int(m) for m, _, _ in pairs})
    column = {g: j for j, g in enumerate(genre_ids)}
    row = {m: i for i, m in enumerate(movie_ids)}
    y = np.zeros((len(movie_ids), len(genre_ids)), dtype=np.int8)
    for tmdb_id, genre_id, _ in pairs:
        y[row[int(tmdb_id)], column[int(genre_id)]] = 1
    return count_matrix(y), [names_by_id[g] for g in genre_ids]


def _section(anchor: str, title: str, parts: list[str]) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{"".join(parts)}</section>'


def _note(message: str) -> str:
    return f'<p class="note">{html.escape(message)}</p>'


def build_report(store: Store, *, seed: int, plots: bool = True) -> Report:
    """The report of ``store`` (``seed``: the heatmap's co-clustering, as the builder's).

    ``plots=False``, or matplotlib missing, gives the tables only, with a note saying so.
    """
    results = run_queries(store)
    skipped = "plots skipped (--no-plots)" if not plots else _matplotlib_missing()
    drawing = skipped is None
    images = 0

    def picture(make: Callable[[], bytes], alt: str) -> str:
        nonlocal images
        if not drawing:
            return ""
        images += 1
        return _img(make(), alt)

    sections: list[tuple[str, str, list[str]]] = []

    per_year = results["movies_per_year"]
    dated = [(r[0], r[1]) for r in per_year.rows if r[0] is not None]
    sections.append(("movies-per-year", "Movies per year", [
        picture(lambda: _bars([str(y) for y, _ in dated], [n for _, n in dated],
                              title="Active movies per release year", xlabel="movies"),
                "bar chart of movies per year") if dated else "",
        _result_table("movies_per_year", per_year),
    ]))

    frequencies = results["genre_frequencies"]
    sections.append(("genre-frequencies", "Genre frequencies", [
        picture(lambda: _bars([r[1] for r in frequencies.rows], [r[2] for r in frequencies.rows],
                              title="Active movies per TMDB genre", xlabel="movies",
                              horizontal=True),
                "bar chart of genre frequencies") if frequencies.rows else "",
        _result_table("genre_frequencies", frequencies),
    ]))

    counts, names = cooccurrence_counts(store)
    co_parts: list[str] = []
    if names:
        from reelset.dataset.cooccurrence import cluster_order

        order = [int(i) for i in cluster_order(counts, seed)]
        ordered = [names[i] for i in order]
        co_parts.append(_note(
            "P(column genre | row genre) over the active movies; genres ordered by spectral "
            f"co-clustering of the count matrix (seed {seed}), as the dataset builder draws it. "
            "The table gives the counts: movies having both genres (the diagonal: the genre's "
            "movies)."
        ))
        co_parts.append(picture(lambda: _heatmap(counts, names, seed), "genre co-occurrence"))
        co_parts.append(html_table(
            "cooccurrence_counts", ["genre", *ordered],
            [[names[i], *(int(counts[i, j]) for j in order)] for i in order],
        ))
    else:
        co_parts.append(_note("No movie has a genre yet."))
    co_parts.append("<h3>Most frequent genre pairs</h3>")
    co_parts.append(_result_table("genre_pairs", results["genre_pairs"]))
    sections.append(("cooccurrence", "Genre co-occurrence", co_parts))

    poster_status = results["poster_status"]
    sections.append(("posters", "Poster status", [
        picture(lambda: _bars([r[0] for r in poster_status.rows],
                              [r[1] for r in poster_status.rows],
                              title="Active movies by poster status", xlabel="movies",
                              horizontal=True),
                "bar chart of poster status") if poster_status.rows else "",
        _result_table("poster_status", poster_status),
        "<h3>Rejected posters by reason</h3>",
        _result_table("rejected_posters_by_reason", results["rejected_posters_by_reason"]),
    ]))

    agreement = results["genre_disagreement"]
    rated = [r for r in agreement.rows if r[7] is not None]
    sections.append(("imdb", "IMDb coverage and agreement per genre", [
        _result_table("imdb_coverage", results["imdb_coverage"]),
        _note("Agreement per TMDB genre over the movies with genres from both TMDB and IMDb "
              "(IMDb's mapped through genre_map); Jaccard = both / either, lowest first."),
        picture(lambda: _bars([r[1] for r in rated], [float(r[7]) for r in rated],
                              title="TMDB vs IMDb agreement per genre (Jaccard)",
                              xlabel="Jaccard index", horizontal=True),
                "bar chart of agreement per genre") if rated else "",
        _result_table("genre_disagreement", agreement),
    ]))

    runs = results["run_history"]
    shown = _without_empty_columns(
        Result(runs.columns, runs.rows[:RUNS_SHOWN]), keep=("run_id", "command", "status"),
        drop=("counts",),
    )
    run_parts = [_result_table("run_history", shown)]
    if len(runs.rows) > RUNS_SHOWN:
        run_parts.insert(0, _note(f"The {RUNS_SHOWN} newest of {len(runs.rows)} runs."))
    sections.append(("runs", "Scrape run history", run_parts))

    coverage = results["imdb_coverage"].dicts()[0]
    movies = int(coverage["movies"])
    header = [
        "<h1>reelset store report</h1>",
        _note(f"{movies} active movies; {store.dialect} store; reelset {__version__}."),
    ]
    if skipped:
        header.append(f'<p class="note" id="plots-skipped">{html.escape(skipped)}.</p>')
    nav = "".join(
        f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title, _ in sections
    )
    body = "".join(_section(*s) for s in sections)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>reelset store report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(header)}<nav>{nav}</nav>{body}"
        "<footer>" + _note(
            "This product uses the TMDB API but is not endorsed or certified by TMDB. "
            "Information courtesy of IMDb (imdb.com), used with permission; IMDb's datasets "
            "are for personal and non-commercial use only."
        ) + "</footer></body></html>\n"
    )
    return Report(
        html=page, movies=movies, sections=[a for a, _, _ in sections], plots=images,
        plots_skipped=skipped,
    )
