"""A corpus of bad inputs through the real CLI: every one gets the right exit code, one line.

Each case runs ``reelset`` in-process against a fresh copy of one store (scraped from the
sandbox, with IMDb data imported) and asserts, together:

- the exit code,
- for usage, configuration, file and store errors: exactly one line on stderr, starting
  ``reelset: error:``,
- no ``internal error`` and no traceback anywhere in the output,
- the store's content (movies, genres, posters, IMDb rows) unchanged.

Server replies that are wrong become recorded failures (exit 1), never an internal error.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reelset.cli import main as cli_main
from reelset.sandbox import Catalog, Sandbox
from tests.cli_env import write_config

FIXTURES = Path(__file__).parent / "fixtures"
CONTENT_TABLES = (
    "movies",
    "genres",
    "movie_genres",
    "posters",
    "imdb_titles",
    "imdb_title_genres",
)

Setup = Callable[[Path, dict[str, dict[str, Any]]], None]


@dataclass
class Case:
    """One bad input: CLI arguments (``{w}`` is the case's folder), setup, expectation."""

    name: str
    args: list[str]
    exit_code: int
    setup: Setup | None = None
    one_line: bool = True
    """Usage-type errors print exactly one ``reelset: error:`` line; server-reply cases
    (recorded failures) may log warnings instead."""
    store_changes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- the baseline store ---------------------------------------------------------------


def _sections(w: Path, api_base_url: str, exports_base_url: str) -> dict[str, dict[str, Any]]:
    return {
        "storage": {
            "url": f"sqlite:///{w / 'store' / 'reelset.db'}",
            "posters_dir": str(w / "posters"),
            "batch_size": 50,
        },
        "tmdb": {
            "api_base_url": api_base_url,
            "exports_base_url": exports_base_url,
            "rate_limit": "100000/1s",
            "max_workers": 4,
            "timeout_s": 2.0,
            "max_retries": 1,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.02,
        },
        "posters": {"enabled": False},
        "build": {"output_dir": str(w / "datasets"), "min_genre_count": 1},
    }


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(catalog=Catalog.bundled()) as sb:
        yield sb


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> Path:
    """A folder with a scraped store (40 movies), IMDb rows and one built dataset."""
    w = tmp_path_factory.mktemp("template")
    config = write_config(w / "config.toml", _sections(w, sandbox.api_base_url,
                                                       sandbox.exports_base_url))
    env = {"TMDB_API_KEY": sandbox.api_key}
    mp = pytest.MonkeyPatch()
    try:
        for key, value in env.items():
            mp.setenv(key, value)
        assert cli_main(["--config", str(config), "scrape", "--strategy", "popular",
                         "--limit", "40", "--no-posters"]) == 0
        assert cli_main(["--config", str(config), "imdb", "import",
                         "--basics", str(FIXTURES / "imdb" / "title.basics.tsv"),
                         "--ratings", str(FIXTURES / "imdb" / "title.ratings.tsv")]) == 0
        assert cli_main(["--config", str(config), "build"]) == 0
    finally:
        mp.undo()
    return w


def _content(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in CONTENT_TABLES:
            try:
                rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            except sqlite3.DatabaseError:
                rows = [("unreadable",)]
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        conn.close()


# -- a hostile TMDB for server replies ------------------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        status, headers, body = self.routes.get(
            path, (404, {"Content-Type": "application/json"}, b'{"status_code": 34}')
        )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    """A TMDB look-alike whose /movie/{id} replies are hostile; returns its API base URL."""
    genres = json.dumps({"genres": [{"id": 18, "name": "Drama"}]}).encode()
    ok = {"Content-Type": "application/json"}
    movie = {
        "id": 0, "title": "T", "overview": "An overview.", "genres": [],
        "release_date": "2001-01-01", "external_ids": {"imdb_id": None},
    }

    def body(tmdb_id: int, **changes: Any) -> bytes:
        return json.dumps({**movie, "id": tmdb_id, **changes}).encode()

    _Hostile.routes = {
        "/3/genre/movie/list": (200, ok, genres),
        "/3/configuration": (200, ok, b'{"images": {}}'),
        "/3/movie/1": (200, ok, body(1, genres=[{"id": 2**70, "name": "Huge"}])),
        "/3/movie/2": (302, {"Location": "http://[::1"}, b""),
        "/3/movie/3": (200, ok, b'{"id": 3'),
        "/3/movie/4": (200, ok, body(999)),
        "/3/movie/5": (200, ok, b"[1, 2, 3]"),
        "/3/movie/6": (200, ok, body(6, genres="Drama")),
        "/3/movie/7": (200, {"Content-Type": "text/html"}, b"<html>busy</html>"),
        "/3/movie/8": (200, ok, body(8, title=["not", "a", "string"])),
        "/3/movie/9": (200, ok, body(9, vote_count=10**30, runtime=-5, popularity="NaN")),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/3"
    finally:
        server.shutdown()
        server.server_close()


# -- the cases --------------------------------------------------------------------------


def _config(**sections: dict[str, Any]) -> Setup:
    """Setup: merge ``sections`` into the case's config."""

    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        for name, values in sections.items():
            cfg.setdefault(name, {}).update(values)

    return apply


def _raw_config(text: str | bytes) -> Setup:
    """Setup: the config file is exactly this text."""

    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        cfg.clear()
        cfg["__raw__"] = {"text": text}

    return apply


def _file(name: str, content: str | bytes) -> Setup:
    """Setup: write a file into the case's folder."""

    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        path = w / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return apply


def _store_file(content: bytes) -> Setup:
    """Setup: point the store at a file holding ``content`` (not a reelset store)."""

    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        bad = w / "bad" / "bad.db"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(content)
        cfg["storage"]["url"] = f"sqlite:///{bad}"

    return apply


def _truncate_store(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
    db = w / "store" / "reelset.db"
    data = db.read_bytes()
    bad = w / "bad" / "truncated.db"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(data[: len(data) // 3])
    cfg["storage"]["url"] = f"sqlite:///{bad}"


def _newer_schema(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
    bad = w / "bad" / "newer.db"
    bad.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(w / "store" / "reelset.db", bad)
    conn = sqlite3.connect(bad)
    conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    conn.commit()
    conn.close()
    cfg["storage"]["url"] = f"sqlite:///{bad}"


def _foreign_db(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
    bad = w / "bad" / "foreign.db"
    bad.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(bad)
    conn.execute("CREATE TABLE movies (x INTEGER)")
    conn.commit()
    conn.close()
    cfg["storage"]["url"] = f"sqlite:///{bad}"


def _dataset_file(relative: str, content: str) -> Setup:
    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        (w / "datasets" / "genres" / relative).write_text(content, encoding="utf-8")

    return apply


def _hostile_tmdb(ids: str) -> Setup:
    def apply(w: Path, cfg: dict[str, dict[str, Any]]) -> None:
        cfg["tmdb"]["api_base_url"] = "{hostile}"
        (w / "ids.txt").write_text(ids + "\n", encoding="utf-8")

    return apply


BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)

CASES = [
    # configuration
    Case("config-not-toml", ["db", "info"], 2, _raw_config("[storage\nurl = ")),
    Case("config-binary", ["db", "info"], 2, _raw_config(b"\xff\xfe\x00garbage")),
    Case("config-unknown-key", ["db", "info"], 2, _config(storage={"nope": 1})),
    Case("config-unknown-section", ["db", "info"], 2, _config(nosuch={"a": 1})),
    Case("config-wrong-type", ["db", "info"], 2, _config(tmdb={"max_workers": "many"})),
    Case("config-zero-workers", ["db", "info"], 2, _config(tmdb={"max_workers": 0})),
    Case("config-bad-rate", ["db", "info"], 2, _config(tmdb={"rate_limit": "fast"})),
    Case("config-bad-date", ["db", "info"], 2,
         _config(tmdb={"discover_start_date": "2023-13-45"})),
    Case("config-inf-timeout", ["db", "info"], 2, _raw_config(
        "[storage]\nbusy_timeout_s = inf\n")),
    Case("config-nan-timeout", ["db", "info"], 2, _raw_config(
        "[tmdb]\ntimeout_s = nan\n")),
    Case("config-mysql-url", ["db", "info"], 2, _config(storage={"url": "mysql://x/y"})),
    Case("config-not-a-url", ["db", "info"], 2, _config(storage={"url": "reelset.db"})),
    Case("config-ftp-images", ["db", "info"], 2, _config(tmdb={"image_base_url": "ftp://x/"})),
    Case("config-no-formats", ["db", "info"], 2, _config(posters={"allowed_formats": []})),
    Case("config-splits-sum", ["db", "info"], 2, _raw_config(
        "[build.splits]\ntrain = 0.9\nvalidation = 0.2\ntest = 0.1\n")),
    Case("config-patch-key", ["db", "info"], 2, _raw_config('[genres.patch]\nabc = "X"\n')),
    Case("config-imdb-file", ["db", "info"], 2, _config(imdb={"files": ["../etc/passwd"]})),
    Case("config-batch-negative", ["db", "info"], 2, _config(storage={"batch_size": -1})),
    Case("config-max-bytes", ["db", "info"], 2, _config(posters={"max_bytes": 10})),
    Case("config-huge-int", ["db", "info"], 2, _config(tmdb={"max_workers": 2**63})),
    Case("config-missing-file", ["--config", "{w}/nope.toml", "db", "info"], 2),
    Case("config-is-folder", ["--config", "{w}", "db", "info"], 2),
    # arguments
    Case("unknown-command", ["nosuch"], 2),
    Case("unknown-subcommand", ["db", "nosuch"], 2),
    Case("unknown-option", ["db", "info", "--nope"], 2),
    Case("limit-negative", ["scrape", "--limit", "-5"], 2),
    Case("limit-text", ["scrape", "--limit", "abc"], 2),
    Case("strategy-unknown", ["scrape", "--strategy", "nope"], 2),
    Case("ids-without-from", ["scrape", "--strategy", "ids"], 2),
    Case("from-without-ids", ["scrape", "--from", "{w}/ids.txt"], 2,
         _file("ids.txt", "603\n")),
    Case("ids-file-missing", ["scrape", "--strategy", "ids", "--from", "{w}/none.txt"], 2),
    Case("ids-file-garbage", ["scrape", "--strategy", "ids", "--from", "{w}/ids.txt"], 2,
         _file("ids.txt", "603\nnot-an-id\n")),
    Case("ids-file-4301-digits", ["scrape", "--strategy", "ids", "--from", "{w}/ids.txt"], 2,
         _file("ids.txt", "9" * 4301 + "\n")),
    Case("ids-file-binary", ["scrape", "--strategy", "ids", "--from", "{w}/ids.txt"], 2,
         _file("ids.txt", b"\xff\xfe\xfa\n")),
    Case("ids-file-is-folder", ["scrape", "--strategy", "ids", "--from", "{w}"], 2),
    Case("min-popularity-negative", ["scrape", "--min-popularity", "-1"], 2),
    Case("posters-id-overflow", ["posters", "--id", "9223372036854775808"], 2),
    Case("posters-id-text", ["posters", "--id", "abc"], 2),
    Case("posters-id-negative", ["posters", "--id", "-3"], 2),
    Case("datasets-show-unknown", ["datasets", "show", "nope"], 2),
    Case("datasets-show-bad-name", ["datasets", "show", "../etc@v1"], 2),
    Case("datasets-show-v0", ["datasets", "show", "genres@v0"], 2),
    Case("datasets-show-missing-version", ["datasets", "show", "genres@v9999"], 2),
    Case("datasets-diff-one-arg", ["datasets", "diff", "genres@v0001"], 2),
    Case("build-bad-name", ["build", "--name", "../escape"], 2),
    Case("imdb-import-nothing", ["imdb", "import"], 2),
    Case("imdb-import-missing-dir", ["imdb", "import", "{w}/nodir"], 2),
    Case("imdb-import-wrong-header", ["imdb", "import", "--basics", "{w}/b.tsv"], 2,
         _file("b.tsv", "a\tb\tc\n1\t2\t3\n")),
    Case("imdb-import-truncated-gzip", ["imdb", "import", "--basics", "{w}/b.tsv.gz"], 2,
         _file("b.tsv.gz", gzip.compress((BASICS_HEADER * 50).encode())[:60])),
    Case("imdb-import-binary", ["imdb", "import", "--basics", "{w}/b.tsv"], 2,
         _file("b.tsv", b"\x00\x01\x02\xff" * 100)),
    Case("imdb-cinemagoer-with-dir", ["imdb", "import", "--from-cinemagoer", "{w}"], 2),
    Case("imdb-download-bad-file", ["imdb", "download", "--to", "{w}/imdb",
                                    "--files", "../../x.tsv.gz"], 2),
    Case("sandbox-bad-rate", ["sandbox", "serve", "--rate", "abc"], 2),
    Case("sandbox-bad-port", ["sandbox", "serve", "--port", "99999"], 2),
    Case("sandbox-bad-faults", ["sandbox", "serve", "--faults", "kinds=nope"], 2),
    # store files
    Case("store-text-file", ["db", "info"], 2, _store_file(b"hello, I am text\n" * 100)),
    Case("store-fake-header", ["db", "info"], 2,
         _store_file(b"SQLite format 3\x00" + b"\x00" * 200)),
    Case("store-truncated-info", ["db", "info"], 2, _truncate_store),
    Case("store-truncated-build", ["build"], 2, _truncate_store),
    Case("store-text-build", ["build"], 2, _store_file(b"not a database\n" * 300)),
    Case("store-text-scrape", ["scrape", "--limit", "1"], 2, _store_file(b"text\n" * 300)),
    Case("store-newer-schema", ["scrape", "--limit", "1"], 2, _newer_schema),
    Case("store-newer-schema-build", ["build"], 2, _newer_schema),
    Case("store-foreign-db", ["db", "init"], 2, _foreign_db),
    Case("store-unwritable-dir", ["db", "init"], 2,
         _config(storage={"url": "sqlite:////proc/reelset/x.db"})),
    # files of built datasets
    Case("manifest-corrupt", ["datasets", "show", "genres"], 2,
         _dataset_file("v0001/manifest.json", "{not json")),
    Case("manifest-not-object", ["datasets", "show", "genres"], 2,
         _dataset_file("v0001/manifest.json", "[1, 2]")),
    # server replies
    *(
        Case(f"reply-{label}", ["scrape", "--strategy", "ids", "--from", "{w}/ids.txt"], 1,
             _hostile_tmdb(str(movie)), one_line=False)
        for movie, label in enumerate(
            ("genre-2-70", "bad-redirect", "cut-json", "wrong-id", "json-list",
             "genres-string", "html", "title-list"),
            start=1,
        )
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(
    case: Case,
    template: Path,
    sandbox: Sandbox,
    hostile: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = tmp_path / "w"
    shutil.copytree(template, w)
    cfg = _sections(w, sandbox.api_base_url, sandbox.exports_base_url)
    if case.setup is not None:
        case.setup(w, cfg)
    config = w / "config.toml"
    if "__raw__" in cfg:
        raw = cfg["__raw__"]["text"]
        if isinstance(raw, bytes):
            config.write_bytes(raw)
        else:
            config.write_text(raw, encoding="utf-8")
    else:
        if cfg["tmdb"]["api_base_url"] == "{hostile}":
            cfg["tmdb"]["api_base_url"] = hostile
        write_config(config, cfg)
    monkeypatch.setenv("TMDB_API_KEY", sandbox.api_key)
    before = _content(w / "store" / "reelset.db")
    args = [a.replace("{w}", str(w)) for a in case.args]
    if "--config" not in args:
        args = ["--config", str(config), *args]
    capsys.readouterr()
    code = cli_main(args)
    out, err = capsys.readouterr()
    problems = []
    if code != case.exit_code:
        problems.append(f"exit code {code}, expected {case.exit_code}")
    lines = [line for line in err.splitlines() if line.strip()]
    if case.one_line and (len(lines) != 1 or not lines[0].startswith("reelset: error:")):
        problems.append(f"stderr is not one 'reelset: error:' line: {lines[:4]!r}")
    if "internal error" in out + err:
        problems.append("internal error")
    if "Traceback" in out + err:
        problems.append("traceback")
    if not case.store_changes and _content(w / "store" / "reelset.db") != before:
        problems.append("store content changed")
    assert not problems, "; ".join(problems)
