"""Secrets in every encoding are redacted wherever text leaves the process or enters the store.

Unit tests of :mod:`reelset.redaction`, then the CLI over real sockets against a TMDB
look-alike that echoes the credentials it received (URL-encoded, as they arrived, and in
other encodings) in its 401 and 500 error bodies.
"""

from __future__ import annotations

import html
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import pytest
import requests

from reelset.cli import main as cli_main
from reelset.errors import error_line
from reelset.redaction import (
    RedactQuerySecrets,
    RedactSecrets,
    redact,
    redact_url,
    register_secrets,
)
from reelset.transport.errors import FetchError
from tests.cli_env import FAST_TMDB, write_config
from tests.transport.scripted_server import Reply, Seen, json_reply, routed_server

KEY = "k3Y+/=%& sp4ce-~é"
"""An API key with every character that encodings treat differently."""
TOKEN = "eyJ+tok/en= &%x y"
"""A bearer token, as nasty."""


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def encodings(secret: str) -> set[str]:
    """The forms a server may echo ``secret`` in."""
    forms = {
        secret,
        quote(secret),
        quote(secret, safe=""),
        quote(secret, safe="-_.!~*'()"),  # JavaScript's encodeURIComponent
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        quote(quote(secret, safe=""), safe=""),  # encoded twice
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret).replace("/", "\\/")[1:-1],
        html.escape(secret),
    }
    return forms | {_lower_escapes(f) for f in forms}


@pytest.fixture(autouse=True)
def _registered() -> None:
    register_secrets([KEY, TOKEN])


@pytest.mark.parametrize("form", sorted(encodings(KEY) | encodings(TOKEN)))
def test_every_encoding_of_a_secret_is_redacted(form: str) -> None:
    assert redact(f"Invalid API key: {form}.") == "Invalid API key: ***."


def test_mixed_and_partial_encodings() -> None:
    mixed = "k3Y%2b/%3D%25&%20sp4ce-~%C3%A9"  # some characters raw, some escaped, mixed case
    assert redact(mixed) == "***"
    assert redact("k3Y+/=%& sp4ce-~") == "k3Y+/=%& sp4ce-~"  # not the whole key: kept
    assert redact("nothing secret here") == "nothing secret here"


def test_short_values_are_not_registered() -> None:
    register_secrets(["abc", ""])
    assert redact("abc") == "abc"


def test_error_line_and_fetch_errors_redact_every_encoding() -> None:
    assert error_line(ValueError(f"bad key {quote_plus(KEY)}")) == "bad key ***"
    assert str(FetchError(f"HTTP 401: {_lower_escapes(quote(KEY))}")) == "HTTP 401: ***"


def test_redact_url_hides_secret_parameters_and_userinfo() -> None:
    url = f"https://user:pw@api.example/3/movie?api_key={quote_plus(KEY)}&page=2"
    assert redact_url(url) == "https://***@api.example/3/movie?api_key=***&page=2"


def test_log_filters_redact_messages_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("reelset", logging.ERROR, __file__, 1, "key %s", (KEY,), None)
    try:
        raise RuntimeError(f"boom {quote(KEY, safe='')}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    text = logging.Formatter().format(record)
    assert "key ***" in text and "boom ***" in text
    assert not any(form in text for form in encodings(KEY))
    query = logging.LogRecord(
        "urllib3", logging.DEBUG, __file__, 1, "GET /3/x?api_key=%s&page=1", ("other",), None
    )
    RedactQuerySecrets().filter(query)
    assert query.getMessage() == "GET /3/x?api_key=***&page=1"


# -- over real sockets: a server that echoes the credentials -----------------------------


def _received(seen: Seen) -> str:
    """The credential as it arrived: the api_key query value still encoded, or the token."""
    query = urlsplit(seen.path).query
    for part in query.split("&"):
        if part.startswith("api_key="):
            return part[len("api_key=") :]
    return seen.headers.get("Authorization", "").removeprefix("Bearer ")


def _echo(status: int) -> Callable[[str, Seen], Reply]:
    """An error reply whose message echoes the credential in several encodings."""

    def reply(_path: str, seen: Seen) -> Reply:
        raw = _received(seen)
        decoded = unquote(raw.replace("+", " "))
        message = (
            f"Invalid credential {raw} (decoded: {decoded}; lower: {_lower_escapes(raw)}; "
            f"form: {quote_plus(decoded)}; json: {json.dumps(decoded)})"
        )
        return json_reply({"status_code": 7, "status_message": message, "success": False}, status)

    return reply


GENRES = json_reply({"genres": [{"id": 18, "name": "Drama"}]})


def _store_text(db: Path) -> str:
    """Every value of every table of the store, as text."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for table in tables for row in con.execute(f'SELECT * FROM "{table}"')
        )
    finally:
        con.close()


@pytest.fixture
def scrape_against(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str, str, str]]]:
    """``run(routes, env_var, secret)``: the CLI's code, stdout, stderr and store text."""

    def run(routes: dict[str, object], env_var: str, secret: str) -> tuple[int, str, str, str]:
        db = tmp_path / "store" / "reelset.db"
        ids = tmp_path / "ids.txt"
        ids.write_text("1\n", encoding="utf-8")
        with routed_server(routes) as server:  # type: ignore[arg-type]
            config = write_config(
                tmp_path / "config.toml",
                {
                    "storage": {"url": f"sqlite:///{db}", "posters_dir": str(tmp_path / "p")},
                    "tmdb": {
                        "api_base_url": f"{server.url}/3",
                        "exports_base_url": f"{server.url}/p/exports",
                        **FAST_TMDB,
                    },
                    "posters": {"enabled": False},
                },
            )
            monkeypatch.setenv(env_var, secret)
            capsys.readouterr()
            code = cli_main(
                ["--config", str(config), "-vv", "scrape", "--strategy", "ids", "--from", str(ids)]
            )
            out, err = capsys.readouterr()
            assert server.seen, "the server was never asked"
            assert any(_received(s) for s in server.seen)
        return code, out, err, _store_text(db)

    yield run


@pytest.mark.parametrize(
    ("env_var", "secret"), [("TMDB_API_KEY", KEY), ("TMDB_READ_ACCESS_TOKEN", TOKEN)]
)
def test_a_key_echoed_in_a_401_body_reaches_neither_stderr_nor_the_store(
    scrape_against: Callable[..., tuple[int, str, str, str]], env_var: str, secret: str
) -> None:
    code, out, err, stored = scrape_against(
        {"/3/genre/movie/list": _echo(401)}, env_var, secret
    )
    assert code == 4
    assert "reelset: error: TMDB refused the credentials (HTTP 401: Invalid credential ***" in err
    assert "TMDB refused the credentials (HTTP 401: Invalid credential ***" in stored  # run row
    for text in (out, err, stored):
        leaked = [form for form in encodings(secret) if form in text]
        assert not leaked, leaked


@pytest.mark.parametrize(
    ("env_var", "secret"), [("TMDB_API_KEY", KEY), ("TMDB_READ_ACCESS_TOKEN", TOKEN)]
)
def test_a_key_echoed_in_a_500_body_reaches_no_log_failure_or_run_row(
    scrape_against: Callable[..., tuple[int, str, str, str]], env_var: str, secret: str
) -> None:
    code, out, err, stored = scrape_against(
        {"/3/genre/movie/list": GENRES, "/3/movie/1": _echo(500)}, env_var, secret
    )
    assert code == 1
    assert "HTTP 500 from /3/movie/1: Invalid credential ***" in err  # the log line
    assert "HTTP 500 from /3/movie/1: Invalid credential ***" in stored  # fetch_failures.error
    assert "partial" in out
    for text in (out, err, stored):
        leaked = [form for form in encodings(secret) if form in text]
        assert not leaked, leaked


def test_the_echoing_server_does_echo_the_encoded_key() -> None:
    """The test server's echo really holds the key as sent (URL-encoded): a check on the
    check, without redaction."""
    with routed_server({"/3/x": _echo(401)}) as server:
        body = requests.get(f"{server.url}/3/x", params={"api_key": KEY}, timeout=5).json()
    assert quote_plus(KEY) in body["status_message"]
    assert KEY in body["status_message"]
    assert dict(parse_qsl(urlsplit(server.seen[0].path).query))["api_key"] == KEY
