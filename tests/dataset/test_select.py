"""Dedupe and filter rules, each on a crafted store, each counted under its own rule."""

from __future__ import annotations

import pytest

from reelset.dataset.select import RULES, normalize_text, normalize_title, word_counts
from tests.dataset.conftest import Crafted, kept_ids, movie, plan_for, poster_row, removed_rules

SAME = "A retired detective must confront a buried family secret in a remote village."


@pytest.fixture
def cases(crafted: Crafted) -> Crafted:
    """One or two movies per rule (ids in the comments below)."""
    crafted.add(
        [
            movie(1),  # kept
            movie(2),  # gone
            # duplicate IMDb id: 10 more popular than 11
            movie(10, imdb_id="tt0000777", popularity=5.0),
            movie(11, imdb_id="tt0000777", popularity=1.0),
            # completeness beats popularity: 13 has a tagline, 12 does not
            movie(12, imdb_id="tt0000888", popularity=100.0),
            movie(13, imdb_id="tt0000888", popularity=1.0, tagline="Some secrets never die."),
            # IMDb ids compare trimmed and case-insensitively
            movie(14, imdb_id="tt0000999", popularity=2.0),
            movie(15, imdb_id=" TT0000999 ", popularity=1.0),
            # the same title + year + overview, spelled differently
            movie(20, title="The Matrix", release_date=None, overview=SAME, popularity=3.0),
            movie(21, title="the  matrix!", release_date=None, overview="  " + SAME.upper()),
            # the same overview under different titles: lower tmdb_id wins a full tie
            movie(30, title="Alpha", overview="Two sisters " + SAME),
            movie(31, title="Beta", overview="two   SISTERS " + SAME),
            # the same title and year, different overviews: not duplicates
            movie(40, title="Heat", imdb_id=None),
            movie(41, title="Heat", imdb_id=None),
            # placeholders: removed by the filter, not as duplicates of one another
            movie(50, overview="No overview found."),
            movie(51, overview="No overview found."),
            movie(52, overview="  no OVERVIEW   found. "),
            movie(60, overview=None),
            movie(61, overview=" \n\t "),
            movie(70, overview="Too short to use."),
            movie(80, genre_ids=()),
            movie(90, adult=True),
            movie(100, original_language="fr"),
            movie(101, original_language=None),
            movie(110),  # no poster row
            movie(111),  # poster failed
            movie(120, genre_ids=(37,)),  # its only genre is too rare
            movie(121, genre_ids=(18, 37)),  # keeps Drama
        ]
    )
    crafted.store.movies.mark_gone([2])
    ids = [1, 10, 11, 12, 13, 14, 15, 20, 21, 30, 31, 40, 41, 50, 51, 52, 60, 61, 70, 80, 90,
           100, 101, 120, 121]
    crafted.posters([poster_row(i) for i in ids] + [poster_row(111, status="failed")])
    return crafted


def test_every_rule_removes_its_movies_and_counts_them(cases: Crafted) -> None:
    plan = plan_for(cases, languages=["en"], require_poster=True, min_genre_count=3)
    rules = removed_rules(plan)
    assert rules == {
        2: "status_gone",
        11: "duplicate_imdb_id",
        12: "duplicate_imdb_id",
        15: "duplicate_imdb_id",
        21: "duplicate_title_year_overview",
        31: "duplicate_overview",
        50: "overview_placeholder",
        51: "overview_placeholder",
        52: "overview_placeholder",
        60: "overview_empty",
        61: "overview_empty",
        70: "overview_too_short",
        80: "no_genres",
        90: "adult",
        100: "language",
        101: "language",
        110: "no_poster",
        111: "no_poster",
        120: "no_label",
    }
    assert kept_ids(plan) == {1, 10, 13, 14, 20, 30, 40, 41, 121}
    counts = plan.manifest["removed"]
    assert list(counts) == list(RULES)
    for rule, n in counts.items():
        assert n == sum(1 for r in rules.values() if r == rule), rule
    dup_of = dict(zip(plan.removed.column("tmdb_id").to_pylist(),
                      plan.removed.column("duplicate_of").to_pylist(), strict=True))
    assert (dup_of[11], dup_of[12], dup_of[15], dup_of[21], dup_of[31]) == (10, 13, 14, 20, 30)
    assert dup_of[50] is None
    assert [d["name"] for d in plan.manifest["labels"]["dropped"]] == ["Western"]
    titles = dict(zip(plan.removed.column("tmdb_id").to_pylist(),
                      plan.removed.column("title").to_pylist(), strict=True))
    assert titles[2] == "Movie 2"  # gone movies are named too


def test_rules_turned_off_keep_their_movies(cases: Crafted) -> None:
    plan = plan_for(
        cases,
        dedupe_imdb_id=False,
        dedupe_title_year_overview=False,
        dedupe_overview=False,
        drop_adult=False,
        require_genres=False,
        min_overview_words=0,
        placeholder_overviews=[],
    )
    rules = removed_rules(plan)
    assert set(rules.values()) == {"status_gone", "overview_empty"}
    kept = kept_ids(plan)
    assert {11, 12, 15, 21, 31, 50, 51, 52, 70, 80, 90, 100, 101, 110, 111, 120} <= kept
    # Without require_genres a movie without genres stays, with an all-zero label vector.
    table = next(t for t in plan.splits.values() if 80 in t.column("tmdb_id").to_pylist())
    row = table.column("tmdb_id").to_pylist().index(80)
    assert sum(table.column("labels")[row].as_py()) == 0


def test_title_rule_off_leaves_the_pair_to_the_overview_rule(cases: Crafted) -> None:
    plan = plan_for(cases, dedupe_title_year_overview=False)
    assert removed_rules(plan)[21] == "duplicate_overview"


def test_placeholder_list_is_configurable(cases: Crafted) -> None:
    plan = plan_for(cases, placeholder_overviews=["Too short to use."], min_overview_words=0)
    rules = removed_rules(plan)
    assert rules[70] == "overview_placeholder"
    # "No overview found." is no longer a placeholder: the three are duplicates now.
    assert rules[51] == "duplicate_overview" and rules[52] == "duplicate_overview"
    assert 50 in kept_ids(plan)


def test_normalization() -> None:
    import pyarrow as pa

    text = normalize_text(pa.array(["  Ａ  b\tC ", None, " "]))
    assert text.to_pylist() == ["a b c", None, ""]
    titles = normalize_title(pa.array(["Léon: The Professional", "Alien³", "Alien 3"]))
    assert titles.to_pylist() == ["léon the professional", "alien3", "alien 3"]
    words = word_counts(normalize_text(pa.array(["one two \t three ", None, " ", "one"])))
    assert words.tolist() == [3, 0, 0, 1]


@pytest.mark.parametrize("share", [0.0, 0.01, 0.5, 1.0])
def test_normalization_rewrites_only_what_needs_it(share: float) -> None:
    # Whatever share of the texts has whitespace to collapse, the result is the plain
    # definition: NFKC, lower case, every run of whitespace one space, trimmed.
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    rng = random.Random(int(share * 100))
    texts: list[str | None] = []
    for i in range(2000):
        words = [rng.choice(["Ａb", "ﬁlm", "Ⅳ", "río", "x", "Alien³", "NOIR"]) for _ in range(5)]
        gaps = [rng.choice(["  ", "\t", "\n", " \r\n ", "\f"]) if rng.random() < share else " "
                for _ in words]
        texts.append(None if i % 97 == 0 else "".join(w + g for w, g in zip(words, gaps,
                                                                            strict=True)))
    values = pa.chunked_array([texts[:700], texts[700:]])
    expected = [
        None if t is None else " ".join(t.split(None)).lower() for t in
        pc.utf8_normalize(values, "NFKC").to_pylist()
    ]
    assert normalize_text(values).to_pylist() == expected
