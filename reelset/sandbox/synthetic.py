"""Deterministic synthetic movies, for catalogs of any size (a million is fine).

Movie ``index`` of generator ``seed`` is a pure function of ``(seed, index)``:
:func:`synthetic_movie` builds it without building any other movie, so a benchmark can
write a million movies to a store without a server, and a sandbox can serve a
million-movie catalog without materializing it. The few columns a server must sort and
filter on (id, popularity, release date, adult, votes) are computed for all movies at
once as compact numpy arrays by :func:`synthetic_columns`, using integer arithmetic only,
so the vectorized and the per-movie paths agree bit for bit.

What the movies look like:

- ids strictly increase with the index, with gaps of 1 to 5;
- popularity is heavy-tailed (most movies below 1, a few in the hundreds), like TMDB's;
- release dates span 1900-2026, skewed to recent years; about 2% have none (``""``);
- about 0.8% are adult; 1-5 genres each, skewed to Drama, Comedy and Thriller; about 2% of
  movies (foreign-language ones) also carry the retired genre 10769 "Foreign";
- about 2.5% have an empty overview; overviews vary from one to four sentences;
- about 1% have no IMDb id, and about 0.3% share the IMDb id of the previous movie (TMDB
  has such duplicate entries); about 2% have no poster and 8% no backdrop.
"""

from __future__ import annotations

import base64
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from reelset.sandbox.genres import FOREIGN_GENRE_ID
from reelset.sandbox.movie_shapes import Movie, details, external_ids, genres_from_ids

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

# One stream per independent random quantity of a movie.
_S_ID, _S_POP, _S_DATE, _S_NODATE, _S_ADULT, _S_VOTES, _S_TEXT = 1, 2, 3, 4, 5, 6, 7
_S_DUP, _S_NOIMDB, _S_POSTER, _S_BACKDROP, _S_IMGOFF, _S_TITLE = 8, 9, 10, 11, 12, 13

MISSING_DAY = -(10**6)
"""Release-day value (days since 1970-01-01) of a movie without a release date."""

_FIRST_YEAR, _LAST_YEAR = 1900, 2026
_EPOCH = date(1970, 1, 1)
_YEAR_START = [(date(y, 1, 1) - _EPOCH).days for y in range(_FIRST_YEAR, _LAST_YEAR + 1)]
_YEAR_LEN = [
    366 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 365
    for y in range(_FIRST_YEAR, _LAST_YEAR + 1)
]
_YEAR_START_NP = np.array(_YEAR_START, dtype=np.int64)
_YEAR_LEN_NP = np.array(_YEAR_LEN, dtype=np.int64)

_IMDB_BASE = 1_000_000
_TOKEN_BITS = 40
_TOKEN_MOD = 1 << _TOKEN_BITS
_TOKEN_MULT = 0x5DEECE66D  # odd, so multiplication mod 2**40 is invertible
_TOKEN_INV = pow(_TOKEN_MULT, -1, _TOKEN_MOD)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(_B62)}


def _mix(x: Any) -> Any:
    """splitmix64's finalizer; works on Python ints and on uint64 numpy arrays alike."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@lru_cache(maxsize=256)
def _prefix(seed: int, stream: int) -> int:
    return int(_mix(_mix(seed & _M64) ^ ((stream * _GOLDEN) & _M64)))


def _mix_int(x: int) -> int:
    """:func:`_mix` specialised to Python ints (the hot path of per-movie generation)."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _h(seed: int, index: int, stream: int) -> int:
    return _mix_int(_prefix(seed, stream) ^ index)


def _h_np(seed: int, idx: npt.NDArray[np.uint64], stream: int) -> npt.NDArray[np.uint64]:
    result: npt.NDArray[np.uint64] = _mix(idx ^ np.uint64(_prefix(seed, stream)))
    return result


# ---------------------------------------------------------------------------------------
# Columns: the per-movie scalars and their vectorized twin (keep the two in step).


@dataclass(frozen=True)
class _Scalars:
    tmdb_id: int
    popularity_milli: int
    release_day: int
    adult: bool
    vote_count: int
    vote_average_tenths: int


def _pop_milli(r24: int) -> int:
    return 600 + 838_860_800 // (r24 + 839)


def _release_day(h: int, h_missing: int) -> int:
    if h_missing % 1000 < 20:
        return MISSING_DAY
    a, b, c = h & 0xFFFF, (h >> 16) & 0xFFFF, (h >> 32) & 0xFFFF
    back = (((a * b * c) >> 32) * 127) >> 16
    year_idx = (_LAST_YEAR - _FIRST_YEAR) - back
    doy = ((h >> 48) * _YEAR_LEN[year_idx]) >> 16
    return _YEAR_START[year_idx] + doy


def _scalars(seed: int, index: int) -> _Scalars:
    pop = _pop_milli(_h(seed, index, _S_POP) >> 40)
    hv = _h(seed, index, _S_VOTES)
    votes = ((pop - 600) * (1 + hv % 200)) // 2000
    return _Scalars(
        tmdb_id=2 + 3 * index + _h(seed, index, _S_ID) % 3,
        popularity_milli=pop,
        release_day=_release_day(_h(seed, index, _S_DATE), _h(seed, index, _S_NODATE)),
        adult=_h(seed, index, _S_ADULT) % 1000 < 8,
        vote_count=votes,
        vote_average_tenths=0 if votes == 0 else 20 + (hv >> 8) % 70,
    )


@dataclass
class MovieColumns:
    """A catalog's sortable columns, one numpy array each, row-aligned with its movies."""

    ids: npt.NDArray[np.int64]
    popularity: npt.NDArray[np.float64]
    release_days: npt.NDArray[np.int64]
    adult: npt.NDArray[np.bool_]
    vote_count: npt.NDArray[np.int64]
    vote_average: npt.NDArray[np.float64]

    def copy(self) -> MovieColumns:
        """Independent copies of every array."""
        return MovieColumns(*(getattr(self, f.name).copy() for f in fields(self)))


def synthetic_columns(seed: int, n: int, start: int = 0) -> MovieColumns:
    """Compute the sortable columns of movies ``start..start+n-1`` of ``seed`` at once."""
    idx = np.arange(start, start + n, dtype=np.uint64)
    ids = (2 + 3 * idx + _h_np(seed, idx, _S_ID) % 3).astype(np.int64)
    r24 = (_h_np(seed, idx, _S_POP) >> 40).astype(np.int64)
    pop_milli = 600 + 838_860_800 // (r24 + 839)
    h = _h_np(seed, idx, _S_DATE)
    a, b, c = h & 0xFFFF, (h >> 16) & 0xFFFF, (h >> 32) & 0xFFFF
    back = ((((a * b * c) >> 32) * 127) >> 16).astype(np.int64)
    year_idx = (_LAST_YEAR - _FIRST_YEAR) - back
    doy = ((h >> 48).astype(np.int64) * _YEAR_LEN_NP[year_idx]) >> 16
    days = _YEAR_START_NP[year_idx] + doy
    missing = (_h_np(seed, idx, _S_NODATE) % 1000) < 20
    days[missing] = MISSING_DAY
    hv = _h_np(seed, idx, _S_VOTES)
    votes = ((pop_milli - 600) * (1 + (hv % 200).astype(np.int64))) // 2000
    tenths = 20 + ((hv >> 8) % 70).astype(np.int64)
    tenths[votes == 0] = 0
    return MovieColumns(
        ids=ids,
        popularity=pop_milli / 1000.0,
        release_days=days,
        adult=(_h_np(seed, idx, _S_ADULT) % 1000) < 8,
        vote_count=votes,
        vote_average=tenths / 10.0,
    )


@lru_cache(maxsize=65536)
def day_to_iso(day: int) -> str:
    """``"YYYY-MM-DD"`` for days since 1970-01-01, ``""`` for :data:`MISSING_DAY`."""
    if day == MISSING_DAY:
        return ""
    return (_EPOCH + timedelta(days=int(day))).isoformat()


def iso_to_day(text: str) -> int:
    """Days since 1970-01-01 of ``"YYYY-MM-DD"``; :data:`MISSING_DAY` for ``""``."""
    if not text:
        return MISSING_DAY
    return (date.fromisoformat(text) - _EPOCH).days


# ---------------------------------------------------------------------------------------
# Identifiers that can be mapped back to the index (IMDb ids, image file names).


def _no_imdb(seed: int, index: int) -> bool:
    return _h(seed, index, _S_NOIMDB) % 1000 < 10


def _raw_dup(seed: int, index: int) -> bool:
    return _h(seed, index, _S_DUP) % 1000 < 3


def _is_dup(seed: int, index: int) -> bool:
    # Only pairs, never chains: the previous movie must not itself be a duplicate.
    return (
        index > 0
        and _raw_dup(seed, index)
        and not _raw_dup(seed, index - 1)
        and not _no_imdb(seed, index - 1)
    )


def synthetic_imdb_id(seed: int, index: int) -> str | None:
    """The IMDb id of movie ``index`` (``None`` for the ~1% without one)."""
    if _no_imdb(seed, index):
        return None
    own = index - 1 if _is_dup(seed, index) else index
    return f"tt{_IMDB_BASE + 3 * own:07d}"


def indexes_for_imdb_id(seed: int, n: int, imdb_id: str) -> list[int]:
    """Indexes (< ``n``) of the movies carrying ``imdb_id`` (0, 1 or 2 of them)."""
    if not imdb_id.startswith("tt") or not imdb_id[2:].isdigit():
        return []
    offset = int(imdb_id[2:]) - _IMDB_BASE
    if offset < 0 or offset % 3:
        return []
    k = offset // 3
    return [i for i in (k, k + 1) if 0 <= i < n and synthetic_imdb_id(seed, i) == imdb_id]


@lru_cache(maxsize=256)
def _token_offset(seed: int, stream: int) -> int:
    return _h(seed, 0, _S_IMGOFF + stream) % _TOKEN_MOD


# base64 digits mapped onto base62 ones ("+" and "/" become letters).
_B64_TO_B62 = bytes.maketrans(b"+/", b"Qx")


def _token(seed: int, index: int, stream: int) -> str:
    # 7 base62 digits encode the index (so a file name maps back to its movie), 20 more
    # come from the movie's hash so names look random.
    v = (index * _TOKEN_MULT + _token_offset(seed, stream)) % _TOKEN_MOD
    head = []
    for _ in range(7):
        v, digit = divmod(v, 62)
        head.append(_B62[digit])
    h1 = _h(seed, index, stream)
    h2 = _mix_int(h1 ^ stream)
    tail = base64.b64encode(((h1 << 64) | h2).to_bytes(16, "big")[:15])
    return "".join(reversed(head)) + tail.translate(_B64_TO_B62).decode("ascii")


def _index_from_token(seed: int, token: str, stream: int) -> int | None:
    if len(token) != 27 or any(c not in _B62_INDEX for c in token):
        return None
    v = 0
    for c in token[:7]:
        v = v * 62 + _B62_INDEX[c]
    if v >= _TOKEN_MOD:
        return None
    return ((v - _token_offset(seed, stream)) * _TOKEN_INV) % _TOKEN_MOD


def _poster_path(seed: int, index: int) -> str | None:
    if _h(seed, index, _S_POSTER) % 100 < 2:
        return None
    return "/" + _token(seed, index, _S_POSTER) + ".jpg"


def _backdrop_path(seed: int, index: int) -> str | None:
    if _h(seed, index, _S_BACKDROP) % 100 < 8:
        return None
    return "/" + _token(seed, index, _S_BACKDROP) + ".jpg"


def index_for_image(seed: int, n: int, file_name: str) -> int | None:
    """The index (< ``n``) of the movie whose poster or backdrop is ``file_name``."""
    if not file_name.endswith(".jpg"):
        return None
    for stream, path_of in ((_S_POSTER, _poster_path), (_S_BACKDROP, _backdrop_path)):
        index = _index_from_token(seed, file_name[:-4], stream)
        if index is not None and index < n and path_of(seed, index) == "/" + file_name:
            return index
    return None


# ---------------------------------------------------------------------------------------
# Text: titles, overviews, genres, keywords, companies.

T = TypeVar("T")


class _Draws:
    """Small random integers cut from a splitmix64 stream (integer-only, so every platform
    and Python version draws the same; and much cheaper to seed than ``random.Random``)."""

    __slots__ = ("_bits", "_counter", "_key", "_left")

    def __init__(self, key: int) -> None:
        self._key = key
        self._counter = 0
        self._bits = 0
        self._left = 0

    def below(self, n: int) -> int:
        """An integer in ``[0, n)`` for ``1 <= n <= 65536``."""
        if not self._left:
            self._counter += 1
            self._bits = _mix_int(self._key ^ ((self._counter * _GOLDEN) & _M64))
            self._left = 4
        self._left -= 1
        value = self._bits & 0xFFFF
        self._bits >>= 16
        return (value * n) >> 16

    def pick(self, items: Sequence[T]) -> T:
        """One item of ``items``."""
        return items[self.below(len(items))]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """``k`` distinct items of ``items``, in draw order."""
        pool = list(items)
        return [pool.pop(self.below(len(pool))) for _ in range(min(k, len(pool)))]

    def weighted(self, table: _Weighted[T]) -> T:
        """A value of ``table`` drawn with its weight."""
        return table.values[bisect_right(table.cumulative, self.below(table.cumulative[-1]))]


class _Weighted(Generic[T]):
    """Values with integer weights, prepared for :meth:`_Draws.weighted`."""

    def __init__(self, pairs: tuple[tuple[T, int], ...]) -> None:
        self.values = [value for value, _ in pairs]
        self.cumulative = list(accumulate(weight for _, weight in pairs))


_LANGUAGES: tuple[tuple[str, int, str, str, str], ...] = (
    # code, weight, english name, native name, country
    ("en", 600, "English", "English", "US"),
    ("fr", 60, "French", "Français", "FR"),
    ("es", 50, "Spanish", "Español", "ES"),
    ("ja", 45, "Japanese", "日本語", "JP"),
    ("de", 40, "German", "Deutsch", "DE"),
    ("it", 30, "Italian", "Italiano", "IT"),
    ("ko", 30, "Korean", "한국어/조선말", "KR"),
    ("zh", 30, "Mandarin", "普通话", "CN"),
    ("hi", 25, "Hindi", "हिन्दी", "IN"),
    ("ru", 25, "Russian", "Pусский", "RU"),
    ("pt", 25, "Portuguese", "Português", "BR"),
    ("sv", 15, "Swedish", "svenska", "SE"),
    ("da", 10, "Danish", "Dansk", "DK"),
    ("tr", 15, "Turkish", "Türkçe", "TR"),
)
_LANG_INFO = {lang[0]: lang for lang in _LANGUAGES}
_COUNTRY_NAMES = {
    "US": "United States of America",
    "FR": "France",
    "ES": "Spain",
    "JP": "Japan",
    "DE": "Germany",
    "IT": "Italy",
    "KR": "South Korea",
    "CN": "China",
    "IN": "India",
    "RU": "Russia",
    "BR": "Brazil",
    "SE": "Sweden",
    "DK": "Denmark",
    "TR": "Turkey",
    "GB": "United Kingdom",
    "CA": "Canada",
}

_NATIVE_WORDS: dict[str, tuple[str, ...]] = {
    "fr": ("La", "Nuit", "Rouge", "Le", "Silence", "des", "Ombres", "Dernier", "Été", "Amour"),
    "es": ("El", "Secreto", "La", "Casa", "del", "Río", "Noche", "Sombra", "Verano", "Lobo"),
    "ja": ("夜", "の", "海", "風", "物語", "東京", "影", "夏", "雨", "刀"),
    "de": ("Die", "Nacht", "Der", "Schatten", "des", "Winters", "Stadt", "Wald", "Weg"),
    "it": ("La", "Notte", "Il", "Segreto", "della", "Luna", "Strada", "Estate", "Mare"),
    "ko": ("밤", "의", "바다", "비밀", "도시", "겨울", "살인", "기억", "사랑"),
    "zh": ("夜", "之", "城", "江湖", "风", "云", "英雄", "秘密", "梦"),
    "hi": ("रात", "का", "दिल", "सपना", "प्यार", "शहर", "राज़"),
    "ru": ("Ночь", "и", "Город", "Тень", "Зима", "Дорога", "Тайна", "Брат"),
    "pt": ("A", "Noite", "O", "Segredo", "da", "Cidade", "Mar", "Verão"),
    "sv": ("Natten", "och", "Skogen", "Vinter", "Hemlighet", "Staden"),
    "da": ("Natten", "og", "Havet", "Vinter", "Hemmelighed", "Byen"),
    "tr": ("Gece", "ve", "Şehir", "Sır", "Kış", "Yol", "Deniz"),
}

_TITLE_ADJ = (
    "Silent",
    "Last",
    "Broken",
    "Hidden",
    "Golden",
    "Dark",
    "Lost",
    "Midnight",
    "Crimson",
    "Burning",
    "Frozen",
    "Endless",
    "Wild",
    "Final",
    "Secret",
    "Distant",
    "Iron",
    "Quiet",
    "Little",
    "Savage",
    "Electric",
    "Hollow",
    "Bright",
    "Forgotten",
    "Shattered",
    "Blue",
)
_TITLE_NOUN = (
    "Harbor",
    "Road",
    "Kingdom",
    "Summer",
    "Witness",
    "River",
    "Empire",
    "Promise",
    "Horizon",
    "Garden",
    "Storm",
    "Shadow",
    "Frontier",
    "Heart",
    "Signal",
    "Island",
    "Dream",
    "Mountain",
    "Border",
    "Letter",
    "Station",
    "Hunter",
    "Mirror",
    "Season",
    "Orchard",
    "Voyage",
    "Circus",
    "Canyon",
    "Lighthouse",
    "Machine",
    "Saint",
    "Reckoning",
    "Echo",
)
_TITLE_SUFFIX = ("II", "III", "Returns", "Reloaded", "Origins", "Part Two", "Rising")

_SUBJECTS = (
    "A retired detective",
    "Two estranged sisters",
    "A young farmer",
    "An ambitious lawyer",
    "A washed-up boxer",
    "A shy schoolteacher",
    "A team of astronauts",
    "A grieving widower",
    "A small-town sheriff",
    "A brilliant but troubled scientist",
    "Three childhood friends",
    "A runaway teenager",
    "An aging rock star",
    "A disgraced journalist",
    "A rookie cop",
    "A family of musicians",
    "A lonely robot",
    "A stubborn old fisherman",
    "A con artist",
    "A village midwife",
    "An exiled prince",
    "A night-shift nurse",
    "A chess prodigy",
)
_VERBS = (
    "must confront",
    "discovers",
    "sets out to find",
    "is forced to protect",
    "stumbles upon",
    "tries to escape",
    "falls in love with",
    "becomes obsessed with",
    "agrees to investigate",
    "races against time to stop",
    "returns home to face",
    "teams up with",
    "is haunted by",
    "fights to reclaim",
)
_OBJECTS = (
    "a buried family secret",
    "the truth about her past",
    "a mysterious stranger",
    "a dangerous criminal syndicate",
    "an ancient curse",
    "a stolen painting",
    "the man who ruined his life",
    "a runaway bride",
    "a deadly virus",
    "a lost treasure",
    "a forbidden love",
    "the ghost of a former lover",
    "an alien signal",
    "a corrupt mayor",
    "a missing child",
    "a conspiracy reaching the highest offices",
)
_SETTINGS = (
    "in a remote mountain village",
    "during the last days of the war",
    "on the streets of 1970s New York",
    "aboard a failing space station",
    "in a sleepy coastal town",
    "across the deserts of the American West",
    "in the heart of Tokyo",
    "during a record-breaking heat wave",
    "on a cruise ship",
    "in a boarding school for girls",
    "in a near-future megacity",
    "along the Silk Road",
)
_FOLLOWUPS = (
    "But nothing is what it seems.",
    "Time is running out.",
    "What begins as a simple favor soon spirals out of control.",
    "Old wounds reopen as the past catches up with them.",
    "Along the way, unlikely friendships are formed.",
    "Every choice has a price.",
    "The closer they get, the more dangerous it becomes.",
    "Based on a true story.",
    "Some secrets are better left buried.",
    "Together they learn what family really means.",
)
_TAGLINES = (
    "Some secrets never die.",
    "The adventure of a lifetime.",
    "Trust no one.",
    "Love knows no borders.",
    "Every legend has a beginning.",
    "Run.",
    "The truth is out there.",
    "One night changed everything.",
    "Fear has a new face.",
)
_KEYWORDS = (
    "based on novel",
    "revenge",
    "friendship",
    "murder",
    "love",
    "small town",
    "family",
    "dystopia",
    "time travel",
    "heist",
    "coming of age",
    "serial killer",
    "road trip",
    "world war ii",
    "biography",
    "sport",
    "high school",
    "alien",
    "robot",
    "monster",
    "detective",
    "prison",
    "kidnapping",
    "corruption",
    "survival",
    "music",
    "dancing",
    "wedding",
    "christmas",
    "new york city",
    "paris",
    "london",
    "independent film",
    "woman director",
    "female protagonist",
    "father son relationship",
    "magic",
    "zombie",
    "vampire",
    "superhero",
    "spy",
    "martial arts",
    "cult film",
    "remake",
    "sequel",
    "satire",
    "dark comedy",
    "mockumentary",
    "found footage",
    "whodunit",
)
_KEYWORD_IDS = {name: 180_000 + k for k, name in enumerate(_KEYWORDS)}
_COMPANIES = (
    (9001, "Harbor Light Pictures", "US"),
    (9002, "Northwind Films", "GB"),
    (9003, "Studio Lumière", "FR"),
    (9004, "Blue Lantern Entertainment", "US"),
    (9005, "Sakura Eiga", "JP"),
    (9006, "Río Grande Producciones", "ES"),
    (9007, "Kestrel Media", "CA"),
    (9008, "Silver Fern Studios", "US"),
    (9009, "Hanil Pictures", "KR"),
    (9010, "Bavaria Nord", "DE"),
)

# Genre weights: how often a genre appears on a movie, skewed as on TMDB.
_GENRE_WEIGHTS: tuple[tuple[int, int], ...] = (
    (18, 450),
    (35, 300),
    (53, 200),
    (28, 170),
    (10749, 130),
    (27, 120),
    (99, 100),
    (80, 100),
    (12, 80),
    (10751, 60),
    (878, 60),
    (14, 55),
    (9648, 55),
    (16, 50),
    (10402, 40),
    (36, 35),
    (10770, 30),
    (10752, 25),
    (37, 15),
)
_GENRE_TOTAL = sum(weight for _, weight in _GENRE_WEIGHTS)
_GENRE_COUNTS = _Weighted(((1, 35), (2, 33), (3, 20), (4, 9), (5, 3)))
_LANGS = _Weighted(tuple((lang[0], lang[1]) for lang in _LANGUAGES))
_EXTRA_SENTENCES = _Weighted(((0, 30), (1, 40), (2, 20), (3, 10)))
_COMPANY_COUNTS = _Weighted(((0, 15), (1, 45), (2, 30), (3, 10)))
_KEYWORD_COUNTS = _Weighted(tuple(zip(range(9), (10, 10, 15, 15, 15, 12, 10, 8, 5), strict=True)))


def _pick_genres(draws: _Draws) -> list[int]:
    count = draws.weighted(_GENRE_COUNTS)
    pool = list(_GENRE_WEIGHTS)
    total = _GENRE_TOTAL
    chosen: list[int] = []
    for _ in range(count):
        r = draws.below(total)
        for k, (gid, weight) in enumerate(pool):
            r -= weight
            if r < 0:
                chosen.append(gid)
                total -= weight
                del pool[k]
                break
    return chosen


def _titles(seed: int, index: int) -> tuple[str, str, str]:
    """(title, original_title, original_language) of movie ``index``."""
    draws = _Draws(_h(seed, index, _S_TITLE))
    lang = draws.weighted(_LANGS)
    shape = draws.below(100)
    if shape < 35:
        title = f"The {draws.pick(_TITLE_ADJ)} {draws.pick(_TITLE_NOUN)}"
    elif shape < 60:
        title = f"{draws.pick(_TITLE_ADJ)} {draws.pick(_TITLE_NOUN)}"
    elif shape < 80:
        title = draws.pick(_TITLE_NOUN)
    else:
        title = (
            f"{draws.pick(_TITLE_NOUN)} of the {draws.pick(_TITLE_ADJ)} {draws.pick(_TITLE_NOUN)}"
        )
    if draws.below(100) < 6:
        title = f"{title} {draws.pick(_TITLE_SUFFIX)}"
    if lang == "en":
        return title, title, lang
    words = _NATIVE_WORDS[lang]
    sep = "" if lang in ("ja", "zh") else " "
    original = sep.join(draws.pick(words) for _ in range(1 + draws.below(4)))
    return title, original, lang


def synthetic_title(seed: int, index: int) -> str:
    """The ``original_title`` of movie ``index`` (cheaper than the whole movie)."""
    return _titles(seed, index)[1]


def _overview(draws: _Draws) -> str:
    if draws.below(1000) < 25:
        return ""
    parts = [
        f"{draws.pick(_SUBJECTS)} {draws.pick(_VERBS)} {draws.pick(_OBJECTS)} "
        f"{draws.pick(_SETTINGS)}."
    ]
    for _ in range(draws.weighted(_EXTRA_SENTENCES)):
        if draws.below(2):
            parts.append(draws.pick(_FOLLOWUPS))
        else:
            parts.append(f"{draws.pick(_SUBJECTS)} {draws.pick(_VERBS)} {draws.pick(_OBJECTS)}.")
    return " ".join(parts)


def _homepage(title: str) -> str:
    return "https://www." + "".join(ch for ch in title.lower() if ch.isalnum()) + ".example/"


def synthetic_movie(seed: int, index: int, *, append_to_response: Iterable[str] = ()) -> Movie:
    """Movie ``index`` of generator ``seed``, in TMDB's movie-details shape.

    ``append_to_response`` may name ``"keywords"`` and/or ``"external_ids"`` to add them as
    TMDB's ``append_to_response`` would. The result depends on ``(seed, index)`` only.
    """
    return _with_appends(synthetic_record(seed, index), append_to_response)


def synthetic_movies(
    seed: int, start: int, stop: int, *, append_to_response: Iterable[str] = ()
) -> Iterator[Movie]:
    """Movies ``start..stop-1`` of generator ``seed``, one at a time (faster in bulk).

    Equal to ``synthetic_movie(seed, i, ...)`` for each ``i``; the numeric columns are
    computed with numpy a batch at a time.
    """
    if start < 0:
        raise ValueError("start must be >= 0")
    appends = tuple(append_to_response)
    batch = 10_000
    for first in range(start, stop, batch):
        count = min(batch, stop - first)
        cols = synthetic_columns(seed, count, first)
        pop_milli = np.rint(cols.popularity * 1000).astype(np.int64).tolist()
        tenths = np.rint(cols.vote_average * 10).astype(np.int64).tolist()
        ids, days = cols.ids.tolist(), cols.release_days.tolist()
        adult, votes = cols.adult.tolist(), cols.vote_count.tolist()
        for k in range(count):
            scalars = _Scalars(ids[k], pop_milli[k], days[k], adult[k], votes[k], tenths[k])
            record = _record(seed, first + k, scalars)
            yield _with_appends(record, appends)


def _with_appends(record: Movie, appends: Iterable[str]) -> Movie:
    body = details(record)
    for name in appends:
        if name == "keywords":
            body["keywords"] = record["keywords"]
        elif name == "external_ids":
            body["external_ids"] = external_ids(record)
        else:
            raise ValueError(f"cannot append {name!r} (only keywords, external_ids)")
    return body


def synthetic_record(seed: int, index: int) -> Movie:
    """Movie ``index`` as a full catalog record (details plus keywords)."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return _record(seed, index, _scalars(seed, index))


def _record(seed: int, index: int, cols: _Scalars) -> Movie:
    title, original_title, lang = _titles(seed, index)
    draws = _Draws(_h(seed, index, _S_TEXT))
    genre_ids = _pick_genres(draws)
    if lang != "en" and len(genre_ids) < 5 and draws.below(100) < 6:
        genre_ids.append(FOREIGN_GENRE_ID)
    overview = _overview(draws)
    release_date = day_to_iso(cols.release_day)
    if not release_date:
        status = draws.pick(("Rumored", "Planned", "In Production"))
    elif release_date > "2025-12-31":
        status = "Post Production"
    else:
        status = "Released"
    budget = (1 + draws.below(300)) * 500_000 if draws.below(100) < 20 else 0
    revenue = budget * (20 + draws.below(580)) // 100 if budget and draws.below(100) < 80 else 0
    runtime = 0
    if draws.below(100) >= 3:
        runtime = 55 + draws.below(35) + draws.below(35) + draws.below(35)
    country = _LANG_INFO[lang][4]
    companies = [
        {"id": cid, "logo_path": None, "name": name, "origin_country": origin}
        for cid, name, origin in draws.sample(_COMPANIES, draws.weighted(_COMPANY_COUNTS))
    ]
    keyword_names = draws.sample(_KEYWORDS, draws.weighted(_KEYWORD_COUNTS))
    return {
        "adult": cols.adult,
        "backdrop_path": _backdrop_path(seed, index),
        "belongs_to_collection": None,
        "budget": budget,
        "genres": genres_from_ids(genre_ids),
        "homepage": _homepage(title) if draws.below(100) < 15 else "",
        "id": cols.tmdb_id,
        "imdb_id": synthetic_imdb_id(seed, index),
        "origin_country": [country],
        "original_language": lang,
        "original_title": original_title,
        "overview": overview,
        "popularity": cols.popularity_milli / 1000.0,
        "poster_path": _poster_path(seed, index),
        "production_companies": companies,
        "production_countries": [{"iso_3166_1": country, "name": _COUNTRY_NAMES[country]}],
        "release_date": release_date,
        "revenue": revenue,
        "runtime": runtime,
        "spoken_languages": [
            {
                "english_name": _LANG_INFO[lang][2],
                "iso_639_1": lang,
                "name": _LANG_INFO[lang][3],
            }
        ],
        "status": status,
        "tagline": draws.pick(_TAGLINES) if draws.below(100) < 45 else "",
        "title": title,
        "video": False,
        "vote_average": cols.vote_average_tenths / 10.0,
        "vote_count": cols.vote_count,
        "keywords": {
            "keywords": [{"id": _KEYWORD_IDS[name], "name": name} for name in keyword_names]
        },
    }
