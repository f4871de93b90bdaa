"""Fixtures for the sandbox tests: a shared read-only sandbox and a request helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests

from reelset.sandbox import Catalog, Sandbox


class Api:
    """A tiny client for a sandbox: ``api.get("/movie/popular", page=2)``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        auth: bool = True,
        timeout: float = 10,
        **more: Any,
    ) -> requests.Response:
        """GET ``path`` below the API root; ``params`` (or keywords) are the query."""
        query = {**(params or {}), **more}
        if auth:
            query.setdefault("api_key", self.sandbox.api_key)
        return self.session.get(self.sandbox.api_base_url + path, params=query, timeout=timeout)

    def json(self, path: str, params: Mapping[str, Any] | None = None, /, **more: Any) -> Any:
        """The JSON body of a GET that must answer 200."""
        response = self.get(path, params, **more)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.session.close()


MakeApi = Callable[..., Api]


@pytest.fixture(scope="session")
def bundled_sandbox() -> Iterator[Sandbox]:
    """One sandbox over the bundled catalog for tests that only read."""
    with Sandbox(Catalog.bundled()) as sb:
        yield sb


@pytest.fixture
def api(bundled_sandbox: Sandbox) -> Iterator[Api]:
    client = Api(bundled_sandbox)
    yield client
    client.close()


@pytest.fixture
def make_api() -> Iterator[MakeApi]:
    """Start sandboxes with the given options; all are stopped at the end of the test."""
    started: list[tuple[Sandbox, Api]] = []

    def factory(catalog: Catalog | None = None, **options: Any) -> Api:
        sb = Sandbox(catalog if catalog is not None else Catalog.bundled(), **options).start()
        client = Api(sb)
        started.append((sb, client))
        return client

    yield factory
    for sb, client in started:
        client.close()
        sb.stop()
