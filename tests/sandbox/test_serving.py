"""Serving: the CLI (start, URLs, clean stop on SIGTERM/SIGINT, usage errors), keep-alive
clients in parallel, latency, lifecycle."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from reelset.commands.sandbox import sandbox_group
from reelset.sandbox import Catalog, Sandbox

REPO = Path(__file__).resolve().parents[2]


class _Server:
    """A ``serve`` subprocess whose output is read line by line with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output = b""

    def read_until(self, marker: bytes, deadline_s: float = 60) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + deadline_s
        while marker not in self.output:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.output += chunk
        return self.output.decode()

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.mark.parametrize(
    ("module", "sig"),
    [("reelset.commands.sandbox", signal.SIGTERM), ("reelset.sandbox", signal.SIGINT)],
)
def test_serve_prints_urls_and_stops_cleanly(module: str, sig: int) -> None:
    server = _Server(module, "serve", "--port", "0", "--rate", "40/10s")
    try:
        text = server.read_until(b"Serving")
        assert "Serving" in text, text
        api = re.search(r"API base URL:\s+(\S+)", text)
        images = re.search(r"Image base URL:\s+(\S+)", text)
        exports = re.search(r"Exports base URL:\s+(\S+)", text)
        key = re.search(r"API key:\s+(\S+)", text)
        assert api and images and exports and key, text
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/3", api.group(1))
        assert images.group(1) == api.group(1)[:-2] + "/t/p/"
        assert exports.group(1) == api.group(1)[:-2] + "/p/exports"
        assert key.group(1) == "reelset-sandbox-key"
        response = requests.get(
            api.group(1) + "/movie/popular", params={"api_key": key.group(1)}, timeout=10
        )
        assert response.status_code == 200 and response.json()["total_results"] == 300
        config = requests.get(
            api.group(1) + "/configuration", params={"api_key": key.group(1)}, timeout=10
        ).json()
        assert config["images"]["base_url"] == images.group(1)
    finally:
        code = server.stop(sig)
    assert code == 0
    assert "Sandbox stopped." in server.read_until(b"Sandbox stopped.", 5)


def test_serve_synthetic_with_faults() -> None:
    server = _Server(
        "reelset.sandbox", "serve", "--synthetic", "2000", "--seed", "3", "--rate", "none",
        "--faults", "path=/3/configuration:503:1", "--poster-faults",
    )
    try:
        text = server.read_until(b"Serving")
        match = re.search(r"API base URL:\s+(\S+)", text)
        assert match, text
        assert "synthetic catalog of 2000 movies" in text and "Rate limit:        none" in text
        url = match.group(1) + "/configuration"
        params = {"api_key": "reelset-sandbox-key"}
        assert requests.get(url, params=params, timeout=10).status_code == 503
        assert requests.get(url, params=params, timeout=10).status_code == 200
    finally:
        assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "fast"], "--rate: not a rate"),
        (["--faults", "rate=2"], "--faults: fault rate must be between 0 and 1"),
        (["--faults", "kinds=boom"], "unknown fault kind 'boom'"),
        (["--synthetic", "5", "--catalog", "x.jsonl"], "cannot be used together"),
        (["--catalog", "/nonexistent/catalog.jsonl"], "--catalog: cannot read catalog"),
        (["--port", "70000"], "70000"),
        (["--synthetic", "-1"], "-1"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_port_in_use_is_a_one_line_error() -> None:
    with Sandbox(Catalog.from_movies([])) as sb:
        result = CliRunner().invoke(sandbox_group, ["serve", "--port", str(sb.port)])
    assert result.exit_code == 1 and "cannot listen on" in result.output


def test_twenty_keep_alive_clients_in_parallel() -> None:
    with Sandbox(Catalog.bundled(), rate=None) as sb:
        ids = sb.catalog.ids()
        errors: list[str] = []
        per_client = 15

        def client(number: int) -> None:
            with requests.Session() as session:
                params = {"api_key": sb.api_key}
                for k in range(per_client):
                    if k % 3 == 0:
                        url = f"{sb.api_base_url}/movie/popular?page={1 + (number + k) % 15}"
                    elif k % 3 == 1:
                        url = f"{sb.api_base_url}/movie/{ids[(number * 7 + k) % len(ids)]}"
                    else:
                        url = f"{sb.api_base_url}/discover/movie?page={1 + k % 5}"
                    response = session.get(url, params=params, timeout=30)
                    if response.status_code != 200:
                        errors.append(f"{url}: {response.status_code}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        counters = sb.counters
        assert counters.requests == 20 * per_client
        assert counters.connections == 20  # every client kept its one connection alive


def test_latency_is_applied() -> None:
    with Sandbox(Catalog.from_movies([]), latency_ms=300) as sb:
        started = time.monotonic()
        requests.get(sb.api_base_url + "/configuration", params={"api_key": sb.api_key},
                     timeout=10)
        # Only a lower bound (the server must have waited), never an upper one.
        assert time.monotonic() - started >= 0.25


def test_lifecycle() -> None:
    sb = Sandbox(Catalog.from_movies([]))
    with pytest.raises(RuntimeError):
        _ = sb.port
    sb.start()
    port = sb.port
    with pytest.raises(RuntimeError):
        sb.start()
    session = requests.Session()
    assert session.get(sb.api_base_url + "/configuration", params={"api_key": sb.api_key},
                       timeout=10).status_code == 200
    sb.stop()
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/3/configuration", timeout=5)
    session.close()
    done = threading.Event()
    runner = Sandbox(Catalog.from_movies([]))

    def serve() -> None:
        runner.serve_forever()
        done.set()

    thread = threading.Thread(target=serve)
    thread.start()
    for _ in range(3000):
        try:
            _ = runner.port
            break
        except RuntimeError:
            time.sleep(0.01)
    runner.request_stop()
    thread.join(30)
    assert done.is_set()
