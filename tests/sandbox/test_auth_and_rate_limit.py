"""API key / Bearer authentication, the sliding-window rate limit, latency plumbing."""

from __future__ import annotations

import time

import pytest
import requests

from reelset.sandbox import SANDBOX_API_KEY, SANDBOX_READ_ACCESS_TOKEN, Sandbox
from reelset.sandbox.rate_limiter import AdmissionLimiter, retry_after_header
from reelset.transport.ratespec import RateSpec

from .conftest import Api, MakeApi

INVALID_KEY = {
    "status_code": 7,
    "status_message": "Invalid API key: You must be granted a valid key.",
    "success": False,
}


def test_api_key_and_bearer_are_accepted(api: Api) -> None:
    assert api.sandbox.api_key == SANDBOX_API_KEY == "reelset-sandbox-key"
    assert api.get("/configuration").status_code == 200
    response = requests.get(
        api.sandbox.api_base_url + "/configuration",
        headers={"Authorization": f"Bearer {SANDBOX_READ_ACCESS_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({}, {}),
        ({"api_key": "secret-wrong-key-123"}, {}),
        ({}, {"Authorization": "Bearer secret-wrong-key-123"}),
        ({}, {"Authorization": f"Basic {SANDBOX_READ_ACCESS_TOKEN}"}),
    ],
)
def test_missing_or_bad_credentials_get_401_without_echo(
    api: Api, params: dict[str, str], headers: dict[str, str]
) -> None:
    response = requests.get(
        api.sandbox.api_base_url + "/movie/popular", params=params, headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == INVALID_KEY
    assert "secret-wrong-key" not in response.text


def test_images_and_exports_need_no_key(api: Api) -> None:
    sb = api.sandbox
    poster = api.json("/movie/9588")["poster_path"]
    assert requests.get(sb.image_base_url + "w92" + poster, timeout=10).status_code == 200
    day = sb.export_dates()[0]
    url = f"{sb.exports_base_url}/movie_ids_{day:%m_%d_%Y}.json.gz"
    assert requests.get(url, timeout=10).status_code == 200


def test_rate_limit_sends_429_with_retry_after_and_counts(make_api: MakeApi) -> None:
    api = make_api(rate="5/30s")
    statuses = [api.get("/configuration").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    refused = api.get("/movie/popular")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert refused.json() == {
        "status_code": 25,
        "status_message": "Your request count (#) is over the allowed limit of (40).",
        "success": False,
    }
    counters = api.sandbox.counters
    assert counters.rate_limited == 4
    assert counters.responses_by_status == {200: 5, 429: 4}
    assert counters.attempts == {"/3/configuration": 5}  # refused requests are no attempts


def test_waiting_retry_after_is_enough(make_api: MakeApi) -> None:
    api = make_api(rate="2/1s")
    assert [api.get("/configuration").status_code for _ in range(2)] == [200, 200]
    refused = api.get("/configuration")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(int(refused.headers["Retry-After"]))
    assert api.get("/configuration").status_code == 200


def test_rate_limit_spares_images_and_exports(make_api: MakeApi) -> None:
    api = make_api(rate="2/60s")
    sb = api.sandbox
    poster = api.json("/movie/9588")["poster_path"]
    for _ in range(5):
        assert requests.get(sb.image_base_url + "w92" + poster, timeout=10).status_code == 200
    assert sb.counters.rate_limited == 0
    assert api.get("/configuration").status_code == 200
    assert api.get("/configuration").status_code == 429
    retry_after = int(api.get("/configuration").headers["Retry-After"])
    assert 1 <= retry_after <= 60
    sb.reset_rate_limit()
    assert api.get("/configuration").status_code == 200


def test_sliding_window_arithmetic() -> None:
    now = [100.0]
    limiter = AdmissionLimiter(RateSpec(3, 10.0), clock=lambda: now[0])
    assert [limiter.try_acquire() for _ in range(3)] == [None, None, None]
    assert limiter.try_acquire() == pytest.approx(10.0)
    now[0] = 104.0
    assert limiter.try_acquire() == pytest.approx(6.0)
    now[0] = 110.0  # the first three leave the window
    assert limiter.try_acquire() is None
    assert limiter.try_acquire() is None
    assert limiter.try_acquire() is None
    assert limiter.try_acquire() == pytest.approx(10.0)
    assert retry_after_header(0.2) == "1" and retry_after_header(6.01) == "7"


def test_unlimited_when_rate_is_none(make_api: MakeApi) -> None:
    api = make_api(rate=None)
    assert all(api.get("/configuration").status_code == 200 for _ in range(60))


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="not a rate"):
        Sandbox(rate="fast")
    with pytest.raises(ValueError, match="latency"):
        Sandbox(latency_ms=-1)
