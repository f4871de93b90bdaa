"""TMDB calls, poster downloads and IMDb dataset downloads retry exactly the same failures.

Each client runs against a real local server scripted to fail in one way, then succeed:
the retryable failures must be retried by all three, the others by none, and a
``Retry-After`` must be waited out by all three.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from reelset.errors import ReelsetError
from reelset.imdb.download import download_datasets
from reelset.posters.fetch import FetchPolicy, fetch_poster, poster_retry_policy
from reelset.transport.http import HttpTransport
from reelset.transport.retry import RetryPolicy
from reelset.transport.session import ApiKeyAuth, make_session
from tests.transport.scripted_server import Reply, scripted_server

Client = Callable[[str, Path], None]
DATASET = gzip.compress(b"tconst\tvalue\ntt0000001\t1\n", mtime=0)


def tmdb(url: str, _folder: Path) -> None:
    transport = HttpTransport(
        make_session(1),
        limiter=None,
        timeout_s=0.5,
        policy=RetryPolicy(max_retries=3, backoff_initial_s=0.01, backoff_max_s=0.02),
        auth=ApiKeyAuth("client-test-key"),
    )
    assert transport.get_json(url + "/3/movie/1") == {}


def posters(url: str, _folder: Path) -> None:
    policy = FetchPolicy(timeout_s=0.5, retry=poster_retry_policy(3, 0.01, 0.02))
    assert fetch_poster(make_session(1), url + "/t/p/w500/a.jpg", policy).data == b"{}"


def imdb(url: str, folder: Path) -> None:
    [result] = download_datasets(
        url,
        ["other.tsv.gz"],
        folder,
        timeout_s=0.5,
        max_retries=3,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )
    assert result.path.read_bytes() == DATASET


CLIENTS: dict[str, tuple[Client, Reply]] = {
    "tmdb": (tmdb, Reply(body=b"{}")),
    "posters": (posters, Reply(body=b"{}")),
    "imdb": (imdb, Reply(body=DATASET)),
}

FAILURES = {
    "408": Reply(408),
    "425": Reply(425),
    "429": Reply(429),
    "500": Reply(500),
    "502": Reply(502),
    "503": Reply(503),
    "504": Reply(504),
    "reset": Reply(reset=True),
    "cut_body": Reply(body=b"x" * 4000, cut_after=100),
    "read_timeout": Reply(delay_s=1.0),
}
PERMANENT = [400, 401, 403, 404, 410, 422]


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("client", CLIENTS)
def test_retryable_failures_are_retried_by_every_client(
    client: str, failure: str, tmp_path: Path
) -> None:
    run, ok = CLIENTS[client]
    with scripted_server(FAILURES[failure], FAILURES[failure], default=ok) as script:
        run(script.url, tmp_path)
    assert len(script.seen) == 3


@pytest.mark.parametrize("status", PERMANENT)
@pytest.mark.parametrize("client", CLIENTS)
def test_other_statuses_are_retried_by_no_client(client: str, status: int, tmp_path: Path) -> None:
    run, ok = CLIENTS[client]
    with scripted_server(Reply(status), default=ok) as script, pytest.raises(ReelsetError):
        run(script.url, tmp_path)
    assert len(script.seen) == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_loop_is_not_retried(client: str, tmp_path: Path) -> None:
    run, _ok = CLIENTS[client]
    loop = Reply(302, headers={"Location": "/loop"})
    with scripted_server(default=loop) as script, pytest.raises(ReelsetError):
        run(script.url, tmp_path)
    assert len(script.seen) == 31  # requests follows 30 redirects, once


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_that_does_not_parse_is_one_failure_not_a_crash(
    client: str, tmp_path: Path
) -> None:
    run, _ok = CLIENTS[client]
    broken = Reply(302, headers={"Location": "http://[::1"})
    with scripted_server(default=broken) as script, pytest.raises(ReelsetError) as caught:
        run(script.url, tmp_path)
    assert len(script.seen) == 1
    assert "redirected to an invalid URL" in str(caught.value) or "invalid URL" in str(
        caught.value
    )


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_waits_out_retry_after(client: str, status: int, tmp_path: Path) -> None:
    run, ok = CLIENTS[client]
    with scripted_server(Reply(status, headers={"Retry-After": "1"}), default=ok) as script:
        run(script.url, tmp_path)
    [gap] = script.gaps()
    assert gap >= 0.95  # the backoff alone would be 0.01-0.02 s
