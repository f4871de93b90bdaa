"""Configuration: ``config.toml`` plus the environment, validated into one typed object.

Resolution order for the file: ``--config PATH`` > ``$REELSET_CONFIG`` > ``./config.toml``;
when none of these exists the embedded defaults apply (they equal the documented
``config.toml`` at the repository root). Relative paths resolve against the folder of
the config file (or the working directory when there is none).

Secrets come from the environment only: ``TMDB_API_KEY`` (sent as ``api_key``) or
``TMDB_READ_ACCESS_TOKEN`` (sent as ``Authorization: Bearer``). ``[tmdb] api_key`` in
the file works but is discouraged: config files end up in repositories and manifests.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from reelset.errors import ConfigError
from reelset.transport.ratespec import RateSpec, parse_rate

if TYPE_CHECKING:
    from reelset.dataset.remote import RemotePath

ENV_CONFIG = "REELSET_CONFIG"
ENV_API_KEY = "TMDB_API_KEY"
ENV_BEARER = "TMDB_READ_ACCESS_TOKEN"
DEFAULT_CONFIG_NAME = "config.toml"

_HTTP_URL_FIELDS = ("api_base_url", "image_base_url", "exports_base_url", "datasets_base_url")


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=True, allow_inf_nan=False
    )


def _check_http_url(value: str, *, allow_empty: bool = False) -> str:
    if value == "" and allow_empty:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/") if parts.path not in ("", "/") else value


def _check_rate(value: str) -> str:
    parse_rate(value)
    return value


RateText = Annotated[str, AfterValidator(_check_rate)]
"""A rate limit such as ``"50/1s"``, checked when the config loads."""


class _Paced(_Section):
    """A section with a ``rate_limit`` (TMDB's API, the image server)."""

    rate_limit: RateText

    @property
    def rate(self) -> RateSpec:
        """The parsed ``rate_limit``."""
        return parse_rate(self.rate_limit)


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SECRET_OPTION_NAMES = frozenset(
    {"key", "secret", "token", "password", "passwd"}
)
_SECRET_OPTION_PARTS = ("secret", "password", "passwd", "token", "credential", "access_key")
CREDENTIALS_HINT = (
    "credentials come from the backend's own environment or config (for S3: "
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE), never from reelset's config"
)


def posters_url_scheme(value: str) -> str | None:
    """The URL scheme of a ``posters_dir`` value (``s3``, ``file``…), ``None`` for a path."""
    match = _URL_SCHEME.match(value)
    return match.group(1).lower() if match else None


def _location(value: Any) -> Any:
    """A folder or fsspec URL setting (``posters_dir``, ``output_dir``) as a checked str."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return _check_posters_dir(value)  # the same rules for any fsspec location
    return value


def _check_posters_dir(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a folder or an fsspec URL (s3://bucket/prefix)")
    scheme = posters_url_scheme(value)
    if scheme is None:
        return value
    # The value itself is never echoed: it may hold a secret.
    parts = urlsplit(value)
    if "@" in parts.netloc:
        raise ValueError(f"the {scheme}:// URL must not embed credentials: {CREDENTIALS_HINT}")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(f"the {scheme}:// URL must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError("a file:// URL must be absolute: file:///path/to/posters")
        return value
    from fsspec.registry import known_implementations, registry

    if scheme not in known_implementations and scheme not in registry:
        raise ValueError(f"no fsspec backend for {scheme}:// (s3://, gs://, file://, ...)")
    if not parts.netloc:
        raise ValueError(f"the {scheme}:// URL must name a bucket: {scheme}://bucket/prefix")
    return value.rstrip("/")


def _check_storage_options(value: Any, where: str = "") -> None:
    """Refuse option names that hold secrets, at any depth, and URLs with credentials."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).lower()
            if (
                name in _SECRET_OPTION_NAMES
                or name.endswith("_key")
                or any(part in name for part in _SECRET_OPTION_PARTS)
            ):
                raise ValueError(f"{where}{key!r} looks like a secret: {CREDENTIALS_HINT}")
            _check_storage_options(item, f"{where}{key}.")
    elif isinstance(value, list):
        for item in value:
            _check_storage_options(item, where)
    elif isinstance(value, str) and _URL_SCHEME.match(value) and "@" in urlsplit(value).netloc:
        raise ValueError(f"{where.rstrip('.')}: a URL must not embed credentials")


class StorageSettings(_Section):
    """``[storage]``: where the store and the poster files live.

    ``posters_dir`` is a folder (relative to the config's folder) or an fsspec URL
    (``s3://bucket/prefix``, ``gs://...``, ``file:///...``); ``storage_options`` are the
    backend's non-secret options (``endpoint_url``, ``region_name``...). Credentials
    never come from here: see :data:`CREDENTIALS_HINT`.
    """

    url: str = "sqlite:///data/reelset.db"
    posters_dir: str = "data/posters"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    busy_timeout_s: float = Field(30.0, gt=0)
    batch_size: int = Field(500, ge=1, le=10_000)

    _posters_dir = field_validator("posters_dir", mode="before")(_location)

    @field_validator("storage_options")
    @classmethod
    def _storage_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_storage_options(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        match = re.match(r"^([a-z][a-z0-9+]*)://", value)
        if not match:
            raise ValueError(
                f"not a database URL: {value!r} (expected sqlite:///... or postgresql+psycopg://...)"
            )
        backend = match.group(1).split("+")[0]
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")
        return value


class TmdbSettings(_Paced):
    """``[tmdb]``: the TMDB API client and the scrape job."""

    api_base_url: str = "https://api.themoviedb.org/3"
    image_base_url: str = ""
    exports_base_url: str = "https://files.tmdb.org/p/exports"
    api_key: SecretStr | None = None
    rate_limit: RateText = "20/1s"
    max_workers: int = Field(8, ge=1, le=64)
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    poster_size: str = "w500"
    language: str = "en-US"
    include_adult: bool = False
    append_keywords: bool = False
    refresh_after_days: int = Field(30, ge=0)
    export_lookback_days: int = Field(7, ge=0, le=60)
    changes_window_days: int = Field(14, ge=1, le=14)
    changes_first_days: int = Field(14, ge=1, le=365)
    discover_start_date: str = "1874-01-01"

    @field_validator("api_base_url", "exports_base_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("image_base_url")
    @classmethod
    def _image_url(cls, value: str) -> str:
        value = _check_http_url(value, allow_empty=True)
        return value if value == "" or value.endswith("/") else value + "/"

    @field_validator("discover_start_date")
    @classmethod
    def _date(cls, value: str) -> str:
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a date (YYYY-MM-DD): {value!r}") from None
        return value


class PosterSettings(_Paced):
    """``[posters]``: poster downloads, verification and storage."""

    enabled: bool = True
    max_workers: int = Field(8, ge=1, le=64)
    rate_limit: RateText = "50/1s"
    timeout_s: float = Field(20.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(10.0, ge=0)
    max_bytes: int = Field(10_000_000, ge=1024)
    max_pixels: int = Field(40_000_000, ge=10_000)
    allowed_formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP"])
    verify_processes: int = Field(-1, ge=-1, le=64)
    resize_max_side: int = Field(0, ge=0, le=10_000)
    resize_quality: int = Field(90, ge=1, le=100)
    recheck_rejected_after_days: float = Field(7.0, ge=0, le=3650)
    """A poster rejected for a reason a new download may fix (``truncated``,
    ``not_an_image``, ``corrupt``) is downloaded again by a run this many days later
    (0: never)."""
    claim_batch: int = Field(64, ge=1, le=10_000)
    """Posters a ``reelset posters --worker`` claims at a time (PostgreSQL stores)."""
    lease_seconds: float = Field(300.0, ge=1, le=86_400)
    """How long a worker's claim holds without renewal: the posters of a worker that died
    are claimed by another this long after its last renewal."""

    @field_validator("allowed_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one image format")
        return [v.upper() for v in value]


class FailureSettings(_Section):
    """``[failures]``: when a failure that keeps failing is abandoned.

    A ``fetch_failures`` row is abandoned once it has failed ``max_attempts`` times over
    at least ``min_age_days`` (from its first failure to its last): later runs no longer
    retry it and it no longer makes them exit 1 (``--retry-abandoned`` tries it again).
    """

    max_attempts: int = Field(5, ge=1, le=1000)
    min_age_days: float = Field(3.0, ge=0, le=3650)


def _default_imdb_map() -> dict[str, int]:
    return {
        "Action": 28,
        "Adventure": 12,
        "Animation": 16,
        "Comedy": 35,
        "Crime": 80,
        "Documentary": 99,
        "Drama": 18,
        "Family": 10751,
        "Fantasy": 14,
        "History": 36,
        "Horror": 27,
        "Music": 10402,
        "Musical": 10402,
        "Mystery": 9648,
        "Romance": 10749,
        "Sci-Fi": 878,
        "Thriller": 53,
        "War": 10752,
        "Western": 37,
    }


class GenreSettings(_Section):
    """``[genres]``: names for ids TMDB's list lacks, and the IMDb -> TMDB mapping."""

    patch: dict[int, str] = Field(default_factory=lambda: {10769: "Foreign"})
    imdb_to_tmdb: dict[str, int] = Field(default_factory=_default_imdb_map)

    @field_validator("patch", mode="before")
    @classmethod
    def _patch_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out: dict[int, Any] = {}
            for key, name in value.items():
                try:
                    out[int(key)] = name
                except (TypeError, ValueError):
                    raise ValueError(f"genre id {key!r} is not an integer") from None
            return out
        return value


class ImdbSettings(_Section):
    """``[imdb]``: IMDb's official datasets and an optional cinemagoer database."""

    datasets_base_url: str = "https://datasets.imdbws.com"
    files: list[str] = Field(
        default_factory=lambda: ["title.basics.tsv.gz", "title.ratings.tsv.gz"]
    )
    title_types: list[str] = Field(default_factory=lambda: ["movie", "tvMovie"])
    cinemagoer_uri: str = ""
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0, le=50)
    backoff_initial_s: float = Field(1.0, ge=0)
    batch_size: int = Field(5000, ge=1, le=1_000_000)

    @field_validator("datasets_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("files")
    @classmethod
    def _files(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tsv\.gz", name) or ".." in name:
                raise ValueError(f"{name!r} is not a dataset file name (like title.basics.tsv.gz)")
        return value

    @field_validator("title_types")
    @classmethod
    def _title_types(cls, value: list[str]) -> list[str]:
        if not value or any(not t or not t.isalnum() for t in value):
            raise ValueError("must list IMDb title types like movie, tvMovie")
        return value


class SplitFractions(_Section):
    """``[build.splits]``: the share of movies in each split; they must sum to 1."""

    train: float = Field(0.8, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _sum(self) -> SplitFractions:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, not {total:g}")
        return self


class BuildSettings(_Section):
    """``[build]``: the dataset builder's rules and output."""

    output_dir: str = "data/datasets"
    """A folder (relative to the config's folder) or an fsspec URL (``s3://bucket/prefix``,
    ``gs://...``, ``file:///...``) read and written with ``[storage] storage_options``."""
    name: str = "genres"
    label_source: Literal["tmdb", "imdb", "union"] = "tmdb"
    dedupe_imdb_id: bool = True
    dedupe_title_year_overview: bool = True
    dedupe_overview: bool = True
    poster_phash_distance: int = Field(4, ge=0, le=64)
    drop_poster_duplicates: bool = False
    placeholder_overviews: list[str] = Field(
        default_factory=lambda: [
            "No overview found.",
            "No overview found",
            "We don't have an overview translated in English. "
            "Help us expand our database by adding one.",
            "Plot unknown.",
            "TBA",
            "N/A",
        ]
    )
    min_overview_words: int = Field(5, ge=0)
    drop_adult: bool = True
    require_genres: bool = True
    languages: list[str] = Field(default_factory=list)
    require_poster: bool = False
    min_genre_count: int = Field(10, ge=0)
    seed: int = 42
    splits: SplitFractions = Field(default_factory=SplitFractions)
    row_group_size: int = Field(50_000, ge=100)
    images: Literal["embed", "webdataset", "reference"] = "embed"
    shard_max_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    image_max_side: int = Field(0, ge=0, le=10_000)
    image_quality: int = Field(90, ge=1, le=95)
    baseline: bool = True
    baseline_max_samples: int = Field(20_000, ge=100)

    _output_dir = field_validator("output_dir", mode="before")(_location)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError(f"dataset name {value!r} must be letters, digits, '.', '_' or '-'")
        return value


class Settings(_Section):
    """The whole validated configuration."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    tmdb: TmdbSettings = Field(default_factory=TmdbSettings)
    posters: PosterSettings = Field(default_factory=PosterSettings)
    failures: FailureSettings = Field(default_factory=FailureSettings)
    genres: GenreSettings = Field(default_factory=GenreSettings)
    imdb: ImdbSettings = Field(default_factory=ImdbSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)

    # Not from the file: where it came from, for messages and path resolution.
    source: str = Field("<defaults>", exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _options_need_url(self) -> Settings:
        locations = (self.storage.posters_dir, self.build.output_dir)
        if self.storage.storage_options and all(
            posters_url_scheme(value) in (None, "file") for value in locations
        ):
            raise ValueError(
                "[storage] storage_options apply only to an object-storage posters_dir or "
                "[build] output_dir URL"
            )
        return self

    @property
    def posters_url(self) -> str | None:
        """``storage.posters_dir`` when it is an object-storage URL (``s3://...``), else
        ``None`` (a local folder or a ``file://`` URL: see :attr:`posters_dir`)."""
        value = self.storage.posters_dir
        return value if posters_url_scheme(value) not in (None, "file") else None

    @property
    def posters_dir(self) -> Path:
        """The local posters folder: ``storage.posters_dir`` resolved against the config's
        folder (a ``file://`` URL gives its path). Raises :class:`ConfigError` when the
        posters live in object storage (:attr:`posters_url`): go through
        :class:`reelset.posters.filestore.PosterStore` then."""
        value = self.storage.posters_dir
        scheme = posters_url_scheme(value)
        if scheme == "file":
            return Path(url2pathname(urlsplit(value).path))
        if scheme is not None:
            raise ConfigError(
                f"[storage] posters_dir is in object storage ({scheme}://): "
                "this needs a local posters folder"
            )
        return _resolve(self.base_dir, Path(value))

    @property
    def posters_location(self) -> str:
        """Where the posters live, for messages: the local folder or the URL."""
        return self.posters_url or str(self.posters_dir)

    @property
    def output_dir(self) -> Path | RemotePath:
        """``build.output_dir``: a folder resolved against the config's folder (a
        ``file://`` URL gives its path), or the object-storage location of a URL, read and
        written with ``[storage] storage_options``."""
        value = self.build.output_dir
        scheme = posters_url_scheme(value)
        if scheme == "file":
            return Path(url2pathname(urlsplit(value).path))
        if scheme is not None:
            from reelset.dataset.remote import RemotePath

            return RemotePath.from_url(value, self.storage.storage_options)
        return _resolve(self.base_dir, Path(value))

    @property
    def database_url(self) -> str:
        """``storage.url`` with a relative SQLite path resolved against the config's folder."""
        return resolve_database_url(self.storage.url, self.base_dir)

    def credentials(self) -> Credentials:
        """TMDB credentials from the environment, else the (discouraged) config key."""
        api_key = os.environ.get(ENV_API_KEY, "").strip()
        bearer = os.environ.get(ENV_BEARER, "").strip()
        if api_key:
            return Credentials(api_key=SecretStr(api_key))
        if bearer:
            return Credentials(bearer_token=SecretStr(bearer))
        if self.tmdb.api_key is not None and self.tmdb.api_key.get_secret_value():
            return Credentials(api_key=self.tmdb.api_key)
        return Credentials()

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with every secret removed (for manifests and runs)."""
        data = self.model_dump(mode="json")
        data["tmdb"].pop("api_key", None)
        data["storage"]["url"] = mask_url(data["storage"]["url"])
        return data


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to TMDB; ``repr`` never shows the secret."""

    api_key: SecretStr | None = None
    bearer_token: SecretStr | None = None

    @property
    def present(self) -> bool:
        """Whether any credential is set."""
        return self.api_key is not None or self.bearer_token is not None

    def secrets(self) -> list[str]:
        """The raw secret values, for redaction filters."""
        return [s.get_secret_value() for s in (self.api_key, self.bearer_token) if s is not None]


def _resolve(base: Path, path: Path) -> Path:
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else (base / path).resolve()


def resolve_database_url(url: str, base_dir: Path) -> str:
    """Resolve a relative ``sqlite:///relative/path.db`` against ``base_dir``."""
    prefix = re.match(r"^sqlite(\+\w+)?:///", url)
    if not prefix:
        return url
    rest = url[prefix.end() :]
    if rest in ("", ":memory:") or rest.startswith("/") or rest.startswith("file:"):
        return url
    path_part, sep, query = rest.partition("?")
    resolved = (base_dir / path_part).resolve()
    return f"{url[: prefix.end()]}{resolved}{sep}{query}"


def mask_url(url: str) -> str:
    """Hide the password in a database URL: ``postgresql://u:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which config file applies: ``explicit`` > ``$REELSET_CONFIG`` > ``./config.toml``.

    Returns ``None`` when no file is named and ``./config.toml`` does not exist. A file
    named explicitly or by the environment must exist.
    """
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from --config)")
        return path
    env = os.environ.get(ENV_CONFIG, "").strip()
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from ${ENV_CONFIG})")
        return path
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def _format_validation_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if err["type"] == "extra_forbidden":
        what = "unknown key (not a reelset setting; check the spelling)"
    else:
        what = err["msg"].removeprefix("Value error, ")
    if len(loc) >= 2:
        where = f"[{'.'.join(loc[:-1])}] {loc[-1]}"
    elif loc:
        where = f"{loc[0]}" if err["type"] != "extra_forbidden" else f"[{loc[0]}]"
    else:
        where = "(top level)"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}: {what}{more}"


def settings_from_dict(
    data: dict[str, Any], *, source: str = "<defaults>", base_dir: Path | None = None
) -> Settings:
    """Validate a parsed TOML document into :class:`Settings` (raises :class:`ConfigError`)."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from None
    return settings.model_copy(update={"source": source, "base_dir": base_dir or Path.cwd()})


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find, read and validate the configuration (raises :class:`ConfigError`)."""
    path = find_config(explicit)
    if path is None:
        return settings_from_dict({}, source="<defaults>", base_dir=Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.__class__.__name__}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return settings_from_dict(data, source=str(path), base_dir=path.resolve().parent)
