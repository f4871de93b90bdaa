"""Injected faults: each kind, transient by default, deterministic by seed, the text form."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from reelset.sandbox import FAULT_KINDS, FaultSpec, PathFault, parse_fault_spec

from .conftest import Api, MakeApi


def _raw_get(api: Api, path: str) -> bytes:
    """Send one GET on a fresh socket and return everything until the server closes."""
    host, port = api.sandbox.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        request = (
            f"GET /3{path}?api_key={api.sandbox.api_key} HTTP/1.1\r\n"
            f"Host: {host}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(request.encode())
        chunks: list[bytes] = []
        while True:
            data = conn.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("500", 500, 11), ("502", 502, 43), ("503", 503, 9)]
)
def test_5xx_faults_are_transient_with_tmdb_bodies(
    make_api: MakeApi, kind: str, status: int, code: int
) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/movie/9588": kind}, attempts=2))
    for _ in range(2):
        response = api.get("/movie/9588")
        assert response.status_code == status
        assert response.json()["status_code"] == code
        assert response.json()["success"] is False
    assert api.get("/movie/9588").status_code == 200
    assert api.get("/movie/9588").status_code == 200
    assert api.sandbox.counters.faults_injected == {kind: 2}
    assert api.sandbox.counters.attempts["/3/movie/9588"] == 4


def test_429_fault_has_retry_after(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/configuration": PathFault("429", 1)}))
    response = api.get("/configuration")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json()["status_code"] == 25
    assert api.get("/configuration").status_code == 200
    assert api.sandbox.counters.rate_limited == 0  # a fault, not the limiter


def test_reset_closes_with_rst_then_recovers(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/configuration": PathFault("reset", 2)}))
    with pytest.raises(ConnectionResetError):
        _raw_get(api, "/configuration")
    with pytest.raises(requests.ConnectionError):
        api.get("/configuration")
    assert api.get("/configuration").status_code == 200
    assert api.sandbox.counters.faults_injected == {"reset": 2}


def test_truncated_sends_fewer_bytes_than_content_length(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/genre/movie/list": PathFault("truncated", 2)}))
    raw = _raw_get(api, "/genre/movie/list")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    assert 0 < len(body) < length
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.get("/genre/movie/list")
    assert len(api.json("/genre/movie/list")["genres"]) == 19


def test_malformed_is_complete_http_with_cut_json(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/movie/popular": PathFault("malformed", 1)}))
    response = api.get("/movie/popular")
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(api.json("/movie/popular")["results"]) == 20


def test_slow_exceeds_client_timeout_then_recovers(make_api: MakeApi) -> None:
    api = make_api(
        faults=FaultSpec(per_path={"/3/movie/9588": PathFault("slow", 1)}, slow_s=1.5)
    )
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get("/movie/9588", timeout=0.5)
    assert api.get("/movie/9588", timeout=10).status_code == 200
    assert api.sandbox.counters.faults_injected == {"slow": 1}


def test_always_fail_ids_fail_every_time(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(always_fail_ids={9588: "503"}, attempts=1))
    assert [api.get("/movie/9588").status_code for _ in range(5)] == [503] * 5
    assert api.get("/movie/9588/external_ids").status_code == 503
    assert api.get("/movie/9962").status_code == 200
    assert api.sandbox.counters.faults_injected == {"503": 6}


def test_permanent_per_path_rule(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/movie/9962": PathFault("500", None)}))
    assert [api.get("/movie/9962").status_code for _ in range(4)] == [500] * 4


def _failing_movies(api: Api, ids: list[int]) -> set[int]:
    return {i for i in ids if api.get(f"/movie/{i}").status_code != 200}


def test_rate_selection_is_deterministic_by_seed_and_transient(make_api: MakeApi) -> None:
    spec = FaultSpec(rate=0.3, kinds=("500", "503"), attempts=2, seed=7)
    api = make_api(faults=spec)
    ids = api.sandbox.catalog.ids()[:60]
    planned = {i for i in ids if spec.planned_kind(f"/3/movie/{i}") is not None}
    assert 5 < len(planned) < 35
    assert _failing_movies(api, ids) == planned
    assert _failing_movies(api, ids) == planned  # second attempt still fails
    assert _failing_movies(api, ids) == set()  # third attempt succeeds

    again = make_api(faults=FaultSpec(rate=0.3, kinds=("500", "503"), attempts=2, seed=7))
    assert _failing_movies(again, ids) == planned
    other = make_api(faults=FaultSpec(rate=0.3, kinds=("500", "503"), attempts=2, seed=8))
    assert _failing_movies(other, ids) != planned
    kinds = {spec.planned_kind(f"/3/movie/{i}") for i in planned}
    assert kinds == {"500", "503"}
    assert sum(api.sandbox.counters.faults_injected.values()) == 2 * len(planned)


def test_rate_selection_keys_include_the_query(make_api: MakeApi) -> None:
    spec = FaultSpec(rate=0.5, kinds=("500",), attempts=1, seed=3)
    api = make_api(faults=spec)
    pages = range(1, 16)
    planned = {p for p in pages if spec.planned_kind(f"/3/movie/popular?page={p}")}
    failing = {p for p in pages if api.get("/movie/popular", page=p).status_code == 500}
    assert failing == planned and 0 < len(planned) < 15


def test_targets_limit_rate_faults_to_images(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(rate=1.0, kinds=("503",), targets=("images",)))
    poster = api.json("/movie/9588")["poster_path"]
    url = api.sandbox.image_base_url + "w92" + poster
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(url, timeout=10).status_code == 503
    assert requests.get(url, timeout=10).status_code == 200


def test_reset_counters_restarts_attempts_and_faults_can_change(make_api: MakeApi) -> None:
    api = make_api(faults=FaultSpec(per_path={"/3/configuration": PathFault("500", 1)}))
    assert api.get("/configuration").status_code == 500
    assert api.get("/configuration").status_code == 200
    api.sandbox.reset_counters()
    assert api.sandbox.counters.requests == 0
    assert api.get("/configuration").status_code == 500
    api.sandbox.faults = None
    assert api.get("/movie/popular").status_code == 200


def test_text_form_round_trips() -> None:
    spec = parse_fault_spec(
        "rate=0.1,kinds=500+reset+slow+truncated,attempts=2,seed=7,always=123:500+456:reset"
    )
    assert spec.rate == 0.1 and spec.kinds == ("500", "reset", "slow", "truncated")
    assert spec.attempts == 2 and spec.seed == 7
    assert spec.always_fail_ids == {123: "500", 456: "reset"}
    full = parse_fault_spec(
        "rate=0.5,kinds=malformed,attempts=always,seed=-3,slow=1.5,targets=api+images,"
        "path=/3/configuration:503+/3/movie/5:reset:always+/3/movie/6:slow:4"
    )
    assert full.attempts is None and full.slow_s == 1.5 and full.targets == ("api", "images")
    assert full.rule_for("/3/configuration") == PathFault("503", None)
    assert full.rule_for("/3/movie/5") == PathFault("reset", None)
    assert full.rule_for("/3/movie/6") == PathFault("slow", 4)
    for item in (spec, full, FaultSpec()):
        assert parse_fault_spec(item.to_text()) == item
    assert FaultSpec.parse("rate=0") == FaultSpec()
    assert set(FAULT_KINDS) >= {"500", "502", "503", "reset", "slow", "truncated"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty fault spec"),
        ("rate=2", "between 0 and 1"),
        ("rate=lots", "bad value"),
        ("kinds=500+boom", "unknown fault kind 'boom'"),
        ("attempts=0", ">= 1"),
        ("attempts=many", "integer or 'always'"),
        ("colour=red", "unknown fault spec item 'colour'"),
        ("rate", "not name=value"),
        ("always=123", "not <id>:<kind>"),
        ("path=movie/5:500", "must start with '/'"),
        ("path=/3/x:500:1:2", "not <path>:<kind>"),
        ("targets=tv", "unknown fault target"),
        ("seed=1,seed=2", "given twice"),
        ("slow=0", "positive"),
    ],
)
def test_text_form_errors_are_one_line_value_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_fault_spec(text)
    assert "\n" not in str(info.value)
