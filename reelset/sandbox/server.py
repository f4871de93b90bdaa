"""The sandbox HTTP server: TMDB API v3, its image CDN and its daily exports on loopback.

:class:`Sandbox` runs a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one daemon thread per
connection) in a background thread. Routes:

- ``/3/...``: the API (``configuration``, ``genre/movie/list``, ``movie/popular``,
  ``discover/movie``, ``movie/{id}`` with ``append_to_response``, ``movie/{id}/external_ids``,
  ``movie/{id}/keywords``, ``movie/changes``, ``find/{external_id}``). Needs the API key as
  ``api_key`` or ``Authorization: Bearer <read access token>``; rate-limited.
- ``/t/p/{size}/{file}``: posters and backdrops, public.
- ``/p/exports/[adult_]movie_ids_MM_DD_YYYY.json.gz``: daily ID exports, public.

Every request, in order: counted; delayed by the latency; rate-limited (API only);
counted as an attempt of its request key; possibly failed by the :class:`FaultSpec`;
authenticated (API only); answered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from reelset.sandbox import movie_shapes, tmdb_errors
from reelset.sandbox.catalog import PAGE_SIZE, SORT_KEYS, Catalog, ImageTarget
from reelset.sandbox.counters import Counters, CountersSnapshot
from reelset.sandbox.daily_exports import ExportCache, parse_export_name
from reelset.sandbox.fault_spec import FaultSpec, request_key
from reelset.sandbox.genres import genre_list_payload
from reelset.sandbox.poster_faults import (
    HTML_ERROR_PAGE,
    OVERSIZED_BYTES,
    TRANSIENT_KINDS,
    decompression_bomb_png,
    oversized,
    truncated,
)
from reelset.sandbox.poster_render import (
    BACKDROP_SIZES,
    IMAGE_SIZES,
    LOGO_SIZES,
    POSTER_SIZES,
    PROFILE_SIZES,
    STILL_SIZES,
    PictureCache,
    resize_jpeg,
    synthetic_jpeg,
)
from reelset.sandbox.rate_limiter import AdmissionLimiter, retry_after_header
from reelset.sandbox.tmdb_errors import TmdbError
from reelset.transport.ratespec import RateSpec, parse_rate

SANDBOX_API_KEY = "reelset-sandbox-key"
SANDBOX_READ_ACCESS_TOKEN = "reelset-sandbox-read-access-token"

MAX_PAGE = 500
CHANGES_PAGE_SIZE = 100
MAX_CHANGES_DAYS = 14
MAX_APPENDS = 20

JSON_TYPE = "application/json;charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

# TMDB's change keys, listed by /3/configuration.
CHANGE_KEYS = (
    "adult", "air_date", "also_known_as", "alternative_titles", "biography", "birthday",
    "budget", "cast", "certifications", "character_names", "created_by", "crew", "deathday",
    "episode", "episode_number", "episode_run_time", "freebase_id", "freebase_mid",
    "general", "genres", "guest_stars", "homepage", "images", "imdb_id", "languages",
    "name", "network", "origin_country", "original_name", "original_title", "overview",
    "parts", "place_of_birth", "plot_keywords", "production_code", "production_companies",
    "production_countries", "releases", "revenue", "runtime", "season", "season_number",
    "season_regular", "spoken_languages", "status", "tagline", "title", "translations",
    "tvdb_id", "tvrage_id", "type", "video", "videos",
)

_MOVIE_RE = re.compile(r"^/3/movie/([^/]+)(?:/(external_ids|keywords))?/?$")
_FIND_RE = re.compile(r"^/3/find/([^/]+)/?$")
_IMAGE_RE = re.compile(r"^/t/p/([^/]+)/(.+)$")

logger = logging.getLogger(__name__)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False


class _BadRequest(Exception):
    """Raised by a route to answer with a TMDB error."""

    def __init__(self, error: TmdbError) -> None:
        super().__init__(error.status_message)
        self.error = error


def _json_reply(payload: Any, status: int = 200) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _Reply(status, body)


def _error_reply(error: TmdbError) -> _Reply:
    return _json_reply(error.body(), error.http_status)


def _plain_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode("utf-8"), TEXT_TYPE)


def _endpoint(path: str) -> str:
    if path.startswith("/t/p/"):
        return "images"
    if path.startswith("/p/exports/"):
        return "exports"
    match = _MOVIE_RE.match(path)
    if match and match.group(1) not in ("popular", "changes"):
        return "/3/movie/{id}" + (f"/{match.group(2)}" if match.group(2) else "")
    if _FIND_RE.match(path):
        return "/3/find/{external_id}"
    return path.rstrip("/") or "/"


def _page_param(params: dict[str, str]) -> int:
    text = params.get("page", "1")
    try:
        page = int(text)
    except ValueError:
        raise _BadRequest(tmdb_errors.INVALID_PAGE) from None
    if not 1 <= page <= MAX_PAGE:
        raise _BadRequest(tmdb_errors.INVALID_PAGE)
    return page


def _date_param(params: dict[str, str], name: str) -> date | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise _BadRequest(tmdb_errors.INVALID_DATE) from None


def _paged(records: list[movie_shapes.Movie], page: int, total: int, per_page: int) -> Any:
    return {
        "page": page,
        "results": [movie_shapes.list_item(r) for r in records],
        "total_pages": max(1, math.ceil(total / per_page)),
        "total_results": total,
    }


class Sandbox:
    """A TMDB API v3 look-alike on a loopback port; see the package docstring.

    Use as a context manager (``with Sandbox() as sb: ...``), with :meth:`start` and
    :meth:`stop`, or block in :meth:`serve_forever`. ``catalog`` defaults to
    :meth:`Catalog.bundled`; ``rate`` is e.g. ``"40/10s"`` (None: unlimited);
    ``latency_ms`` delays every answer (``image_latency_ms`` those of images, default the
    same); ``faults`` makes requests fail (see :class:`FaultSpec`; may be replaced while
    running). Exports exist for ``today`` (default: the current UTC date) and the
    ``exports_available_days - 1`` days before, except ``exports_missing_dates``.
    ``today`` also ends the default window of ``/3/movie/changes``; catalog changes are
    stamped with the real time unless given ``changed_at``, so pass ``changed_at`` when
    pinning ``today``. ``oversized_bytes`` is the body size of ``oversized`` poster faults.
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: str | RateSpec | None = None,
        latency_ms: float = 0,
        image_latency_ms: float | None = None,
        faults: FaultSpec | None = None,
        api_key: str = SANDBOX_API_KEY,
        read_access_token: str = SANDBOX_READ_ACCESS_TOKEN,
        exports_available_days: int = 3,
        exports_missing_dates: set[date] | frozenset[date] | tuple[date, ...] = (),
        today: date | None = None,
        oversized_bytes: int = OVERSIZED_BYTES,
    ) -> None:
        if latency_ms < 0 or (image_latency_ms is not None and image_latency_ms < 0):
            raise ValueError("latency must be >= 0 ms")
        if exports_available_days < 0:
            raise ValueError("exports_available_days must be >= 0")
        self.catalog = catalog if catalog is not None else Catalog.bundled()
        self.host = host
        self._requested_port = port
        spec = parse_rate(rate) if isinstance(rate, str) else rate
        self.rate: RateSpec | None = spec
        self._limiter = AdmissionLimiter(spec) if spec is not None else None
        self.latency_ms = latency_ms
        self.image_latency_ms = latency_ms if image_latency_ms is None else image_latency_ms
        self.faults = faults
        self.api_key = api_key
        self.read_access_token = read_access_token
        self.exports_available_days = exports_available_days
        self.exports_missing_dates: set[date] = set(exports_missing_dates)
        self._today = today
        self.oversized_bytes = oversized_bytes
        self._counters = Counters()
        self._pictures = PictureCache()
        self._exports = ExportCache()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind the port and serve in a background thread; returns self."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("sandbox already started")
            self._stopping.clear()
            server_class = _Server6 if ":" in self.host else _Server
            server = server_class((self.host, self._requested_port), _Handler, self)
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"reelset-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
            return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port (idempotent)."""
        self._stopping.set()
        with self._lifecycle:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
            if server is None:
                return
            server.shutdown()
            server.close_connections()
            server.server_close()
            if thread is not None:
                thread.join()

    def request_stop(self) -> None:
        """Ask :meth:`serve_forever` to return (safe to call from a signal handler)."""
        self._stopping.set()

    def serve_forever(self) -> None:
        """Serve (starting if needed) until :meth:`request_stop` or :meth:`stop` is called."""
        if self._server is None:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (only while started)."""
        if self._server is None:
            raise RuntimeError("sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/3``."""
        return f"{self.base_url}/3"

    @property
    def image_base_url(self) -> str:
        """The image root, ``http://127.0.0.1:PORT/t/p/`` (as in ``/3/configuration``)."""
        return f"{self.base_url}/t/p/"

    @property
    def exports_base_url(self) -> str:
        """The daily-export root, ``http://127.0.0.1:PORT/p/exports``."""
        return f"{self.base_url}/p/exports"

    # -- state -------------------------------------------------------------------------

    @property
    def counters(self) -> CountersSnapshot:
        """A snapshot of what was served so far."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        """Zero the counters (including the attempt counts transient faults rely on)."""
        self._counters.reset()

    def reset_rate_limit(self) -> None:
        """Forget the requests the rate limiter has seen."""
        if self._limiter is not None:
            self._limiter.reset()

    def today(self) -> date:
        """The sandbox's current date (fixed by ``today=`` or the UTC date)."""
        return self._today or datetime.now(UTC).date()

    def export_dates(self) -> list[date]:
        """The dates whose export files exist now, newest first."""
        today = self.today()
        days = [today - timedelta(days=k) for k in range(self.exports_available_days)]
        return [d for d in days if d not in self.exports_missing_dates]

    def set_export_missing(self, day: date, missing: bool = True) -> None:
        """Make the export of ``day`` missing (404) or available again."""
        if missing:
            self.exports_missing_dates.add(day)
        else:
            self.exports_missing_dates.discard(day)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # -- API routes --------------------------------------------------------------------

    def _authorized(self, params: dict[str, str], authorization: str | None) -> bool:
        if params.get("api_key") == self.api_key:
            return True
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip() == self.read_access_token:
                return True
        return False

    def _api(self, path: str, params: dict[str, str]) -> _Reply:
        if path in ("/3/configuration", "/3/configuration/"):
            return _json_reply(self._configuration())
        if path in ("/3/genre/movie/list", "/3/genre/movie/list/"):
            return _json_reply(genre_list_payload())
        if path in ("/3/movie/popular", "/3/movie/popular/"):
            page = _page_param(params)
            result = self.catalog.popular(page)
            return _json_reply(_paged(result.records, page, result.total_results, PAGE_SIZE))
        if path in ("/3/discover/movie", "/3/discover/movie/"):
            return _json_reply(self._discover(params))
        if path in ("/3/movie/changes", "/3/movie/changes/"):
            return _json_reply(self._changes(params))
        match = _MOVIE_RE.match(path)
        if match:
            return _json_reply(self._movie(match.group(1), match.group(2), params))
        match = _FIND_RE.match(path)
        if match:
            return _json_reply(self._find(unquote(match.group(1)), params))
        raise _BadRequest(tmdb_errors.NOT_FOUND)

    def _configuration(self) -> dict[str, Any]:
        return {
            "change_keys": list(CHANGE_KEYS),
            "images": {
                "base_url": self.image_base_url,
                "secure_base_url": self.image_base_url,
                "backdrop_sizes": list(BACKDROP_SIZES),
                "logo_sizes": list(LOGO_SIZES),
                "poster_sizes": list(POSTER_SIZES),
                "profile_sizes": list(PROFILE_SIZES),
                "still_sizes": list(STILL_SIZES),
            },
        }

    def _discover(self, params: dict[str, str]) -> dict[str, Any]:
        page = _page_param(params)
        sort_by = params.get("sort_by") or "popularity.desc"
        if sort_by not in SORT_KEYS:
            raise _BadRequest(tmdb_errors.INVALID_INPUT)
        lows = [
            d for d in (_date_param(params, "primary_release_date.gte"),
                        _date_param(params, "release_date.gte")) if d is not None
        ]
        highs = [
            d for d in (_date_param(params, "primary_release_date.lte"),
                        _date_param(params, "release_date.lte")) if d is not None
        ]
        include_adult = params.get("include_adult", "false").lower() == "true"
        result = self.catalog.discover(
            page=page,
            sort_by=sort_by,
            release_gte=max(lows) if lows else None,
            release_lte=min(highs) if highs else None,
            include_adult=include_adult,
        )
        return _paged(result.records, page, result.total_results, PAGE_SIZE)

    def _changes(self, params: dict[str, str]) -> dict[str, Any]:
        page = _page_param(params)
        start = _date_param(params, "start_date")
        end = _date_param(params, "end_date")
        if end is None:
            end = self.today() if start is None else max(start, self.today())
        if start is None:
            start = end - timedelta(days=1)
        if (end - start).days > MAX_CHANGES_DAYS:
            raise _BadRequest(tmdb_errors.INVALID_DATE_RANGE)
        changed = self.catalog.changes(start, end) if start <= end else []
        first = (page - 1) * CHANGES_PAGE_SIZE
        return {
            "results": [
                {"id": tmdb_id, "adult": adult}
                for tmdb_id, adult in changed[first : first + CHANGES_PAGE_SIZE]
            ],
            "page": page,
            "total_pages": max(1, math.ceil(len(changed) / CHANGES_PAGE_SIZE)),
            "total_results": len(changed),
        }

    def _movie(self, id_text: str, sub: str | None, params: dict[str, str]) -> dict[str, Any]:
        if not id_text.isdigit() or len(id_text) > 12:
            raise _BadRequest(tmdb_errors.NOT_FOUND)
        record = self.catalog.record(int(id_text))
        if record is None:
            raise _BadRequest(tmdb_errors.NOT_FOUND)
        if sub == "external_ids":
            return movie_shapes.external_ids(record)
        if sub == "keywords":
            return movie_shapes.keywords(record)
        body = movie_shapes.details(record)
        appends = [a.strip() for a in params.get("append_to_response", "").split(",") if a.strip()]
        if len(appends) > MAX_APPENDS:
            raise _BadRequest(tmdb_errors.TOO_MANY_APPENDS)
        for name in appends:
            if name == "external_ids":
                body["external_ids"] = movie_shapes.external_ids(record)
            elif name == "keywords":
                body["keywords"] = {"keywords": list(record["keywords"]["keywords"])}
        return body

    def _find(self, external_id: str, params: dict[str, str]) -> dict[str, Any]:
        source = params.get("external_source")
        known = ("imdb_id", "facebook_id", "instagram_id", "tvdb_id", "tiktok_id",
                 "twitter_id", "wikidata_id", "youtube_id")
        if source not in known:
            raise _BadRequest(tmdb_errors.INVALID_INPUT)
        movies = self.catalog.find_by_imdb_id(external_id) if source == "imdb_id" else []
        results = []
        for record in movies:
            item = movie_shapes.list_item(record)
            item["media_type"] = "movie"
            results.append(item)
        return {
            "movie_results": results,
            "person_results": [],
            "tv_results": [],
            "tv_episode_results": [],
            "tv_season_results": [],
        }

    # -- images and exports ------------------------------------------------------------

    def _resolve_image(self, raw_name: str) -> ImageTarget | None:
        candidates = [unquote(raw_name), raw_name]
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            # http.server decodes the request line as latin-1; undo that for raw UTF-8.
            candidates.append(unquote(raw_name.encode("latin-1").decode("utf-8")))
        for name in candidates:
            target = self.catalog.resolve_image(name)
            if target is not None:
                return target
        return None

    def _picture(self, target: ImageTarget, size: str, seed_text: str = "") -> bytes:
        if target.kind == "real" and target.data is not None:
            loader = target.data
            return self._pictures.get(
                ("real", target.file_name, size), lambda: resize_jpeg(loader(), size)
            )
        seed = seed_text or target.file_name
        return self._pictures.get(
            ("synthetic", seed, size),
            lambda: synthetic_jpeg(seed, target.title, size, backdrop=target.backdrop),
        )

    def _image(self, size: str, raw_name: str, attempt: int) -> _Reply:
        target = self._resolve_image(raw_name) if size in IMAGE_SIZES else None
        if target is None:
            return _plain_reply(404, "Not Found")
        if target.kind != "fault" or target.fault is None:
            return _Reply(200, self._picture(target, size), "image/jpeg")
        fault = target.fault
        kind = fault.kind
        if kind not in TRANSIENT_KINDS or attempt <= fault.attempts:
            self._counters.image_fault(kind)  # a transient kind over its attempts is fine
        if kind == "not_found":
            return _plain_reply(404, "Not Found")
        if kind == "html_as_jpeg" or (kind == "html_once" and attempt <= fault.attempts):
            return _Reply(200, HTML_ERROR_PAGE, "image/jpeg")
        if kind == "bomb":
            return _Reply(200, decompression_bomb_png(), "image/png")
        if kind == "transient_500" and attempt <= fault.attempts:
            return _Reply(500, HTML_ERROR_PAGE.replace(b"502 Bad Gateway", b"500 Error"),
                          "text/html; charset=utf-8")
        seed = f"duplicate-group:{fault.group}" if kind == "duplicate" else ""
        picture = self._picture(target, size, seed)
        if kind == "truncated_jpeg" or (kind == "truncated_once" and attempt <= fault.attempts):
            return _Reply(200, truncated(picture), "image/jpeg")
        if kind in ("oversized", "oversized_chunked"):
            body = oversized(picture, self.oversized_bytes)
            return _Reply(200, body, "image/jpeg", chunked=kind == "oversized_chunked")
        return _Reply(200, picture, "image/jpeg")

    def _export(self, file_name: str) -> _Reply:
        name = parse_export_name(file_name)
        if name is None or name.day not in self.export_dates():
            return _plain_reply(404, "Not Found")
        data = self._exports.get(self.catalog, adult=name.adult)
        return _Reply(200, data, "application/gzip")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        sandbox: Sandbox,
    ) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        self.sandbox._counters.connection()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every connection thread by shutting its socket down."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("sandbox connection error from %s", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reelset-sandbox"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        """Prepare the connection; disables Nagle so headers and body leave at once."""
        super().setup()
        # Headers and body are separate writes: with Nagle's algorithm the body would wait
        # for the client's delayed ACK (~40 ms per keep-alive request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        """The Server header value."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Access logging is off: the sandbox is quiet."""

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._handle(head=False)

    def do_HEAD(self) -> None:
        """Answer a HEAD request (headers of the GET answer)."""
        self._handle(head=True)

    def _handle(self, *, head: bool) -> None:
        try:
            self._dispatch(head)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _dispatch(self, head: bool) -> None:
        sb = self.server.sandbox
        split = urlsplit(self.path)
        path = split.path
        params_list = parse_qsl(split.query, keep_blank_values=True)
        params = dict(params_list)
        endpoint = _endpoint(path)
        sb._counters.request(endpoint)
        is_api = path == "/3" or path.startswith("/3/")
        is_image = endpoint == "images"
        sb._wait((sb.image_latency_ms if is_image else sb.latency_ms) / 1000.0)

        if is_api and sb._limiter is not None:
            wait = sb._limiter.try_acquire()
            if wait is not None:
                sb._counters.rate_limited()
                reply = _error_reply(tmdb_errors.REQUEST_LIMIT)
                reply.headers.append(("Retry-After", retry_after_header(wait)))
                self._send(reply, head)
                return

        spec = sb.faults  # read once: tests may swap it while requests are in flight
        key = request_key(unquote(path), params_list)
        attempt = sb._counters.attempt(key)
        fault = self._choose_fault(spec, path, key, attempt, is_api, is_image)
        if fault is not None:
            sb._counters.fault(fault)
            if fault in ("500", "502", "503"):
                self._send(_error_reply(tmdb_errors.FAULT_ERRORS[int(fault)]), head)
                return
            if fault == "429":
                reply = _error_reply(tmdb_errors.REQUEST_LIMIT)
                reply.headers.append(("Retry-After", "1"))
                self._send(reply, head)
                return
            if fault == "reset":
                self._reset_connection()
                return
            if fault == "slow" and spec is not None:
                sb._wait(spec.slow_s)

        try:
            reply = self._answer(sb, path, params, attempt, is_api)
        except _BadRequest as exc:
            reply = _error_reply(exc.error)
        except Exception:
            logger.exception("sandbox failed to answer %s", path)
            sb._counters.internal_error()
            reply = _error_reply(tmdb_errors.INTERNAL_ERROR)

        if is_image and reply.status == 200:
            sb._counters.image_served()
        if fault == "truncated":
            self._send(reply, head, truncate=True)
        elif fault == "malformed":
            reply.body = reply.body[: len(reply.body) // 2]
            self._send(reply, head)
        else:
            self._send(reply, head)

    def _choose_fault(
        self,
        spec: FaultSpec | None,
        path: str,
        key: str,
        attempt: int,
        is_api: bool,
        is_image: bool,
    ) -> str | None:
        if spec is None:
            return None
        movie_id = None
        match = _MOVIE_RE.match(path)
        if match and match.group(1).isdigit():
            movie_id = int(match.group(1))
        if is_api:
            target = "api"
        elif is_image:
            target = "images"
        elif path.startswith("/p/exports/"):
            target = "exports"
        else:
            return None
        return spec.decide(
            target=target, path=unquote(path), key=key, attempt=attempt, movie_id=movie_id
        )

    def _answer(
        self, sb: Sandbox, path: str, params: dict[str, str], attempt: int, is_api: bool
    ) -> _Reply:
        if is_api:
            if not sb._authorized(params, self.headers.get("Authorization")):
                return _error_reply(tmdb_errors.INVALID_API_KEY)
            return sb._api(unquote(path), params)
        match = _IMAGE_RE.match(path)
        if match:
            return sb._image(match.group(1), match.group(2), attempt)
        if path.startswith("/p/exports/"):
            return sb._export(unquote(path[len("/p/exports/") :]))
        return _plain_reply(404, "Not Found")

    def _send(self, reply: _Reply, head: bool, *, truncate: bool = False) -> None:
        self.server.sandbox._counters.status(reply.status)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.chunked and not head:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if head:
            return
        if truncate:
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.close_connection = True
        elif reply.chunked:
            step = 256 * 1024
            for start in range(0, len(reply.body), step):
                chunk = reply.body[start : start + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(reply.body)

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST instead of a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True
