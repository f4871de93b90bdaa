"""TMDB endpoints through tmdbsimple, over our transport; TMDB JSON -> plain records.

tmdbsimple builds each endpoint's URL (``BASE_PATH`` + ``URLS`` + ``_get_complete_url``)
but reads its base URL, API key, session and timeout from module globals and sends
``Connection: close``. Our endpoint subclasses set those per instance instead (no global
is touched, so any number of clients can live in one process and threads) and send every
request through :class:`~reelset.transport.http.HttpTransport` (limiter, retries, pooled
keep-alive session, redaction).

:func:`parse_movie` turns one ``/movie/{id}`` body into a :class:`MovieRecord`; it is a
pure function that copes with missing and odd fields.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

import tmdbsimple

from reelset.config import Credentials, Settings
from reelset.errors import ConfigError
from reelset.redaction import register_secrets
from reelset.storage.records import Genre, MovieRecord
from reelset.tmdb.responses import (
    MAX_ID,
    Validator,
    movie_validator,
    validate_configuration,
    validate_find,
    validate_genres,
    validate_page,
)
from reelset.transport.http import HttpTransport
from reelset.transport.limiter import SlidingWindowLimiter
from reelset.transport.retry import RetryPolicy
from reelset.transport.session import ApiKeyAuth, BearerAuth, make_session

log = logging.getLogger(__name__)

_IMDB_RE = re.compile(r"^tt\d{5,12}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TEXT = 20_000


# -- parsing ---------------------------------------------------------------------------


def _text(value: Any, *, limit: int = MAX_TEXT) -> str | None:
    """A cleaned string, or None for missing/empty/non-string values.

    Control characters are removed and lone surrogates (which JSON can carry but UTF-8
    cannot) become ``?``.
    """
    if not isinstance(value, str):
        return None
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = _CONTROL_RE.sub("", value).strip()
    return value[:limit] if value else None


def _int(value: Any) -> int | None:
    """An integer the store can hold (32-bit), or None for anything else."""
    number: int | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and len(text) <= 11:
            number = int(text)
    if number is None or not -MAX_ID - 1 <= number <= MAX_ID:
        return None
    return number


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _imdb_id(value: Any) -> str | None:
    text = _text(value, limit=16)
    return text if text is not None and _IMDB_RE.match(text) else None


def _genre_ids(details: Mapping[str, Any]) -> tuple[int, ...]:
    raw: Any = details.get("genres")
    ids: list[int] = []
    if isinstance(raw, list):
        for item in raw:
            gid = _int(item.get("id")) if isinstance(item, Mapping) else _int(item)
            if gid is not None and gid > 0:
                ids.append(gid)
    elif isinstance(details.get("genre_ids"), list):
        ids = [g for g in (_int(v) for v in details["genre_ids"]) if g is not None and g > 0]
    return tuple(dict.fromkeys(ids))


def _keywords(details: Mapping[str, Any]) -> tuple[str, ...] | None:
    raw: Any = details.get("keywords")
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        raw = raw.get("keywords", raw.get("results"))
    if not isinstance(raw, list):
        return None
    names = [_text(k.get("name"), limit=200) if isinstance(k, Mapping) else None for k in raw]
    return tuple(dict.fromkeys(n for n in names if n))


def parse_movie(details: Mapping[str, Any]) -> MovieRecord:
    """One TMDB movie-details body (optionally with appended external_ids/keywords) as a record.

    Missing or odd fields become ``None`` (an empty ``release_date``, a null or zero
    ``runtime``, non-numeric numbers, a malformed IMDb id); genre ids are deduplicated in
    order; control characters are removed from text. Raises ``ValueError`` only when the
    body has no usable ``id``.
    """
    if not isinstance(details, Mapping):
        raise ValueError("a movie body must be a JSON object")
    tmdb_id = _int(details.get("id"))
    if tmdb_id is None or tmdb_id <= 0:
        raise ValueError("a movie body without a valid id")
    external = details.get("external_ids")
    imdb_id = _imdb_id(details.get("imdb_id"))
    if imdb_id is None and isinstance(external, Mapping):
        imdb_id = _imdb_id(external.get("imdb_id"))
    title = _text(details.get("title"), limit=1000) or _text(
        details.get("original_title"), limit=1000
    )
    runtime = _int(details.get("runtime"))
    vote_count = _int(details.get("vote_count"))
    poster_path = _text(details.get("poster_path"), limit=500)
    return MovieRecord(
        tmdb_id=tmdb_id,
        title=title or "",
        imdb_id=imdb_id,
        original_title=_text(details.get("original_title"), limit=1000),
        original_language=_text(details.get("original_language"), limit=16),
        overview=_text(details.get("overview")),
        tagline=_text(details.get("tagline"), limit=2000),
        release_date=_date(details.get("release_date")),
        runtime=runtime if runtime is not None and runtime > 0 else None,
        popularity=_float(details.get("popularity")),
        vote_average=_float(details.get("vote_average")),
        vote_count=vote_count if vote_count is not None and vote_count >= 0 else None,
        adult=details.get("adult") is True,
        poster_path=poster_path,
        genre_ids=_genre_ids(details),
        keywords=_keywords(details),
    )


# -- tmdbsimple endpoints bound to our transport -----------------------------------------


class _Endpoint(tmdbsimple.base.TMDB):
    """A tmdbsimple endpoint whose requests go through an :class:`HttpTransport`.

    ``TMDB.__init__`` is not called: it reads tmdbsimple's module globals (API key, session,
    timeout, bearer flag) and sets ``Connection: close``. Everything it would set is set
    here per instance instead.
    """

    def __init__(self, transport: HttpTransport, base_url: str, id: int | str = 0) -> None:
        self.id = id  # the movie or external id of /movie/{id}, /find/{id}
        self._transport = transport
        self.base_uri = base_url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        self.session = transport.session
        self.timeout = transport.timeout_s
        self._validate: Validator | None = None

    def _get_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        # The key is added by the transport's auth hook, so it never sits in a URL we hold.
        out = dict(params or {})
        for key, value in out.items():
            if isinstance(value, bool):
                out[key] = "true" if value else "false"
        return out

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        payload: Any = None,
    ) -> Any:
        if method != "GET":
            raise NotImplementedError("reelset only reads from TMDB")
        url = self._get_complete_url(path)
        return self._transport.get_json(url, self._get_params(params), validate=self._validate)

    def _set_attrs_to_values(self, response: Any = None) -> None:
        # tmdbsimple copies response keys onto the instance; a hostile body could overwrite
        # our own attributes that way. We only use the returned dicts.
        return None


class _Movies(_Endpoint, tmdbsimple.Movies):
    pass


class _Genres(_Endpoint, tmdbsimple.Genres):
    pass


class _Configuration(_Endpoint, tmdbsimple.Configuration):
    pass


class _Find(_Endpoint, tmdbsimple.Find):
    pass


class _Discover(_Endpoint, tmdbsimple.Discover):
    pass


class _Changes(_Endpoint, tmdbsimple.Changes):
    pass


# -- the client ------------------------------------------------------------------------


class TmdbClient:
    """TMDB's movie endpoints for reelset, shared by all workers (thread-safe).

    ``with TmdbClient(settings, credentials) as client: client.movie(603)``. Every call is
    rate limited and retried by the transport; failures raise
    :class:`~reelset.transport.errors.FetchError` subclasses (404 -> ``NotFoundError``) or
    :class:`~reelset.errors.AuthError` (401).
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None = None,
        *,
        stop: threading.Event | None = None,
        limiter: SlidingWindowLimiter | None = None,
    ) -> None:
        credentials = credentials if credentials is not None else settings.credentials()
        if not credentials.present:
            raise ConfigError(
                "no TMDB credentials: set TMDB_API_KEY (or TMDB_READ_ACCESS_TOKEN) in the "
                "environment"
            )
        register_secrets(credentials.secrets())
        self.settings = settings
        tmdb = settings.tmdb
        self.base_url = tmdb.api_base_url.rstrip("/")
        auth: ApiKeyAuth | BearerAuth
        if credentials.api_key is not None:
            auth = ApiKeyAuth(credentials.api_key.get_secret_value())
        else:
            assert credentials.bearer_token is not None
            auth = BearerAuth(credentials.bearer_token.get_secret_value())
        self.limiter = limiter or SlidingWindowLimiter.from_spec(tmdb.rate)
        self.stop = stop or threading.Event()
        self.transport = HttpTransport(
            make_session(tmdb.max_workers + 2),
            limiter=self.limiter,
            timeout_s=tmdb.timeout_s,
            policy=RetryPolicy(
                max_retries=tmdb.max_retries,
                backoff_initial_s=tmdb.backoff_initial_s,
                backoff_max_s=tmdb.backoff_max_s,
            ),
            auth=auth,
            stop=self.stop,
        )
        self._config_lock = threading.Lock()
        self._configuration: dict[str, Any] | None = None

    def __enter__(self) -> TmdbClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self.transport.close()

    @property
    def counters(self) -> dict[str, int]:
        """Requests sent, 429s received (``throttled``) and retries so far."""
        return self.transport.counters.as_dict()

    def _endpoint(self, cls: type[_Endpoint], *args: Any, validate: Validator) -> Any:
        endpoint = cls(self.transport, self.base_url, *args)
        endpoint._validate = validate
        return endpoint

    # -- endpoints -------------------------------------------------------------------

    def movie(self, tmdb_id: int) -> dict[str, Any]:
        """``/movie/{id}`` with external_ids (and keywords when configured) appended."""
        appends = ["external_ids"]
        if self.settings.tmdb.append_keywords:
            appends.append("keywords")
        endpoint = self._endpoint(_Movies, int(tmdb_id), validate=movie_validator(int(tmdb_id)))
        body: dict[str, Any] = endpoint.info(
            append_to_response=",".join(appends), language=self.settings.tmdb.language
        )
        return body

    def movie_record(self, tmdb_id: int) -> MovieRecord:
        """``movie(tmdb_id)`` parsed into a :class:`MovieRecord`."""
        return parse_movie(self.movie(tmdb_id))

    def genres(self) -> list[Genre]:
        """TMDB's movie genre list (origin ``tmdb``)."""
        body = self._endpoint(_Genres, validate=validate_genres).movie_list(
            language=self.settings.tmdb.language
        )
        out: dict[int, Genre] = {}
        for item in body.get("genres") or []:
            if not isinstance(item, Mapping):
                continue
            gid, name = _int(item.get("id")), _text(item.get("name"), limit=200)
            if gid is not None and gid > 0 and name:
                out[gid] = Genre(gid, name, "tmdb")
        return list(out.values())

    def configuration(self) -> dict[str, Any]:
        """``/configuration`` (cached per client)."""
        with self._config_lock:
            if self._configuration is None:
                self._configuration = self._endpoint(
                    _Configuration, validate=validate_configuration
                ).info()
            return dict(self._configuration)

    def image_base_url(self) -> str:
        """Where posters live, ending in ``/``: ``tmdb.image_base_url`` when set, else
        ``/configuration``'s ``images.secure_base_url`` (cached per client)."""
        configured = self.settings.tmdb.image_base_url
        if configured:
            return configured
        images = self.configuration().get("images")
        base = images.get("secure_base_url") or images.get("base_url") if isinstance(
            images, Mapping
        ) else None
        if not isinstance(base, str) or not re.match(r"^https?://[^\s]+$", base):
            raise ConfigError(
                "TMDB's /configuration has no usable images.secure_base_url; set "
                "[tmdb] image_base_url"
            )
        return base if base.endswith("/") else base + "/"

    def find_imdb(self, imdb_id: str) -> list[int]:
        """TMDB movie ids for an IMDb id (``/find/{tt}?external_source=imdb_id``)."""
        body = self._endpoint(_Find, imdb_id, validate=validate_find).info(
            external_source="imdb_id"
        )
        ids = [
            _int(item.get("id"))
            for item in body.get("movie_results") or []
            if isinstance(item, Mapping)
        ]
        return [i for i in dict.fromkeys(ids) if i is not None and i > 0]

    def popular(self, page: int) -> dict[str, Any]:
        """One page of ``/movie/popular``."""
        body: dict[str, Any] = self._endpoint(_Movies, validate=validate_page).popular(
            page=page, language=self.settings.tmdb.language
        )
        return body

    def discover(
        self,
        *,
        release_from: dt.date,
        release_to: dt.date,
        page: int = 1,
        sort_by: str = "primary_release_date.asc",
    ) -> dict[str, Any]:
        """One page of ``/discover/movie`` for primary release dates in [from, to]."""
        params = {
            "primary_release_date.gte": release_from.isoformat(),
            "primary_release_date.lte": release_to.isoformat(),
            "include_adult": self.settings.tmdb.include_adult,
            "include_video": False,
            "sort_by": sort_by,
            "page": page,
            "language": self.settings.tmdb.language,
        }
        body: dict[str, Any] = self._endpoint(_Discover, validate=validate_page).movie(**params)
        return body

    def changes(self, start: dt.date, end: dt.date, page: int = 1) -> dict[str, Any]:
        """One page of ``/movie/changes`` between two dates (at most 14 days apart)."""
        body: dict[str, Any] = self._endpoint(_Changes, validate=validate_page).movie(
            start_date=start.isoformat(), end_date=end.isoformat(), page=page
        )
        return body
