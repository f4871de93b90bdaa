"""Discovery strategies: which TMDB movie ids a scrape fetches, resumably.

Each strategy lists candidates page by page and describes, after every page, a *cursor*
(plain JSON) from which it can resume without redoing that page. The job saves the cursor
of the last fully written batch as a checkpoint (``Store.set_checkpoint``) under the
strategy's :meth:`Strategy.checkpoint_key` (strategy plus the parameters that define
the listing), so a run killed at any point resumes where the last one stopped.

- ``popular``: ``/movie/popular`` pages 1.. (TMDB serves at most 500 pages).
- ``discover``: ``/discover/movie`` over primary-release-date windows from
  ``tmdb.discover_start_date`` to today; a window that would pass the 500-page cap is
  split, so every movie with a release date is reachable.
- ``export``: TMDB's daily ID export (``movie_ids_MM_DD_YYYY.json.gz``), the newest file
  that exists within ``tmdb.export_lookback_days``; streamed and gunzipped line by line,
  in a background thread that ``reelset scrape`` starts before it opens the store
  (:meth:`ExportStrategy.start_reading`).
- ``ids``: TMDB ids and IMDb ids (``tt...``, resolved with ``/find``) from a file.
- ``changes``: ``/movie/changes`` since the last successful ``changes`` run (first run:
  ``tmdb.changes_first_days``), in windows of at most ``tmdb.changes_window_days`` days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import logging
import math
import re
import threading
import zlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from reelset.config import Settings
from reelset.errors import UsageError
from reelset.redaction import redact_url
from reelset.tmdb.client import TmdbClient
from reelset.tmdb.responses import MAX_ID
from reelset.transport.errors import (
    Cancelled,
    FetchError,
    NotFoundError,
    TransientError,
    describe_exception,
)
from reelset.transport.retry import request_failure

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import numpy.typing as npt

    # Ascending, unique TMDB ids: a list, or a numpy array for a large export.
    SortedIds: TypeAlias = Sequence[int] | npt.NDArray[np.int64]

log = logging.getLogger(__name__)

STRATEGIES = ("popular", "discover", "export", "ids", "changes")
MAX_PAGES = 500
"""TMDB serves pages 1..500 of any listing."""

CHANGES_MARK = "scrape:changes:since"
"""Checkpoint holding the day the last successful ``changes`` run covered up to."""

_IMDB_LINE = re.compile(r"^tt\d{5,12}$")


@dataclass(frozen=True)
class Candidate:
    """A movie to fetch: its TMDB id (or an IMDb id to resolve) and, when listed, popularity."""

    tmdb_id: int | None
    popularity: float | None = None
    imdb_id: str | None = None


@dataclass
class Page:
    """Candidates of one listing page and the cursor to resume after it."""

    candidates: list[Candidate]
    cursor: dict[str, Any]


@dataclass(frozen=True)
class DiscoveryOptions:
    """What the user asked for (the parts that shape the listing)."""

    strategy: str
    ids_file: Path | None = None
    min_popularity: float | None = None
    limit: int | None = None
    page_cap: int = MAX_PAGES
    today: dt.date | None = None


def utc_today() -> dt.date:
    """Today's date in UTC (TMDB's exports and change windows use UTC days)."""
    return dt.datetime.now(dt.UTC).date()


def _popularity(item: Mapping[str, Any]) -> float | None:
    value = item.get("popularity")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _valid_id(value: Any) -> bool:
    """Whether ``value`` is a TMDB id the store can hold (an int in 1..2^31-1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _list_candidates(body: Mapping[str, Any], include_adult: bool) -> list[Candidate]:
    out = []
    for item in body.get("results") or []:
        if not isinstance(item, Mapping):
            continue
        tmdb_id = item.get("id")
        if not _valid_id(tmdb_id):
            continue
        if item.get("adult") is True and not include_adult:
            continue
        out.append(Candidate(tmdb_id, _popularity(item)))
    return out


def _total_pages(body: Mapping[str, Any]) -> int:
    value = body.get("total_pages")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _total_results(body: Mapping[str, Any]) -> int | None:
    value = body.get("total_results")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Strategy:
    """A resumable listing of candidates. Subclasses implement :meth:`pages`."""

    name = ""
    may_repeat = True
    """Whether a listing can name the same movie twice (then the job de-duplicates)."""

    always_refresh = False
    """Whether every listed movie is fetched even when fetched recently."""

    def __init__(self, client: TmdbClient, settings: Settings, options: DiscoveryOptions) -> None:
        self.client = client
        self.settings = settings
        self.options = options
        self.today = options.today or utc_today()
        self.total_hint: int | None = None

    def key_params(self) -> dict[str, Any]:
        """The parameters that define this listing (part of the checkpoint key)."""
        return {
            "min_popularity": self.options.min_popularity,
            "limit": self.options.limit,
            "include_adult": self.settings.tmdb.include_adult,
        }

    def checkpoint_key(self) -> str:
        """``scrape:<strategy>:<hash of the defining parameters>``."""
        raw = json.dumps(self.key_params(), sort_keys=True, default=str)
        return f"scrape:{self.name}:{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def fresh_cursor(self) -> dict[str, Any]:
        """The cursor of a run that starts from the beginning."""
        return {}

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        """Pages of candidates from ``cursor`` on."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What this run lists, for the run's params and summary."""
        return {}


class PopularStrategy(Strategy):
    """``/movie/popular`` pages, most popular first."""

    name = "popular"

    def fresh_cursor(self) -> dict[str, Any]:
        return {"page": 1}

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        page = int(cursor.get("page", 1))
        last = self.options.page_cap
        while page <= last:
            body = self.client.popular(page)
            last = min(_total_pages(body), self.options.page_cap)
            total = _total_results(body)
            if total is not None:
                self.total_hint = min(total, self.options.page_cap * 20)
            yield Page(
                _list_candidates(body, self.settings.tmdb.include_adult), {"page": page + 1}
            )
            page += 1


class DiscoverStrategy(Strategy):
    """``/discover/movie`` over release-date windows, split to stay under the page cap."""

    name = "discover"

    def key_params(self) -> dict[str, Any]:
        return {**super().key_params(), "start": self.settings.tmdb.discover_start_date}

    def fresh_cursor(self) -> dict[str, Any]:
        start = dt.date.fromisoformat(self.settings.tmdb.discover_start_date)
        until = self.today
        return {
            "from": start.isoformat(),
            "until": until.isoformat(),
            "span": max(1, (until - start).days + 1),
            "window": None,
            "page": 1,
            "total_pages": None,
        }

    def describe(self) -> dict[str, Any]:
        return {"release_from": self.settings.tmdb.discover_start_date}

    def _target_pages(self) -> float:
        return max(1.0, self.options.page_cap * 0.6)

    def _next_span(self, w_from: dt.date, w_to: dt.date, total_pages: int) -> int:
        """The next window's length from this one's density (at most 4x longer)."""
        days = (w_to - w_from).days + 1
        grown = math.floor(days * self._target_pages() / max(total_pages, 1))
        return max(1, min(grown, days * 4))

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        cap = self.options.page_cap
        start = dt.date.fromisoformat(cursor["from"])
        until = dt.date.fromisoformat(cursor["until"])
        span = int(cursor["span"])
        window = cursor.get("window")
        page = int(cursor.get("page", 1))
        total_pages = int(cursor.get("total_pages") or 1)
        include_adult = self.settings.tmdb.include_adult
        while start <= until:
            first: Mapping[str, Any] | None = None
            if window is None:
                end = min(start + dt.timedelta(days=span - 1), until)
                first = self.client.discover(release_from=start, release_to=end, page=1)
                found = _total_pages(first)
                days = (end - start).days + 1
                if found > cap and days > 1:
                    # Aim at a window well under the cap from the density just seen.
                    span = max(1, min(days // 2, math.floor(days * self._target_pages() / found)))
                    continue
                if found > cap:
                    log.warning(
                        "%s movies have the release date %s: TMDB serves only the first %d "
                        "of them through discover (use --strategy export for the rest)",
                        _total_results(first),
                        start.isoformat(),
                        cap * 20,
                    )
                window = [start.isoformat(), end.isoformat()]
                page, total_pages = 1, min(found, cap)
            w_from, w_to = (dt.date.fromisoformat(d) for d in window)
            while page <= total_pages:
                if page == 1 and first is not None:
                    body = first
                else:
                    body = self.client.discover(release_from=w_from, release_to=w_to, page=page)
                total_pages = min(_total_pages(body), cap)
                candidates = _list_candidates(body, include_adult)
                page += 1
                if page <= total_pages:
                    after = {
                        "from": start.isoformat(),
                        "until": until.isoformat(),
                        "span": span,
                        "window": window,
                        "page": page,
                        "total_pages": total_pages,
                    }
                else:
                    next_span = self._next_span(w_from, w_to, total_pages)
                    after = {
                        "from": (w_to + dt.timedelta(days=1)).isoformat(),
                        "until": until.isoformat(),
                        "span": next_span,
                        "window": None,
                        "page": 1,
                        "total_pages": None,
                    }
                yield Page(candidates, after)
            start = w_to + dt.timedelta(days=1)
            span = self._next_span(w_from, w_to, total_pages)
            window, page, total_pages = None, 1, 1


NUMPY_FROM_IDS = 100_000
"""Exports with this many ids or more are sorted with numpy (TMDB's has about a million:
compact arrays, a fraction of the time); smaller ones in plain Python, without the cost
of importing numpy (0.1-0.25 s of CPU, which start-up then competes with)."""

def sorted_unique(ids: array[int], *, numpy_from: int | None = None) -> SortedIds:
    """``ids`` ascending, each once (numpy from ``numpy_from`` ids on, by default
    :data:`NUMPY_FROM_IDS`)."""
    if len(ids) < (NUMPY_FROM_IDS if numpy_from is None else numpy_from):
        return sorted(set(ids))
    # Imported here, in the reading thread and after the download: only a large export
    # needs numpy, and start-up has better things to do first.
    import numpy as np

    return np.unique(np.frombuffer(ids, dtype=np.int64))


class ExportStrategy(Strategy):
    """Every movie id of TMDB's newest daily export, ascending.

    The file is read (downloaded, gunzipped, parsed, sorted) in a background thread:
    :meth:`start_reading` starts it early, :meth:`pages` starts it if need be and waits
    for it. Each call of :meth:`pages` reads the file anew.
    """

    name = "export"
    may_repeat = False

    def __init__(self, client: TmdbClient, settings: Settings, options: DiscoveryOptions) -> None:
        super().__init__(client, settings, options)
        self.file_name: str | None = None
        self.bad_lines = 0
        self._reading: Future[SortedIds] | None = None
        self._cancel = threading.Event()

    def start_reading(self) -> None:
        """Start reading the export in a background thread, unless it is being read.

        ``reelset scrape`` calls this before it opens the store, so the download overlaps
        the store's start-up. The export is a file, not an API request: reading it before
        the run's lock is taken costs no rate-limited request.
        """
        if self._reading is not None:
            return
        self._cancel.clear()
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reelset-export")
        self._reading = reader.submit(self._read_sorted)
        reader.shutdown(wait=False)

    def cancel_reading(self) -> None:
        """Stop a background read nobody will use (the run ended first) and wait for it."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            self._cancel.set()
            wait([reading])

    def fresh_cursor(self) -> dict[str, Any]:
        return {"after_id": 0}

    def describe(self) -> dict[str, Any]:
        return {"export_file": self.file_name}

    def _url(self, day: dt.date, *, adult: bool = False) -> str:
        prefix = "adult_" if adult else ""
        return f"{self.settings.tmdb.exports_base_url}/{prefix}movie_ids_{day:%m_%d_%Y}.json.gz"

    def _read(self, url: str, ids: array[int]) -> None:
        """Stream, gunzip and parse one export file into ``ids`` (retried as a whole)."""

        def attempt() -> array[int]:
            found: array[int] = array("q")
            decompressor: Any = None
            pending = b""
            with self.client.transport.stream(url) as response:
                try:
                    for chunk in response.iter_content(256 * 1024):
                        if self._cancel.is_set() or self.client.stop.is_set():
                            raise Cancelled("stopped while reading the export")
                        if decompressor is None:
                            gz = chunk[:2] == b"\x1f\x8b"
                            decompressor = (
                                zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else _Identity()
                            )
                        pending += decompressor.decompress(chunk)
                        lines = pending.split(b"\n")
                        pending = lines.pop()
                        self._parse_lines(lines, found)
                    if decompressor is not None:
                        pending += decompressor.flush()
                        if not isinstance(decompressor, _Identity) and not decompressor.eof:
                            raise TransientError("the export file ended early")
                except zlib.error:
                    raise TransientError("the export file is damaged (bad gzip data)") from None
                except requests.RequestException as exc:
                    raise request_failure(
                        exc, f"export download failed: {describe_exception(exc)}"
                    ) from None
            self._parse_lines(pending.split(b"\n"), found)
            return found

        self.bad_lines = 0
        ids.extend(self.client.transport.call_with_retries(attempt))

    def _read_newest(self) -> array[int]:
        """The entries of the newest export that exists, trying back from today."""
        lookback = self.settings.tmdb.export_lookback_days
        for back in range(lookback + 1):
            day = self.today - dt.timedelta(days=back)
            entries: array[int] = array("q")
            try:
                self._read(self._url(day), entries)
            except NotFoundError:
                log.debug("no export for %s", day.isoformat())
                continue
            self.file_name = f"movie_ids_{day:%m_%d_%Y}.json.gz"
            if self.settings.tmdb.include_adult:
                try:
                    self._read(self._url(day, adult=True), entries)
                except NotFoundError:
                    log.warning("the adult export of %s is missing; skipped", day.isoformat())
            return entries
        raise FetchError(
            f"no TMDB daily export found for {self.today.isoformat()} or the {lookback} days "
            f"before at {redact_url(self.settings.tmdb.exports_base_url)}"
        )

    def _parse_lines(self, lines: Sequence[bytes], ids: array[int]) -> None:
        """Keep the ids of the lines that pass the filters (adult, --min-popularity)."""
        include_adult = self.settings.tmdb.include_adult
        minimum = self.options.min_popularity
        for raw in lines:
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                tmdb_id = item["id"]
                if not _valid_id(tmdb_id):
                    raise ValueError
            except (ValueError, KeyError, TypeError, RecursionError):
                self.bad_lines += 1
                continue
            if item.get("adult") is True and not include_adult:
                continue
            if minimum is not None and (_popularity(item) or 0.0) < minimum:
                continue
            ids.append(tmdb_id)

    def _read_sorted(self) -> SortedIds:
        """The ids of the newest export, sorted and unique (in the reading thread)."""
        return sorted_unique(self._read_newest())

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        self.start_reading()
        reading = self._reading
        assert reading is not None
        try:
            ids = reading.result()
        except BaseException:  # e.g. Ctrl+C while waiting: the read stops too
            self.cancel_reading()
            raise
        self._reading = None  # the next call reads the file again
        if self.bad_lines:
            log.warning("%d unreadable lines in the export were skipped", self.bad_lines)
        ids = ids[bisect.bisect_right(ids, int(cursor.get("after_id", 0))) :]
        self.total_hint = len(ids)
        log.info("export %s: %d movies to consider", self.file_name, len(ids))
        chunk = max(1, self.settings.storage.batch_size)
        for start in range(0, len(ids), chunk):
            part = [int(i) for i in ids[start : start + chunk]]
            yield Page([Candidate(i) for i in part], {"after_id": part[-1]})


class _Identity:
    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


@dataclass
class IdsFile:
    """The parsed ``--from`` file: TMDB ids and IMDb ids in file order (duplicates kept once)."""

    path: Path
    entries: list[Candidate] = field(default_factory=list)
    digest: str = ""


def read_ids_file(path: Path) -> IdsFile:
    """Parse a file of TMDB ids (digits) and IMDb ids (``tt...``), one a line.

    Blank lines and ``#`` comments are ignored. A bad line raises :class:`UsageError`
    naming the file and line, before anything is fetched.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the ids file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the ids file is not UTF-8 text") from None
    out = IdsFile(path, digest=hashlib.sha256(raw).hexdigest())
    seen: set[object] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        if token.isascii() and token.isdigit() and len(token) <= 10 and 0 < int(token) < 2**31:
            key: object = int(token)
            candidate = Candidate(int(token))
        elif _IMDB_LINE.match(token):
            key = token
            candidate = Candidate(None, imdb_id=token)
        else:
            shown = token if len(token) <= 40 else token[:40] + "..."
            raise UsageError(
                f"{path}:{number}: not a TMDB id or an IMDb id (tt...): {shown!r}"
            )
        if key not in seen:
            seen.add(key)
            out.entries.append(candidate)
    return out


class IdsStrategy(Strategy):
    """The ids of a file, in file order; IMDb ids are resolved by the job."""

    name = "ids"

    def __init__(self, client: TmdbClient, settings: Settings, options: DiscoveryOptions) -> None:
        super().__init__(client, settings, options)
        if options.ids_file is None:
            raise UsageError("--strategy ids needs --from FILE")
        self.ids_file = read_ids_file(options.ids_file)
        self.total_hint = len(self.ids_file.entries)

    def key_params(self) -> dict[str, Any]:
        return {**super().key_params(), "file_sha256": self.ids_file.digest}

    def fresh_cursor(self) -> dict[str, Any]:
        return {"index": 0}

    def describe(self) -> dict[str, Any]:
        return {"ids_file": str(self.ids_file.path), "ids_in_file": len(self.ids_file.entries)}

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        entries = self.ids_file.entries
        chunk = max(1, min(100, self.settings.storage.batch_size))
        index = int(cursor.get("index", 0))
        for start in range(index, len(entries), chunk):
            part = entries[start : start + chunk]
            yield Page(list(part), {"index": start + len(part)})


class ChangesStrategy(Strategy):
    """``/movie/changes`` windows since the last successful ``changes`` run."""

    name = "changes"
    always_refresh = True

    def __init__(
        self,
        client: TmdbClient,
        settings: Settings,
        options: DiscoveryOptions,
        *,
        since: dt.date | None = None,
    ) -> None:
        super().__init__(client, settings, options)
        self.since = since

    def fresh_cursor(self) -> dict[str, Any]:
        first = self.today - dt.timedelta(days=self.settings.tmdb.changes_first_days)
        since = self.since or first
        since = min(since, self.today)
        return {
            "since": since.isoformat(),
            "until": self.today.isoformat(),
            "window_from": since.isoformat(),
            "page": 1,
        }

    def describe(self) -> dict[str, Any]:
        return {"changes_since": self.since.isoformat() if self.since else None}

    def pages(self, cursor: dict[str, Any]) -> Iterator[Page]:
        until = dt.date.fromisoformat(cursor["until"])
        w_from = dt.date.fromisoformat(cursor["window_from"])
        page = int(cursor.get("page", 1))
        width = self.settings.tmdb.changes_window_days
        include_adult = self.settings.tmdb.include_adult
        while w_from <= until:
            # end - start may be at most `width` days; windows of `width` days, inclusive.
            w_to = min(w_from + dt.timedelta(days=width - 1), until)
            body = self.client.changes(w_from, w_to, page)
            total_pages = min(_total_pages(body), self.options.page_cap)
            candidates = _list_candidates(body, include_adult)
            if page < total_pages:
                after = {**cursor, "window_from": w_from.isoformat(), "page": page + 1}
                page += 1
            else:
                w_from = w_to + dt.timedelta(days=1)
                after = {**cursor, "window_from": w_from.isoformat(), "page": 1}
                page = 1
            yield Page([Candidate(c.tmdb_id) for c in candidates], after)


def make_strategy(
    client: TmdbClient,
    settings: Settings,
    options: DiscoveryOptions,
    *,
    changes_since: dt.date | None = None,
) -> Strategy:
    """The strategy object for ``options.strategy``."""
    if options.strategy == "popular":
        return PopularStrategy(client, settings, options)
    if options.strategy == "discover":
        return DiscoverStrategy(client, settings, options)
    if options.strategy == "export":
        return ExportStrategy(client, settings, options)
    if options.strategy == "ids":
        return IdsStrategy(client, settings, options)
    if options.strategy == "changes":
        return ChangesStrategy(client, settings, options, since=changes_since)
    raise UsageError(f"unknown strategy {options.strategy!r} (use one of {', '.join(STRATEGIES)})")
