"""The one session factory and what keeps secrets out of messages and library log lines."""

from __future__ import annotations

import logging

import pytest
import requests

from reelset.redaction import redact_url
from reelset.transport.errors import describe_exception
from reelset.transport.session import USER_AGENT, make_session
from tests.transport.scripted_server import Reply, closed_port, scripted_server


def test_redact_url_and_describe_exception_hide_the_key() -> None:
    url = "http://u:pw@127.0.0.1:9/3/movie/1?api_key=SECRET123&language=en&password=hunter22"
    clean = redact_url(url)
    assert "SECRET123" not in clean and "pw" not in clean and "hunter22" not in clean
    assert "language=en" in clean and "api_key=***" in clean
    try:
        requests.get(f"http://127.0.0.1:{closed_port()}/3/movie/1?api_key=SECRET123", timeout=2)
    except requests.RequestException as exc:
        assert "SECRET123" in str(exc)  # requests' own text does carry it...
        assert "SECRET123" not in describe_exception(exc)  # ...ours never does
        assert describe_exception(exc) == "connection refused"


def test_sessions_send_our_headers_and_pool_per_worker() -> None:
    session = make_session(6, headers={"Accept-Encoding": "identity"})
    with scripted_server() as script:
        session.get(script.url + "/a", timeout=5)
    headers = script.seen[0].headers
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Accept-Encoding"] == "identity"
    assert headers["Connection"].lower() == "keep-alive"
    adapter = session.get_adapter(script.url)
    assert adapter._pool_maxsize == 6  # type: ignore[attr-defined]
    assert adapter.max_retries.total == 0  # type: ignore[attr-defined]


def test_library_debug_lines_never_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    key = "not-registered-before-0xC0FFEE"
    session = make_session(1)
    with (
        scripted_server(Reply(body=b"{}")) as script,
        caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"),
    ):
        # Not through ApiKeyAuth (which registers the key): the query filter alone hides it.
        response = session.get(script.url + "/3/movie/1", params={"api_key": key}, timeout=5)
    assert key in script.seen[0].path  # the key did travel...
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/3/movie/1" in line for line in lines)
    assert all(key not in line for line in lines)  # ...but no log line shows it
    assert response.status_code == 200
