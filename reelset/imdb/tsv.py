"""Reading IMDb's dataset files: streaming, fast, and forgiving of bad rows.

IMDb's format: UTF-8, tab-separated, one header row, ``\\N`` for null, no quoting (a quote
is a literal character), ``\\n`` line ends, optionally gzip-compressed. Files are streamed
in chunks of decompressed bytes and never loaded whole; gzip is decompressed by ISA-L
(``isal.igzip``, about 3x as fast as the standard library's ``gzip``) in a thread of its own.

``title.basics`` has about 11 million rows of which only a few percent are movies, so
rows are selected by their ``titleType`` with one regular expression over each chunk
before any row is decoded or split: rows of other types cost almost nothing (and are
not checked). The kept rows of a chunk are parsed a whole column at a time when they are
all plain (the usual case), else one by one (see :func:`iter_basics_columns`).

``title.ratings`` (every row kept) is checked a chunk at a time by one regular expression
and, when every row of the chunk is plain, parsed by numpy (several times fewer CPU
seconds than a row loop), row by row otherwise (see :func:`read_ratings`).

Kept rows with the wrong column count, a bad id, a bad or implausible
number (see the limits below) are counted, sampled with their line numbers, and
skipped; so are ``title.ratings`` rows with a bad id, a rating outside 0-10 or a bad
vote count. Every value that passes fits the store's columns, so no input reaches the
database as an error.

Control characters (NUL, C0 other than tab, DEL, C1) in a kept ``title.basics`` row are
stripped (and the row counted as cleaned); in ``title.ratings``, whose fields are ids and
numbers, they make the row malformed. A UTF-8 byte order mark before the header is
accepted.
"""

from __future__ import annotations

import functools
import gzip
import queue
import re
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, NamedTuple, TypeVar, cast

import numpy as np
from isal import igzip, isal_zlib

from reelset.errors import UsageError

NULL = "\\N"
BASICS_COLUMNS = (
    "tconst",
    "titleType",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "endYear",
    "runtimeMinutes",
    "genres",
)
RATINGS_COLUMNS = ("tconst", "averageRating", "numVotes")
DATASET_HEADERS: dict[str, tuple[str, ...]] = {
    "title.basics.tsv.gz": BASICS_COLUMNS,
    "title.ratings.tsv.gz": RATINGS_COLUMNS,
    "title.akas.tsv.gz": (
        "titleId",
        "ordering",
        "title",
        "region",
        "language",
        "types",
        "attributes",
        "isOriginalTitle",
    ),
    "title.crew.tsv.gz": ("tconst", "directors", "writers"),
    "title.episode.tsv.gz": ("tconst", "parentTconst", "seasonNumber", "episodeNumber"),
    "title.principals.tsv.gz": ("tconst", "ordering", "nconst", "category", "job", "characters"),
    "name.basics.tsv.gz": (
        "nconst",
        "primaryName",
        "birthYear",
        "deathYear",
        "primaryProfession",
        "knownForTitles",
    ),
}
"""The header row of each of IMDb's dataset files, by file name."""

_T = TypeVar("_T")
CHUNK_BYTES = 8 * 1024 * 1024
MAX_SAMPLES = 5
_MAX_HEADER_BYTES = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
# igzip raises isal_zlib.error for bad data (its stub types the class as an instance).
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)
_READ_ERRORS = (OSError, EOFError, zlib.error, _ISAL_ERROR)
"""What reading a broken file raises."""
_INT_DIGITS = 18  # int() of a digit string no longer than this can be range-checked

MAX_ID_DIGITS = 14
"""Digits of a title id after ``tt`` (``imdb_titles.imdb_id`` holds 16 characters)."""
MAX_NAME_CHARS = 32
"""Characters of a title type or a genre (``title_type`` and ``genre`` hold 32)."""
MIN_YEAR, MAX_YEAR = 1800, 2200
"""Plausible start years: IMDb's earliest titles are from 1874, announced ones reach the 2100s."""
MAX_RUNTIME_MINUTES = 1_000_000
"""Longer than any title (the longest on IMDb run under 60,000 minutes); fits an INTEGER."""
MAX_VOTES = 2**31 - 1
"""The largest vote count ``imdb_titles.num_votes`` (a 32-bit INTEGER) holds."""
MAX_RATING = 10.0
"""IMDb's ratings are between 0 and 10."""

# NUL, the C0 controls but tab and line feed (carriage return included: the one ending a
# CRLF line is removed first), DEL, and the C1 controls U+0080-U+009F (UTF-8 \xc2\x80-\x9f).
_C0_DEL = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
_C1 = re.compile(rb"\xc2[\x80-\x9f]")
_CONTROL_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ImdbFileError(UsageError):
    """An IMDb dataset file that cannot be used: unreadable, wrong header, broken gzip."""


@dataclass
class ParseStats:
    """What reading one file found: data rows, rows kept, malformed rows (with samples).

    ``rows`` counts every data row (the header excluded), so ``rows == 0`` means the file
    had no data rows at all.
    """

    file: str
    rows: int = 0
    kept: int = 0
    malformed: int = 0
    cleaned: int = 0
    """Kept rows whose control characters were stripped."""
    samples: list[str] = field(default_factory=list)

    def bad(self, line_number: int, reason: str) -> None:
        """Count a malformed row; keep the first few as ``file:line: reason``."""
        self.malformed += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(f"{self.file}:{line_number}: {reason}")


class BasicsRow(NamedTuple):
    """One parsed ``title.basics`` row (``number`` is the tconst's digits as an int).

    A named tuple: millions are made per import, and a tuple is made several times
    faster than a frozen dataclass.
    """

    number: int
    imdb_id: str
    title_type: str
    primary_title: str | None
    original_title: str | None
    is_adult: bool | None
    start_year: int | None
    runtime_minutes: int | None
    genres: tuple[str, ...]


class MalformedRow(Exception):
    """A data row that cannot be used; the message says why."""


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


@contextmanager
def open_dataset(path: Path, *, whole: bool = True) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """Open a dataset file, gzip or plain; yields ``(data stream, raw file)``.

    The raw file's position tells how far through the file reading is (for progress).
    ``whole=False`` when only the first line is read: the standard library's reader
    then decompresses no more than that line needs, so a file truncated further on
    passes the header check and fails inside the recorded run, where the rest is read.
    """
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ImdbFileError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            # ISA-L's inflate reads the same gzip as the standard library's, 3x as fast.
            reader = igzip.GzipFile if whole else gzip.GzipFile
            stream: BinaryIO = reader(fileobj=raw, mode="rb")  # type: ignore[assignment]
        else:
            raw.seek(0)
            stream = raw
        with stream:
            yield stream, raw
    finally:
        raw.close()


def _read_error(path: Path, exc: BaseException) -> ImdbFileError:
    if isinstance(exc, EOFError):
        what = "the gzip data ends early (truncated file)"
    elif isinstance(exc, (gzip.BadGzipFile, zlib.error, _ISAL_ERROR)):
        what = f"corrupt gzip data ({exc})"
    else:
        what = f"{exc.__class__.__name__}: {exc}"
    return ImdbFileError(f"{path}: {what}; download it again")


def read_header(stream: BinaryIO, path: Path, expected: tuple[str, ...]) -> bytes:
    """Read the header row (returned) and raise :class:`ImdbFileError` unless it is ``expected``.

    A UTF-8 byte order mark before the header is accepted; an empty file is refused.
    """
    try:
        line = stream.readline(_MAX_HEADER_BYTES)
    except _READ_ERRORS as exc:
        raise _read_error(path, exc) from None
    if not line:
        raise ImdbFileError(
            f"{path}: not an IMDb {_kind(expected)} file: the file is empty (not even a header)"
        )
    body = line[len(_BOM) :] if line.startswith(_BOM) else line
    text = body.decode("utf-8", errors="replace").rstrip("\r\n")
    if tuple(text.split("\t")) != expected:
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise ImdbFileError(
            f"{path}: not an IMDb {_kind(expected)} file: header is {shown!r}, "
            f"expected {chr(9).join(expected)!r} (tab-separated)"
        )
    return line


def _kind(expected: tuple[str, ...]) -> str:
    for name, header in DATASET_HEADERS.items():
        if header == expected:
            return name.removesuffix(".tsv.gz")
    return "dataset"


def check_header(path: Path, expected: tuple[str, ...]) -> None:
    """Open ``path`` and check its header row (raises :class:`ImdbFileError`)."""
    with open_dataset(path, whole=False) as (stream, _raw):
        read_header(stream, path, expected)


def iter_chunks(stream: BinaryIO, path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield the rest of ``stream`` in chunks that each end at a line end (the last may not)."""
    for buf, end, _at in _line_buffers(stream, None, path, chunk_bytes):
        yield buf[1:end]


def _number(text: str, name: str, low: int, high: int) -> int:
    if not (text.isdigit() and text.isascii()):
        raise MalformedRow(f"{name} is not a whole number: {text[:40]!r}")
    # The length is checked before int(): int() of thousands of digits raises ValueError.
    value = int(text) if len(text) <= _INT_DIGITS else high + 1
    if not low <= value <= high:
        raise MalformedRow(f"{name} {text[:40]!r} is not between {low} and {high}")
    return value


def strip_controls(line: bytes) -> bytes | None:
    """``line`` without its control characters (see the module docstring); ``None`` if none."""
    stripped = line.translate(None, _C0_DEL)
    if 0xC2 in stripped:  # an int: a memchr, many times faster than b"\xc2" in 3.11
        stripped = _C1.sub(b"", stripped)
    return None if len(stripped) == len(line) else stripped


def clean_text(text: str) -> str:
    """``text`` without control characters (for titles from other sources than a TSV row)."""
    return _CONTROL_TEXT.sub("", text)


def parse_basics_line(line: bytes, stats: ParseStats | None = None) -> BasicsRow:
    """Parse one ``title.basics`` data row (raises :class:`MalformedRow` with the reason).

    Control characters are stripped first (the row counted in ``stats.cleaned``); then
    every value is checked to fit the store: id, title type and genre lengths, year and
    runtime within the limits above. (Written for speed: it runs for every kept row.)
    """
    if line[-1:] == b"\r":
        line = line[:-1]
    stripped = line.translate(None, _C0_DEL)  # strip_controls, inlined
    if 0xC2 in stripped:
        stripped = _C1.sub(b"", stripped)
    if len(stripped) != len(line):
        line = stripped
        if stats is not None:
            stats.cleaned += 1
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRow("not valid UTF-8") from None
    f = text.split("\t")
    if len(f) != 9:
        raise MalformedRow(f"{len(f)} columns, expected 9")
    tconst, title_type, primary, original, adult, year, _, runtime, genres = f
    digits = tconst[2:]
    if not (
        tconst[:2] == "tt"
        and digits.isdigit()
        and digits.isascii()
        and len(digits) <= MAX_ID_DIGITS
    ):
        raise MalformedRow(f"not an IMDb title id: {tconst[:40]!r}")
    if not 0 < len(title_type) <= MAX_NAME_CHARS:
        raise MalformedRow(f"titleType {title_type[:40]!r} is empty or too long")
    if adult == "0":
        is_adult: bool | None = False
    elif adult == "1":
        is_adult = True
    elif adult == NULL:
        is_adult = None
    else:
        raise MalformedRow(f"isAdult is {adult[:40]!r}, expected 0 or 1")
    if genres == NULL or not genres:
        names: tuple[str, ...] = ()
    else:
        names = tuple(genres.split(","))
        if "" in names:
            names = tuple(x for x in names if x)
        if len(genres) > MAX_NAME_CHARS:  # only then can one genre be too long
            for name in names:
                if len(name) > MAX_NAME_CHARS:
                    raise MalformedRow(f"genre {name[:40]!r} is longer than {MAX_NAME_CHARS}")
    return BasicsRow(
        int(digits),
        tconst,
        title_type,
        None if primary == NULL else primary,
        None if original == NULL else original,
        is_adult,
        None if year == NULL else _number(year, "startYear", MIN_YEAR, MAX_YEAR),
        None if runtime == NULL else _number(runtime, "runtimeMinutes", 0, MAX_RUNTIME_MINUTES),
        names,
    )


def _prefetch(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """Run ``items`` in a background thread, ``depth`` items ahead.

    Decompressing releases the GIL, so reading the next chunk overlaps with parsing this
    one. An exception in the thread is raised here; closing this generator stops it.
    """
    slots: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    thread = threading.Thread(target=produce, name="imdb-read", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                assert isinstance(item, BaseException)
                raise item
            if item is done:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def _line_buffers(
    stream: BinaryIO, raw: BinaryIO | None, path: Path, chunk_bytes: int
) -> Iterator[tuple[bytes, int, int]]:
    """The rest of ``stream`` as ``(buf, end, position in raw)``: ``buf[1:end]`` is whole lines.

    The position is ``raw.tell()`` after the read (-1 without ``raw``). ``buf[0]`` is a
    line feed (the end of the line before), so a pattern anchored on the line end before a
    row finds the first row too; the last piece may end without one.
    One copy of the data: the caller searches ``buf`` up to ``end`` (``pos``/``endpos``)
    instead of slicing it (:func:`iter_chunks` slices).
    """
    tail = b"\n"
    while True:
        try:
            data = stream.read(chunk_bytes)
        except _READ_ERRORS as exc:
            raise _read_error(path, exc) from None
        if not data:
            break
        buf = tail + data
        cut = buf.rfind(b"\n", 1)
        if cut < 0:
            tail = buf
            continue
        tail = buf[cut:]
        yield buf, cut + 1, raw.tell() if raw is not None else -1
    if len(tail) > 1:
        yield tail, len(tail), raw.tell() if raw is not None else -1


def _count_lines(buf: bytes, end: int) -> int:
    """How many lines ``buf[1:end]`` holds (the last may lack its line feed)."""
    if end <= 1:
        return 0
    # numpy counts bytes several times as fast as bytes.count (a Python 3.11 byte loop).
    feeds = int(np.count_nonzero(np.frombuffer(buf, np.uint8, end - 1, 1) == 0x0A))
    return feeds + (buf[end - 1] != 0x0A)


class BasicsColumns(NamedTuple):
    """Parsed ``title.basics`` rows column by column: one list per :class:`BasicsRow` field."""

    number: list[int]
    imdb_id: list[str]
    title_type: list[str]
    primary_title: list[str | None]
    original_title: list[str | None]
    is_adult: list[bool | None]
    start_year: list[int | None]
    runtime_minutes: list[int | None]
    genres: list[tuple[str, ...]]


_ADULT: dict[str, bool | None] = {"0": False, "1": True, NULL: None}
# A whole column of ids (each followed by "\n"), and a year or a runtime, in the shapes
# whose checks cannot fail.
_CLEAN_IDS = re.compile(rf"(?:tt[0-9]{{1,{MAX_ID_DIGITS}}}\n)*")
_CLEAN_YEAR = re.compile(r"1[89][0-9][0-9]|2[01][0-9][0-9]|2200|\\N")
_CLEAN_RUNTIME = re.compile(r"[0-9]{1,6}|\\N")  # below MAX_RUNTIME_MINUTES
assert MIN_YEAR == 1800 and MAX_YEAR == 2200 and MAX_RUNTIME_MINUTES >= 999_999


@functools.lru_cache(maxsize=1 << 16)  # a few thousand genre lists, each split once
def _genre_names(genres: str) -> tuple[str, ...]:
    if genres == NULL or not genres:
        return ()
    return tuple(name for name in genres.split(",") if name)


def _column(values: list[str], pattern: re.Pattern[str]) -> bool:
    return pattern.fullmatch("\n".join(values) + "\n") is not None


def _clean_columns(lines: list[bytes]) -> BasicsColumns | None:
    """The kept rows of a chunk parsed column-wise, or ``None`` if any row is unusual.

    The fast path of :func:`iter_basics_columns`: when no row has a control character,
    bad UTF-8, a wrong column count or a value outside the plainest valid shapes, whole
    columns are checked and converted at once, giving what :func:`parse_basics_line`
    gives row by row. Otherwise the caller parses the chunk's rows one by one (which
    also finds each bad row's line number).
    """
    if set(map(bytes.count, lines, repeat(b"\t"))) != {8}:
        return None  # a row without exactly 9 columns
    joined = b"\t".join(lines)  # no row holds a tab more: field i of row r is 9 * r + i
    if len(joined.translate(None, _C0_DEL)) != len(joined):
        return None  # control characters (a CR ending a row included)
    if 0xC2 in joined and _C1.search(joined):
        return None
    try:
        text = joined.decode("utf-8")
    except UnicodeDecodeError:
        return None
    flat = text.split("\t")
    tconst, types, primary, original, adult, year, _end, runtime, genres = (
        flat[i::9] for i in range(9)
    )
    # Years, runtimes and genre lists repeat: each distinct value is checked and converted once.
    distinct_years, distinct_runtimes = set(year), set(runtime)
    if not (
        _column(tconst, _CLEAN_IDS)
        and all(0 < len(name) <= MAX_NAME_CHARS for name in set(types))
        and set(adult) <= _ADULT.keys()
        and all(map(_CLEAN_YEAR.fullmatch, distinct_years))
        and all(map(_CLEAN_RUNTIME.fullmatch, distinct_runtimes))
        and max(map(len, genres)) <= MAX_NAME_CHARS  # then no one genre is too long
    ):
        return None
    years = {x: None if x == NULL else int(x) for x in distinct_years}
    runtimes = {x: None if x == NULL else int(x) for x in distinct_runtimes}
    return BasicsColumns(
        [int(t[2:]) for t in tconst],
        tconst,
        types,
        [None if x == NULL else x for x in primary],
        [None if x == NULL else x for x in original],
        list(map(_ADULT.__getitem__, adult)),
        list(map(years.__getitem__, year)),
        list(map(runtimes.__getitem__, runtime)),
        list(map(_genre_names, genres)),
    )


def iter_basics_columns(
    path: Path,
    title_types: list[str],
    stats: ParseStats,
    *,
    on_bytes: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[BasicsColumns]:
    """Stream the ``title.basics`` rows of the given title types, a chunk's rows at a time.

    The header is checked first. ``on_bytes`` is called with how many more bytes of the
    (possibly compressed) file were read, for progress. Malformed kept rows are recorded
    in ``stats`` and skipped. Chunks without a kept row yield nothing.
    """
    if not title_types:
        return
    wanted = b"|".join(re.escape(t.encode("utf-8")) for t in title_types)
    # A row whose second field is one of the wanted types: the others are never decoded.
    # Anchored on the line end before the row (each chunk gets one prepended), which the
    # regex engine finds much faster than a MULTILINE "^". Possessive: the first field
    # never gives back a byte (the tab after it cannot be one of them), saving the
    # engine its retries on the ~90% of rows of other types.
    pattern = re.compile(rb"\n([^\t\n]*+\t(?:" + wanted + rb")\t[^\n]*+)")
    with open_dataset(path) as (stream, raw):
        read_header(stream, path, BASICS_COLUMNS)
        line_number = 1  # the header
        position = raw.tell()
        for buf, end, now in _prefetch(_line_buffers(stream, raw, path, chunk_bytes)):
            # buf[0] ends line `line_number`; buf[1:end] are the lines after it.
            lines: list[bytes] = pattern.findall(buf, 0, end)
            columns = _clean_columns(lines) if lines else None
            if columns is None and lines:
                rows: list[BasicsRow] = []
                counted_at, counted_line = 0, line_number
                for match in pattern.finditer(buf, 0, end):
                    try:
                        rows.append(parse_basics_line(match.group(1), stats))
                    except MalformedRow as exc:
                        start = match.start() + 1
                        counted_line += buf.count(b"\n", counted_at, start)
                        counted_at = start
                        stats.bad(counted_line, str(exc))
                if rows:
                    columns = BasicsColumns._make(map(list, zip(*rows, strict=True)))
            lines_in_chunk = _count_lines(buf, end)
            stats.rows += lines_in_chunk
            line_number += lines_in_chunk
            if on_bytes is not None:
                on_bytes(now - position)
                position = now
            if columns is not None:
                stats.kept += len(columns.number)
                yield columns


def iter_basics(
    path: Path,
    title_types: list[str],
    stats: ParseStats,
    *,
    on_bytes: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[BasicsRow]:
    """Stream the ``title.basics`` rows of the given title types (header checked first).

    Row by row what :func:`iter_basics_columns` gives (see there).
    """
    for columns in iter_basics_columns(
        path, title_types, stats, on_bytes=on_bytes, chunk_bytes=chunk_bytes
    ):
        yield from map(BasicsRow._make, zip(*columns, strict=True))


class Ratings:
    """IMDb ratings by title number, held compactly (sorted numpy arrays, ~20 bytes/title)."""

    def __init__(self, numbers: np.ndarray, ratings: np.ndarray, votes: np.ndarray) -> None:
        # IMDb's file is sorted by id: then the arrays are used as they are, not copied.
        if len(numbers) > 1 and not (numbers[1:] >= numbers[:-1]).all():
            order = np.argsort(numbers, kind="stable")
            numbers, ratings, votes = numbers[order], ratings[order], votes[order]
        # Of duplicate ids the last row wins: keep the last of each run of equal ids.
        keep = np.ones(len(numbers), dtype=bool)
        if len(numbers) > 1:
            keep[:-1] = numbers[1:] != numbers[:-1]
        self.duplicates = int(len(numbers) - keep.sum())
        if self.duplicates:
            numbers, ratings, votes = numbers[keep], ratings[keep], votes[keep]
        self.numbers, self.ratings, self.votes = numbers, ratings, votes

    def __len__(self) -> int:
        return len(self.numbers)

    def lookup_columns(
        self, numbers: Sequence[int]
    ) -> tuple[list[float | None], list[int | None], int]:
        """``(ratings, vote counts, how many found)`` of the title numbers, ``None`` if unrated."""
        if not len(numbers) or not len(self.numbers):
            return [None] * len(numbers), [None] * len(numbers), 0
        wanted = np.asarray(numbers, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.numbers, wanted), len(self.numbers) - 1)
        found = self.numbers[pos] == wanted
        # None everywhere, then the Python floats and ints of the titles found: no
        # Python loop over the titles.
        ratings = np.full(len(numbers), None, dtype=object)
        votes = np.full(len(numbers), None, dtype=object)
        at = pos[found]
        ratings[found] = self.ratings[at].tolist()
        votes[found] = self.votes[at].tolist()
        return ratings.tolist(), votes.tolist(), int(found.sum())

    def lookup(self, numbers: list[int]) -> list[tuple[float, int] | None]:
        """The ``(average_rating, num_votes)`` of each title number, or ``None``."""
        if not numbers or not len(self.numbers):
            return [None] * len(numbers)
        wanted = np.asarray(numbers, dtype=np.int64)
        pos = np.searchsorted(self.numbers, wanted)
        pos_clipped = np.minimum(pos, len(self.numbers) - 1)
        found = (self.numbers[pos_clipped] == wanted).tolist()
        ratings = self.ratings[pos_clipped].tolist()
        votes = self.votes[pos_clipped].tolist()
        return [(ratings[i], votes[i]) if hit else None for i, hit in enumerate(found)]


def _shown(field: bytes) -> str:
    return repr(field[:40].decode("utf-8", errors="replace"))


def _parse_rating(line: bytes) -> tuple[int, float, int]:
    """Parse one ``title.ratings`` data row: ``(title number, rating, votes)``.

    Only ASCII digits (and the rating's one ``.``) pass: a sign, a space, an exponent, a
    control character or ``nan`` makes the row malformed, as do a rating outside 0-10 and
    a vote count the store cannot hold.
    """
    if line[-1:] == b"\r":
        line = line[:-1]
    f = line.split(b"\t")
    if len(f) != 3:
        raise MalformedRow(f"{len(f)} columns, expected 3")
    tconst, rating_text, votes_text = f
    digits = tconst[2:]
    if not (tconst[:2] == b"tt" and digits.isdigit() and len(digits) <= MAX_ID_DIGITS):
        raise MalformedRow(f"not an IMDb title id: {_shown(tconst)}")
    if not rating_text.replace(b".", b"", 1).isdigit():
        raise MalformedRow(f"averageRating is not a number: {_shown(rating_text)}")
    rating = float(rating_text)
    if not rating <= MAX_RATING:
        raise MalformedRow(f"averageRating {_shown(rating_text)} is not between 0 and 10")
    if not votes_text.isdigit():
        raise MalformedRow(f"numVotes is not a whole number: {_shown(votes_text)}")
    if len(votes_text) > _INT_DIGITS or int(votes_text) > MAX_VOTES:
        raise MalformedRow(f"numVotes {_shown(votes_text)} is not between 0 and {MAX_VOTES}")
    return int(digits), rating, int(votes_text)


# What _parse_rating accepts, a whole chunk at a time (each row but the last ends with a
# line feed). Possessive quantifiers: no piece can give back a byte the next one takes,
# so they match the same rows as plain ones, without backtracking.
_RATING_ROW = rb"tt[0-9]{1,%d}+\t(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)\t[0-9]{1,%d}+" % (
    MAX_ID_DIGITS,
    _INT_DIGITS,
)
_PLAIN_RATINGS = re.compile(rb"(?:" + _RATING_ROW + rb"\n)*+(?:" + _RATING_ROW + rb")?")
_EXACT_DIGITS = 15
"""A rating of at most this many digits is ``digits / 10**decimals``, both exact doubles."""
_POWERS = np.array([float(10**k) for k in range(_EXACT_DIGITS + 1)])


def _digits_values(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The whole numbers written in ``data[starts[i]:ends[i]]`` (ASCII digits, at most 18)."""
    values = np.zeros(len(starts), dtype=np.int64)
    lengths = ends - starts
    scale = 1
    for place in range(int(lengths.max(initial=0))):  # the units, then the tens, ...
        has = lengths > place
        digits = data[np.where(has, ends - 1 - place, 0)].astype(np.int64) - 0x30
        values += np.where(has, digits, 0) * scale
        scale *= 10
    return values


def _plain_ratings(chunk: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A chunk of ``title.ratings`` rows parsed with numpy, or ``None``.

    The fast path of :func:`read_ratings`: ``None`` unless every row of the chunk is one
    that :func:`_parse_rating` accepts, and then the same values. (The row parser then
    reads the chunk, finding each bad row's line number.) No pyarrow: it would hold on to
    100-150 MiB for the rest of the import.
    """
    if not chunk or _PLAIN_RATINGS.fullmatch(chunk) is None:
        return None  # an unusual row: a CR, a byte order mark, a sign, too many digits ...
    data = np.frombuffer(chunk if chunk.endswith(b"\n") else chunk + b"\n", dtype=np.uint8)
    ends = np.flatnonzero(data == 0x0A)  # each row "tt<digits>\t<rating>\t<votes>\n"
    tabs = np.flatnonzero(data == 0x09).reshape(-1, 2)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    numbers = _digits_values(data, starts + 2, tabs[:, 0])
    votes = _digits_values(data, tabs[:, 1] + 1, ends)
    # A rating: digits with at most one "." among them. Its digits as one whole number
    # divided by 10**(digits after the "."): both exact as doubles, so the division's one
    # rounding gives the correctly rounded value, as float() does. Longer ones: float().
    begins, stops = tabs[:, 0] + 1, tabs[:, 1]
    dots = np.flatnonzero(data == 0x2E)  # only in ratings, at most one a row
    dot_at = stops.copy()
    dot_at[np.searchsorted(ends, dots)] = dots
    has_dot = dot_at < stops
    long = stops - begins - has_dot > _EXACT_DIGITS
    if long.any():  # left empty here (0.0), read by float() below
        begins, dot_at, stops = (np.where(long, stops, x) for x in (begins, dot_at, stops))
        has_dot &= ~long
    decimals = np.where(has_dot, stops - dot_at - 1, 0)
    whole = _digits_values(data, begins, dot_at)
    fraction = _digits_values(data, np.where(has_dot, dot_at + 1, stops), stops)
    ratings = (whole * _POWERS[decimals].astype(np.int64) + fraction) / _POWERS[decimals]
    for row in np.flatnonzero(long).tolist():
        ratings[row] = float(chunk[tabs[row, 0] + 1 : tabs[row, 1]])
    if not (ratings <= MAX_RATING).all() or not (votes <= MAX_VOTES).all():
        return None
    return numbers, ratings, votes


def read_ratings(
    path: Path,
    stats: ParseStats,
    *,
    on_bytes: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Ratings:
    """Read a whole ``title.ratings`` file into :class:`Ratings` (header checked first).

    Malformed rows (see :func:`_parse_rating`) are recorded in ``stats`` and left out:
    their titles are absent from the result, like titles the file does not list. Chunks
    whose rows are all plain are parsed by numpy (see :func:`_plain_ratings`),
    the others row by row.
    """
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with open_dataset(path) as (stream, raw):
        read_header(stream, path, RATINGS_COLUMNS)
        line_number = 1
        position = raw.tell()
        for chunk in iter_chunks(stream, path, chunk_bytes):
            plain = _plain_ratings(chunk)
            if plain is not None:
                parts.append(plain)
                stats.rows += len(plain[0])
                line_number += len(plain[0])
            else:
                line_number = _parse_ratings_chunk(chunk, line_number, stats, parts)
            if on_bytes is not None:
                now = raw.tell()
                on_bytes(now - position)
                position = now
    if not parts:
        parts.append(_ratings_arrays(array("q"), array("d"), array("q")))
    numbers, ratings, votes = (np.concatenate(column) for column in zip(*parts, strict=True))
    stats.kept = len(numbers)
    return Ratings(numbers, ratings, votes)


def _ratings_arrays(
    numbers: array[int], ratings: array[float], votes: array[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.frombuffer(numbers, dtype=np.int64),
        np.frombuffer(ratings, dtype=np.float64),
        np.frombuffer(votes, dtype=np.int64),
    )


def _parse_ratings_chunk(
    chunk: bytes,
    line_number: int,
    stats: ParseStats,
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> int:
    """Parse a chunk's rows one by one into ``parts``; returns the last line's number."""
    numbers, ratings, votes = array("q"), array("d"), array("q")
    lines = chunk.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        line_number += 1
        stats.rows += 1
        try:
            number, rating, vote = _parse_rating(line)
        except MalformedRow as exc:
            stats.bad(line_number, str(exc))
            continue
        numbers.append(number)
        ratings.append(rating)
        votes.append(vote)
    parts.append(_ratings_arrays(numbers, ratings, votes))
    return line_number


def verify_dataset_file(path: Path, expected: tuple[str, ...] | None) -> int:
    """Decompress a downloaded ``.gz`` to its end and check its header; returns its size.

    Raises :class:`ImdbFileError` for a file that is not gzip, is corrupt or truncated, or
    whose first line is not ``expected`` (when given).
    """
    if not _is_gzip(path):
        raise ImdbFileError(f"{path.name}: not a gzip file")
    size = 0
    with open_dataset(path) as (stream, _raw):
        if expected is not None:
            size = len(read_header(stream, path, expected))
        try:
            while True:
                data = stream.read(CHUNK_BYTES)
                if not data:
                    break
                size += len(data)
        except _READ_ERRORS as exc:
            raise _read_error(path, exc) from None
    return size


__all__ = [
    "BASICS_COLUMNS",
    "DATASET_HEADERS",
    "MAX_ID_DIGITS",
    "MAX_NAME_CHARS",
    "MAX_RATING",
    "MAX_RUNTIME_MINUTES",
    "MAX_VOTES",
    "MAX_YEAR",
    "MIN_YEAR",
    "RATINGS_COLUMNS",
    "BasicsColumns",
    "BasicsRow",
    "ImdbFileError",
    "MalformedRow",
    "ParseStats",
    "Ratings",
    "check_header",
    "clean_text",
    "iter_basics",
    "iter_basics_columns",
    "iter_chunks",
    "open_dataset",
    "parse_basics_line",
    "read_header",
    "read_ratings",
    "strip_controls",
    "verify_dataset_file",
]
