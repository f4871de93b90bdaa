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


def _plain_session() -> requests.Session:
    session = make_session(2, headers={"Accept-Encoding": "identity"})
    session.trust_env = False
    return session


def test_get_sends_what_session_get_sends_and_follows_redirects() -> None:
    from reelset.transport.session import get

    session, reference = _plain_session(), _plain_session()
    hooked: list[int] = []
    for s in (session, reference):
        s.hooks["response"].append(lambda r, *a, **k: hooked.append(r.status_code))
    moved = Reply(status=302, body=b"", headers={"Location": "/b%20c"})
    with scripted_server(moved, Reply(body=b"one"), moved, Reply(body=b"one")) as script:
        url = script.url + "/a%2F%C3%A9"
        for response in (
            get(session, url, stream=True, timeout=5),
            reference.get(url, stream=True, timeout=5),
        ):
            with response:
                assert response.content == b"one" and response.status_code == 200
                assert [r.status_code for r in response.history] == [302]
    ours, theirs = script.seen[:2], script.seen[2:]
    assert [(s.path, s.headers) for s in ours] == [(s.path, s.headers) for s in theirs]
    assert [s.path for s in ours] == ["/a%2F%C3%A9", "/b%20c"]
    assert hooked == [302, 200, 302, 200]


def test_get_of_a_session_with_cookies_or_auth_is_session_get() -> None:
    from reelset.transport.session import get

    session = _plain_session()
    set_cookie = Reply(body=b"x", headers={"Set-Cookie": "edge=1; Path=/"})
    with scripted_server(set_cookie, default=Reply(body=b"y")) as script:
        get(session, script.url + "/1", timeout=5).close()
        get(session, script.url + "/2", timeout=5).close()  # the cookie goes back
        session.cookies.clear()
        session.auth = ("user", "pw")
        get(session, script.url + "/3", timeout=5).close()
        session.auth = None
        session.headers["X-Extra"] = "1"  # a changed session: prepared again
        get(session, script.url + "/4", timeout=5).close()
    first, second, third, fourth = (s.headers for s in script.seen)
    assert "Cookie" not in first and second["Cookie"] == "edge=1"
    assert third["Authorization"].startswith("Basic ")
    assert fourth["X-Extra"] == "1" and "Authorization" not in fourth
