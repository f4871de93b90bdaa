"""``reelset report``: every section's numbers against our own, the heatmap exactly as the
builder draws it, a self-contained and deterministic page, tables only without matplotlib,
and the same report on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reelset.cli import main as cli_main
from reelset.config import load_settings
from reelset.dataset.cooccurrence import cluster_order, draw_heatmap
from reelset.storage import Store, schema
from tests.dataset.conftest import TMDB_GENRES, poster_row, random_movies
from tests.explore.conftest import Scraped
from tests.explore.expected import Facts

SECTIONS = ["movies-per-year", "genre-frequencies", "cooccurrence", "posters", "imdb", "runs"]


class Page(HTMLParser):
    """The tables (by id, rows of cell texts), images and sections of a report."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: dict[str, bytes] = {}
        self.sections: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a["id"]
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            src = a["src"] or ""
            assert src.startswith("data:image/png;base64,"), src[:40]
            self.images[a["alt"] or ""] = base64.b64decode(src.split(",", 1)[1])
        elif tag == "section":
            self.sections.append(a["id"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def body(self, table: str) -> list[list[str]]:
        """A table's rows below its header."""
        return self.tables[table][1:]


def texts(rows: list[tuple[Any, ...]]) -> list[list[str]]:
    return [["" if v is None else str(v) for v in row] for row in rows]


def report(config: Path, out: Path, capsys: pytest.CaptureFixture[str],
           *more: str) -> dict[str, Any]:
    capsys.readouterr()
    code = cli_main(["--config", str(config), "report", "--out", str(out), "--json", *more])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)  # type: ignore[no-any-return]


def check_sections(page: Page, facts: Facts, agreement: dict[int, tuple[int, int, int]]) -> None:
    """Every section's tables hold our numbers."""
    assert page.sections == SECTIONS
    assert page.body("movies_per_year") == texts(facts.movies_per_year())
    assert page.body("genre_frequencies") == texts(facts.genre_frequencies())
    assert page.body("genre_pairs") == texts(facts.genre_pairs())
    assert page.body("poster_status") == texts(facts.poster_status())
    if facts.rejected_errors:
        assert page.body("rejected_posters_by_reason") == texts(
            facts.rejected_posters_by_reason()
        )
    assert page.body("imdb_coverage") == texts(facts.imdb_coverage())
    header, *rows = page.tables["genre_disagreement"]
    assert header[:5] == ["genre_id", "genre", "tmdb", "imdb", "both"]
    assert {int(r[0]): (int(r[2]), int(r[3]), int(r[4])) for r in rows} == agreement
    assert [r[0] for r in page.body("run_history")] == [
        str(i) for i in sorted(facts.run_ids, reverse=True)
    ]
    # The co-occurrence counts, genres in the builder's co-clustered order.
    ids = sorted({g for gs in facts.movie_genres.values() for g in gs})
    counts = np.zeros((len(ids), len(ids)), dtype=np.int64)
    for gs in facts.movie_genres.values():
        for a in gs:
            for b in gs:
                counts[ids.index(a), ids.index(b)] += 1
    header, *rows = page.tables["cooccurrence_counts"]
    order = [int(i) for i in cluster_order(counts, 42)]
    names = [facts.genres[ids[i]] for i in order]
    assert header == ["genre", *names]
    assert rows == [[facts.genres[ids[i]], *(str(counts[i, j]) for j in order)] for i in order]


def test_report_sections_hold_our_numbers(
    scraped: Scraped, seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "store.html"
    summary = report(scraped.config, out, capsys)
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    facts = scraped.facts()
    assert seed == 42  # the default the counts check orders by
    check_sections(page, facts, facts.agreement(load_settings(scraped.config)))
    assert summary["path"] == str(out) and summary["movies"] == len(facts.movies)
    assert summary["sections"] == SECTIONS
    header, *runs = page.tables["run_history"]
    assert "counts" not in header  # spread into columns instead
    scrape = [dict(zip(header, r, strict=True)) for r in runs if r[1] == "scrape"]
    assert [r["movies_failed"] for r in scrape] == [str(len(scraped.failing_ids))]

    # Plots: PNGs embedded in the page, the heatmap byte for byte the builder's.
    assert summary["plots"] == len(page.images) == 5
    for png in page.images.values():
        assert Image.open(io.BytesIO(png)).format == "PNG"
    ids = sorted({g for gs in facts.movie_genres.values() for g in gs})
    counts = np.zeros((len(ids), len(ids)), dtype=np.int64)
    for gs in facts.movie_genres.values():
        for a in gs:
            for b in gs:
                counts[ids.index(a), ids.index(b)] += 1
    builder = tmp_path / "builder.png"
    draw_heatmap(counts, [facts.genres[i] for i in ids], builder, seed=seed,
                 title="Store (active movies): P(column genre | row genre)")
    assert page.images["genre co-occurrence"] == builder.read_bytes()

    # Self-contained, no local path, deterministic.
    assert 'src="http' not in html
    assert re.findall(r'(?:src|href)="(?!#|data:image/png;base64,)', html) == []
    assert str(scraped.db_path.parent) not in html and str(tmp_path) not in html
    again = tmp_path / "again.html"
    report(scraped.config, again, capsys)
    assert again.read_bytes() == out.read_bytes()


def test_report_without_matplotlib_has_the_tables_and_one_note(
    scraped: Scraped, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    code = (
        "import sys; sys.modules['matplotlib'] = None; from reelset.cli import main; "
        f"sys.exit(main(['--config', {str(scraped.config)!r}, 'report', '--out', {str(out)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "plots skipped: matplotlib is not installed (pip install 'reelset[plot]')" in (
        done.stdout
    )
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    assert page.images == {}
    assert html.count("plots skipped") == 1
    facts = scraped.facts()
    check_sections(page, facts, facts.agreement(load_settings(scraped.config)))


def test_report_goes_to_report_html_here_by_default(
    scraped: Scraped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli_main(["--config", str(scraped.config), "report", "--no-plots"]) == 0
    assert capsys.readouterr().out.startswith("report written to report.html")
    assert Page((tmp_path / "report.html").read_text(encoding="utf-8")).images == {}


def test_report_to_an_unwritable_place_is_one_line(
    scraped: Scraped, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli_main(["--config", str(scraped.config), "report", "--out",
                     str(blocker / "report.html"), "--no-plots"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reelset: error: cannot write {blocker / 'report.html'}")
    assert err.count("\n") == 1


def _fill(store: Store, tmp_path: Path) -> None:
    """Movies, posters of each status, IMDb titles (through `reelset imdb import`)."""
    from reelset.storage import Genre

    store.movies.upsert_genres(Genre(i, n) for i, n in TMDB_GENRES.items())
    movies = random_movies(80, seed=7)
    store.movies.upsert(movies)
    statuses = ["ok", "ok", "ok", "rejected", "failed", "missing"]
    rows = []
    for m in movies[:60]:
        row = poster_row(m.tmdb_id, status=statuses[m.tmdb_id % len(statuses)])
        row["error"] = None
        if row["status"] == "rejected":
            row["error"] = "not_an_image: html" if m.tmdb_id % 12 == 3 else "too_small: 20x30"
        rows.append(row)
    with store.write() as conn:
        conn.execute(schema.posters.insert(), rows)
        conn.execute(schema.movies.update().where(schema.movies.c.tmdb_id == 2)
                     .values(status="gone"))
    to_imdb = {v: k for k, v in reversed(list(load_settings(None).genres.imdb_to_tmdb.items()))}
    basics = ["tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear"
              "\truntimeMinutes\tgenres"]
    for m in movies[::2]:
        names = [to_imdb[g] for g in m.genre_ids if g in to_imdb][1:] or ["Biography"]
        basics.append(f"{m.imdb_id}\tmovie\tT\tT\t0\t2000\t\\N\t90\t{','.join(names)}")
    folder = tmp_path / "imdb"
    folder.mkdir()
    (folder / "title.basics.tsv.gz").write_bytes(gzip.compress("\n".join(basics).encode()))


def test_the_same_report_on_sqlite_and_postgresql(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(store, tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nurl = "{store.url}"\n')
    capsys.readouterr()
    assert cli_main(["--config", str(config), "-q", "imdb", "import",
                     str(tmp_path / "imdb")]) == 0
    out = tmp_path / "report.html"
    summary = report(config, out, capsys)
    facts = Facts.load(store.url)
    assert summary["movies"] == len(facts.movies) == 79
    page = Page(out.read_text(encoding="utf-8"))
    agreement = facts.agreement(load_settings(config))
    assert agreement
    check_sections(page, facts, agreement)
    assert page.body("rejected_posters_by_reason") == texts(facts.rejected_posters_by_reason())
    assert len(page.body("rejected_posters_by_reason")) == 2
