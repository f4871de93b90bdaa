"""The transport over real sockets: keep-alive, retries of every fault kind, redaction."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from reelset.errors import AuthError
from reelset.sandbox import Catalog, FaultSpec, PathFault, Sandbox
from reelset.transport.errors import (
    Cancelled,
    ClientError,
    FetchError,
    NotFoundError,
    RetryableStatusError,
    TransientError,
)
from reelset.transport.http import HttpTransport
from reelset.transport.limiter import SlidingWindowLimiter
from reelset.transport.retry import RetryPolicy
from reelset.transport.session import ApiKeyAuth, BearerAuth, make_session
from tests.transport.scripted_server import Reply, scripted_server

FAST = RetryPolicy(max_retries=4, backoff_initial_s=0.01, backoff_max_s=0.05)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.bundled()


@pytest.fixture
def sandbox(catalog: Catalog) -> Iterator[Sandbox]:
    with Sandbox(catalog=catalog) as sb:
        yield sb


def transport(
    sb: Sandbox,
    *,
    key: str | None = None,
    workers: int = 4,
    policy: RetryPolicy = FAST,
    timeout_s: float = 2.0,
    limiter: SlidingWindowLimiter | None = None,
) -> HttpTransport:
    return HttpTransport(
        make_session(workers),
        limiter=limiter,
        timeout_s=timeout_s,
        policy=policy,
        auth=ApiKeyAuth(key or sb.api_key),
    )


def test_connections_are_kept_alive(sandbox: Sandbox) -> None:
    tr = transport(sandbox, workers=4)
    url = f"{sandbox.api_base_url}/movie/{sandbox.catalog.ids()[0]}"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tr.get_json(url), range(100)))
    assert len(results) == 100
    pool = tr.session.get_adapter(url).poolmanager.connection_from_url(url)
    # 100 requests over at most one connection per worker (tmdbsimple alone would open 100).
    assert pool.num_connections <= 4
    response = tr.session.get(url, params={"api_key": sandbox.api_key})
    assert response.request.headers.get("Connection", "").lower() != "close"


@pytest.mark.parametrize(
    "kind", ["500", "502", "503", "429", "reset", "slow", "truncated", "malformed"]
)
def test_every_transient_fault_is_retried(sandbox: Sandbox, kind: str) -> None:
    tmdb_id = sandbox.catalog.ids()[3]
    sandbox.faults = FaultSpec(per_path={f"/3/movie/{tmdb_id}": PathFault(kind, 2)}, slow_s=1.0)
    tr = transport(sandbox, timeout_s=0.3)
    body = tr.get_json(f"{sandbox.api_base_url}/movie/{tmdb_id}")
    assert body["id"] == tmdb_id
    assert tr.counters.retries == 2
    assert tr.counters.requests == 3
    assert tr.counters.throttled == (2 if kind == "429" else 0)


def test_permanent_server_error_gives_up_after_max_retries(sandbox: Sandbox) -> None:
    tmdb_id = sandbox.catalog.ids()[0]
    sandbox.faults = FaultSpec(always_fail_ids={tmdb_id: "503"})
    tr = transport(sandbox, key=sandbox.api_key)
    with pytest.raises(RetryableStatusError) as info:
        tr.get_json(f"{sandbox.api_base_url}/movie/{tmdb_id}")
    assert info.value.http_status == 503
    assert tr.counters.requests == FAST.max_retries + 1
    assert sandbox.api_key not in str(info.value)
    assert str(info.value).startswith(f"HTTP 503 from /3/movie/{tmdb_id}")


def test_404_and_other_4xx_are_not_retried(sandbox: Sandbox) -> None:
    tr = transport(sandbox)
    with pytest.raises(NotFoundError):
        tr.get_json(f"{sandbox.api_base_url}/movie/999999999")
    with pytest.raises(ClientError) as info:
        tr.get_json(f"{sandbox.api_base_url}/movie/popular", {"page": 501})
    assert info.value.http_status == 400
    assert tr.counters.requests == 2 and tr.counters.retries == 0


def test_401_raises_auth_error_without_the_key(sandbox: Sandbox) -> None:
    tr = transport(sandbox, key="not-the-key-0123456789")
    with pytest.raises(AuthError) as info:
        tr.get_json(f"{sandbox.api_base_url}/genre/movie/list")
    assert "not-the-key-0123456789" not in str(info.value)
    assert "401" in str(info.value)
    assert tr.counters.requests == 1


def test_bearer_token_works(sandbox: Sandbox) -> None:
    tr = HttpTransport(
        make_session(1),
        limiter=None,
        timeout_s=2.0,
        policy=FAST,
        auth=BearerAuth(sandbox.read_access_token),
    )
    assert "genres" in tr.get_json(f"{sandbox.api_base_url}/genre/movie/list")


def test_connection_errors_are_retried_then_reported_without_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tr = HttpTransport(
        make_session(1),
        limiter=None,
        timeout_s=1.0,
        policy=FAST,
        auth=ApiKeyAuth("SECRET-KEY-42"),
    )
    with pytest.raises(TransientError) as info:
        tr.get_json(f"http://127.0.0.1:{port}/3/movie/1")
    assert str(info.value) == "connection refused (/3/movie/1)"
    assert tr.counters.requests == FAST.max_retries + 1


def test_stop_cancels_retries(sandbox: Sandbox) -> None:
    tmdb_id = sandbox.catalog.ids()[0]
    sandbox.faults = FaultSpec(always_fail_ids={tmdb_id: "500"})
    stop = threading.Event()
    stop.set()
    tr = HttpTransport(
        make_session(1),
        limiter=None,
        timeout_s=1.0,
        policy=RetryPolicy(max_retries=50, backoff_initial_s=5, backoff_max_s=5),
        auth=ApiKeyAuth(sandbox.api_key),
        stop=stop,
    )
    with pytest.raises(Cancelled):
        tr.get_json(f"{sandbox.api_base_url}/movie/{tmdb_id}")


def scripted_transport(limiter: SlidingWindowLimiter | None = None) -> HttpTransport:
    return HttpTransport(
        make_session(1),
        limiter=limiter,
        timeout_s=2.0,
        policy=FAST,
        auth=ApiKeyAuth("SECRET-KEY-42"),
    )


@pytest.mark.parametrize("location", ["http://[::1", "//[", "http://x:99999/"])
def test_a_malformed_redirect_is_a_failure_not_a_crash(location: str) -> None:
    limiter = SlidingWindowLimiter(100, 1.0)
    with scripted_server(default=Reply(302, headers={"Location": location})) as script:
        tr = scripted_transport(limiter)
        with pytest.raises(FetchError) as info:
            tr.get_json(script.url + "/3/movie/1")
        with pytest.raises(FetchError), tr.stream(script.url + "/p/exports/x.json.gz"):
            pass
    assert info.value.reason == "bad_url" and not info.value.transient
    assert str(info.value) in (
        "the server redirected to an invalid URL (/3/movie/1)",
        "invalid URL (/3/movie/1)",
    )
    assert len(script.seen) == 2  # not retried
    assert limiter._in_flight == 0  # the slot was given back


def test_a_body_nested_too_deep_is_unparsable_not_a_crash() -> None:
    with scripted_server(Reply(body=b"[" * 100_000), default=Reply(body=b"{}")) as script:
        tr = scripted_transport()
        assert tr.get_json(script.url + "/3/movie/1") == {}
    assert tr.counters.retries == 1


def test_every_answer_is_the_limiters_feedback_and_5xx_do_not_slow_it() -> None:
    limiter = SlidingWindowLimiter(100, 1.0)
    with scripted_server(
        Reply(503),
        Reply(503),
        Reply(429, headers={"Retry-After": "0"}),
        default=Reply(body=b"{}"),
    ) as script:
        tr = scripted_transport(limiter)
        assert tr.get_json(script.url + "/3/movie/1") == {}
    assert tr.counters.as_dict() == {"requests": 4, "throttled": 1, "retries": 3}
    # Two accepted answers (the 503s) then a lone 429 far above them: a quarter off the
    # pace, once; the 503s changed nothing.
    assert limiter.decreases == 1 and limiter.storms == 0
    assert limiter.allowance == 75
    assert limiter.proven == 3
