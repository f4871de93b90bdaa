"""TMDB's movie genres: the live list and the retired "Foreign" genre.

``/3/genre/movie/list`` on TMDB returns the 19 genres of :data:`MOVIE_GENRES`. Older TMDB
data still tags many foreign-language films with genre 10769 "Foreign", which is no longer
in that list: a client must cope with genre ids the list does not know.
"""

from __future__ import annotations

MOVIE_GENRES: tuple[tuple[int, str], ...] = (
    (28, "Action"),
    (12, "Adventure"),
    (16, "Animation"),
    (35, "Comedy"),
    (80, "Crime"),
    (99, "Documentary"),
    (18, "Drama"),
    (10751, "Family"),
    (14, "Fantasy"),
    (36, "History"),
    (27, "Horror"),
    (10402, "Music"),
    (9648, "Mystery"),
    (10749, "Romance"),
    (878, "Science Fiction"),
    (10770, "TV Movie"),
    (53, "Thriller"),
    (10752, "War"),
    (37, "Western"),
)

FOREIGN_GENRE_ID = 10769
FOREIGN_GENRE_NAME = "Foreign"

GENRE_NAMES: dict[int, str] = dict(MOVIE_GENRES)


def genre_name(genre_id: int) -> str:
    """The name TMDB shows for a genre id in movie details ("Foreign" for 10769)."""
    if genre_id == FOREIGN_GENRE_ID:
        return FOREIGN_GENRE_NAME
    return GENRE_NAMES.get(genre_id, "Unknown")


def genre_list_payload() -> dict[str, list[dict[str, object]]]:
    """The body of ``/3/genre/movie/list``."""
    return {"genres": [{"id": gid, "name": name} for gid, name in MOVIE_GENRES]}
