"""The JSON shapes TMDB uses for a movie, and the sandbox's stored movie record.

A *movie record* is what a catalog stores for one movie: exactly the body TMDB returns for
``/3/movie/{id}?append_to_response=keywords`` (the movie-details fields plus
``"keywords": {"keywords": [{"id", "name"}, ...]}``), optionally with the private key
``"_sandbox_poster_file"`` naming a real JPEG shipped with the catalog. The builders here
turn a record into the details, list-item, external-ids and keywords shapes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from reelset.sandbox.genres import genre_name

Movie = dict[str, Any]

POSTER_FILE_KEY = "_sandbox_poster_file"

# Field order of TMDB's movie-details body.
DETAIL_FIELDS: tuple[str, ...] = (
    "adult",
    "backdrop_path",
    "belongs_to_collection",
    "budget",
    "genres",
    "homepage",
    "id",
    "imdb_id",
    "origin_country",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "poster_path",
    "production_companies",
    "production_countries",
    "release_date",
    "revenue",
    "runtime",
    "spoken_languages",
    "status",
    "tagline",
    "title",
    "video",
    "vote_average",
    "vote_count",
)

# Field order of one entry of /movie/popular, /discover/movie and /find results.
LIST_ITEM_FIELDS: tuple[str, ...] = (
    "adult",
    "backdrop_path",
    "genre_ids",
    "id",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "poster_path",
    "release_date",
    "title",
    "video",
    "vote_average",
    "vote_count",
)

# Fields update_movie() accepts besides the details fields.
EXTRA_RECORD_FIELDS: tuple[str, ...] = ("keywords", "genre_ids", POSTER_FILE_KEY)


def _defaults(tmdb_id: int, title: str) -> Movie:
    return {
        "adult": False,
        "backdrop_path": None,
        "belongs_to_collection": None,
        "budget": 0,
        "genres": [],
        "homepage": "",
        "id": tmdb_id,
        "imdb_id": None,
        "origin_country": [],
        "original_language": "en",
        "original_title": title,
        "overview": "",
        "popularity": 0.0,
        "poster_path": None,
        "production_companies": [],
        "production_countries": [],
        "release_date": "",
        "revenue": 0,
        "runtime": 0,
        "spoken_languages": [],
        "status": "Released",
        "tagline": "",
        "title": title,
        "video": False,
        "vote_average": 0.0,
        "vote_count": 0,
        "keywords": {"keywords": []},
    }


def genres_from_ids(genre_ids: Iterable[int]) -> list[dict[str, Any]]:
    """``[{"id", "name"}]`` for genre ids, named as TMDB names them in movie details."""
    return [{"id": int(gid), "name": genre_name(int(gid))} for gid in genre_ids]


def normalize_keywords(value: Any) -> dict[str, list[dict[str, Any]]]:
    """Accept ``{"keywords": [...]}`` or a bare list and return TMDB's appended shape."""
    if isinstance(value, Mapping):
        value = value.get("keywords", [])
    if not isinstance(value, list):
        raise ValueError("keywords must be a list of {'id', 'name'} objects")
    return {"keywords": [{"id": int(k["id"]), "name": str(k["name"])} for k in value]}


def apply_fields(record: Movie, fields: Mapping[str, Any]) -> None:
    """Set ``fields`` on ``record`` in place, converting the convenience forms.

    ``genre_ids=[...]`` is turned into ``genres``; ``keywords`` may be a bare list. Unknown
    field names raise ``ValueError``; the id cannot be changed.
    """
    for name, value in fields.items():
        if name == "id":
            if int(value) != record["id"]:
                raise ValueError("a movie's id cannot be changed")
        elif name == "genre_ids":
            record["genres"] = genres_from_ids(value)
        elif name == "keywords":
            record["keywords"] = normalize_keywords(value)
        elif name in DETAIL_FIELDS or name == POSTER_FILE_KEY:
            record[name] = copy.deepcopy(value)
        else:
            raise ValueError(f"unknown movie field: {name!r}")


def movie_record(tmdb_id: int, title: str, **fields: Any) -> Movie:
    """Build a complete movie record with TMDB-like defaults for every field not given.

    Handy for tests that need odd movies, e.g. one whose genres TMDB's genre list does not
    know: ``movie_record(7, "X", genre_ids=[18, 99999])``.
    """
    record = _defaults(int(tmdb_id), title)
    apply_fields(record, fields)
    return record


def normalize_record(raw: Mapping[str, Any]) -> Movie:
    """Turn a loaded JSON object into a complete movie record (missing fields defaulted)."""
    if "id" not in raw:
        raise ValueError("movie record without an 'id'")
    tmdb_id = int(raw["id"])
    title = str(raw.get("title") or raw.get("original_title") or "")
    fields = {k: v for k, v in raw.items() if k in DETAIL_FIELDS or k in EXTRA_RECORD_FIELDS}
    if "genre_ids" in fields and "genres" in fields:
        del fields["genre_ids"]
    record = _defaults(tmdb_id, title)
    apply_fields(record, fields)
    return record


def details(record: Mapping[str, Any]) -> Movie:
    """The movie-details body (``/3/movie/{id}`` without appends)."""
    return {name: record[name] for name in DETAIL_FIELDS}


def list_item(record: Mapping[str, Any]) -> Movie:
    """The shape of one movie in list results (popular, discover, find)."""
    item: Movie = {}
    for name in LIST_ITEM_FIELDS:
        if name == "genre_ids":
            item[name] = [g["id"] for g in record["genres"]]
        else:
            item[name] = record[name]
    return item


def external_ids(record: Mapping[str, Any]) -> Movie:
    """The body of ``/3/movie/{id}/external_ids``."""
    return {
        "id": record["id"],
        "imdb_id": record["imdb_id"],
        "wikidata_id": None,
        "facebook_id": None,
        "instagram_id": None,
        "twitter_id": None,
    }


def keywords(record: Mapping[str, Any]) -> Movie:
    """The body of ``/3/movie/{id}/keywords``."""
    return {"id": record["id"], "keywords": list(record["keywords"]["keywords"])}
