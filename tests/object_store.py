"""An S3 API server on loopback for the tests (a pytest plugin): moto's standalone server.

Fixtures:

* ``s3_server`` (session): ``python -m moto.server`` started as a child process on a free
  loopback port; an :class:`S3Server` with its endpoint, a boto3 client, and ``pause`` /
  ``resume`` (SIGSTOP/SIGCONT: a server that stops answering, its objects kept).
* ``s3_env``: the environment an S3 client reads, with dummy credentials
  (:data:`DUMMY_KEY_ID`, :data:`DUMMY_SECRET`, so tests can grep for them).
* ``s3_bucket``: a fresh, empty bucket per test (its name), with ``s3_env`` applied.

When moto cannot be imported, the tests that use these fixtures skip with the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

DUMMY_KEY_ID = "AKIAREELSETTESTKEY01"
DUMMY_SECRET = "reelset-dummy-secret-Xq7Zp2Lr9Vb4"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """A moto S3 server in a child process (started by :meth:`start`)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> S3Server:
        """Start the server and wait until it answers."""
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
            "AWS_DEFAULT_REGION": REGION,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                self.client().list_buckets()
                return self
            except Exception:  # not listening yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        """Stop the server (its objects are gone)."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel, never answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again (nothing was lost)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def client(self) -> Any:
        """A boto3 S3 client for this server (dummy credentials)."""
        return self.client_for(self.endpoint)

    @staticmethod
    def client_for(endpoint: str) -> Any:
        """A boto3 S3 client for the S3 API at ``endpoint`` (dummy credentials)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=DUMMY_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET,
            region_name=REGION,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3 server (skips with the reason when moto is not installed)."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"object-storage tests skipped: moto[server] is not installed ({exc})")
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials and region in the environment, and no profile or config."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_bucket(s3_server: S3Server, s3_env: None) -> Iterator[str]:
    """A fresh, empty bucket on the session's server; emptied and deleted afterwards."""
    name = f"reelset-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    yield name
    s3_server.resume()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)
