"""What the scraper needs from each TMDB answer, checked before anything is written.

Every TMDB body is validated in the transport's ``validate`` hook
(:meth:`~reelset.transport.http.HttpTransport.get_json`): a body that does not fit is a
``ValueError`` there, so it is retried like a cut-off body and, when it stays wrong,
becomes a recorded failure. It never reaches the store, so an incomplete answer (a
``/movie/603`` body of just ``{"id": 603}``) cannot blank a stored movie.

The models require what the scraper stores or follows, with the types it needs; anything
else is ignored here and read leniently by :func:`reelset.tmdb.client.parse_movie` (a
null ``runtime``, a bad ``release_date`` or an odd ``vote_count`` become ``None``).

- ``/movie/{id}``: ``id`` (the one asked for), ``title`` (string), ``overview`` (string
  or null), ``genres`` (objects with an integer ``id`` in 1..2^31-1), ``release_date``
  (string or null), and ``imdb_id`` (string or null) at the top level or in the appended
  ``external_ids``;
- list pages (``/movie/popular``, ``/discover/movie``, ``/movie/changes``): ``results``,
  a list of objects with an id in range; ``page``, ``total_pages``, ``total_results``
  non-negative integers when present;
- ``/find/{imdb_id}``: ``movie_results`` in the same shape;
- ``/genre/movie/list``: ``genres``, objects with an id in range and a string name;
- ``/configuration``: ``images`` an object whose base URLs are strings, when present.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator

MAX_ID = 2**31 - 1
"""The largest id stored (TMDB ids and genre ids are 32-bit integers in the store)."""

TmdbId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_ID)]

Validator = Callable[[Any], None]
M = TypeVar("M", bound="_Body")


class _Body(BaseModel):
    """A TMDB JSON object: the fields named are checked, the others ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class GenreRef(_Body):
    """A genre as a movie carries it."""

    id: TmdbId
    name: StrictStr | None = None


class ExternalIds(_Body):
    """The appended ``external_ids`` object."""

    imdb_id: StrictStr | None = None


class MovieDetails(_Body):
    """A ``/movie/{id}`` body (with ``append_to_response=external_ids[,keywords]``)."""

    id: TmdbId
    title: StrictStr
    overview: StrictStr | None
    genres: list[GenreRef]
    release_date: StrictStr | None
    imdb_id: StrictStr | None = None
    external_ids: ExternalIds | None = None

    @model_validator(mode="after")
    def _imdb_id_given(self) -> MovieDetails:
        """The IMDb id (even a null one) is given at the top level or in external_ids."""
        nested = self.external_ids is not None and "imdb_id" in self.external_ids.model_fields_set
        if "imdb_id" not in self.model_fields_set and not nested:
            raise ValueError("imdb_id missing (neither at the top level nor in external_ids)")
        return self


class ListItem(_Body):
    """One movie of a listing or of ``/find``: only its id is needed."""

    id: TmdbId


class ListPage(_Body):
    """A page of ``/movie/popular``, ``/discover/movie`` or ``/movie/changes``."""

    results: list[ListItem]
    page: Count | None = None
    total_pages: Count | None = None
    total_results: Count | None = None


class FindResults(_Body):
    """A ``/find/{external_id}`` body."""

    movie_results: list[ListItem]


class GenreEntry(_Body):
    """One genre of ``/genre/movie/list``."""

    id: TmdbId
    name: StrictStr


class GenreList(_Body):
    """A ``/genre/movie/list`` body."""

    genres: list[GenreEntry]


class ImagesConfig(_Body):
    """``images`` of ``/configuration``."""

    secure_base_url: StrictStr | None = None
    base_url: StrictStr | None = None


class Configuration(_Body):
    """A ``/configuration`` body."""

    images: ImagesConfig | None = None


def _problem(exc: ValidationError) -> str:
    """The first problem of a validation error as ``where: what`` (no input values)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def check(model: type[M], body: Any) -> M:
    """``body`` validated as ``model``; ``ValueError`` naming the first problem if not."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_problem(exc)) from None


def movie_validator(expected_id: int) -> Validator:
    """The ``validate`` hook for ``/movie/{expected_id}``."""

    def validate(body: Any) -> None:
        details = check(MovieDetails, body)
        if details.id != expected_id:
            raise ValueError(f"id is {details.id}, not the {expected_id} asked for")

    return validate


def validator(model: type[_Body]) -> Validator:
    """The ``validate`` hook for bodies of ``model``."""

    def validate(body: Any) -> None:
        check(model, body)

    return validate


validate_page = validator(ListPage)
validate_find = validator(FindResults)
validate_genres = validator(GenreList)
validate_configuration = validator(Configuration)
