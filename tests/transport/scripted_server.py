"""Local HTTP servers with scripted answers (no tests here).

For what the sandbox does not do on demand: a given status with a given ``Retry-After``,
a redirect loop, a body cut off or dripping slowly, an undecodable ``Content-Encoding``,
a reset connection, a hostile body. :func:`scripted_server` answers each request with the
next scripted reply; :func:`routed_server` answers by path (a TMDB look-alike with chosen
bodies). Every request is recorded with the time it arrived.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the status line (a client's read timeout)
    cut_after: int | None = None  # announce the whole body, send this many bytes, close
    drip_s: float = 0.0  # pause between body chunks of 1 KiB
    reset: bool = False  # close the connection with a TCP reset instead of answering
    length: bool = True  # send Content-Length (else the body ends when the connection closes)


@dataclass(frozen=True)
class Seen:
    """A request as the server saw it."""

    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]


@dataclass
class Script:
    """The replies still to give (then ``default`` for every request) and what was asked."""

    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if self.replies else self.default

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests."""
        times = [s.at for s in self.seen]
        return [b - a for a, b in itertools.pairwise(times)]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a loopback port from a thread; yields the root URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Handler(QuietHandler):
    script: Script

    def do_GET(self) -> None:
        script = self.script
        script.seen.append(Seen(time.monotonic(), self.path, dict(self.headers.items())))
        self.answer(script.next_reply())

    def answer(self, reply: Reply) -> None:
        """Send ``reply`` (see :class:`Reply`)."""
        if reply.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        time.sleep(reply.delay_s)
        self.send_response(reply.status)
        headers = {"Content-Length": str(len(reply.body))} if reply.length else {}
        headers.update(reply.headers)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        body = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
        try:
            if reply.drip_s:
                for start in range(0, len(body), 1024):
                    self.wfile.write(body[start : start + 1024])
                    self.wfile.flush()
                    time.sleep(reply.drip_s)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first
        if reply.cut_after is not None or not reply.length:
            self.close_connection = True


@contextmanager
def scripted_server(*replies: Reply, default: Reply | None = None) -> Iterator[Script]:
    """Serve ``replies`` in order, then ``default``, on loopback; ``script.url`` is its root."""
    script = Script(list(replies), default or Reply())
    with serving(type("ScriptedHandler", (_Handler,), {"script": script})) as url:
        script.url = url
        yield script


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_reply(payload: Any, status: int = 200, **headers: str) -> Reply:
    """A reply with ``payload`` as its JSON body."""
    body = json.dumps(payload).encode()
    return Reply(status, body, {"Content-Type": "application/json", **headers})


Route = Reply | Callable[[str, Seen], Reply]
"""A fixed reply, or one made from the request's path with query and how it was seen."""


@dataclass
class Routes:
    """Replies by request path (query ignored); anything else gets TMDB's 404 body."""

    routes: dict[str, Route]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def count(self, path: str) -> int:
        """Requests seen for ``path`` (query ignored)."""
        return sum(1 for s in self.seen if urlsplit(s.path).path == path)


class _RoutedHandler(_Handler):
    routing: Routes

    def do_GET(self) -> None:
        seen = Seen(time.monotonic(), self.path, dict(self.headers.items()))
        self.routing.seen.append(seen)
        route = self.routing.routes.get(urlsplit(self.path).path)
        if route is None:
            reply = json_reply({"status_code": 34, "status_message": "Not found."}, 404)
        elif isinstance(route, Reply):
            reply = route
        else:
            reply = route(self.path, seen)
        self.answer(reply)


@contextmanager
def routed_server(routes: Mapping[str, Route]) -> Iterator[Routes]:
    """Serve ``routes`` ({path: reply}) on loopback; ``routing.url`` is its root."""
    routing = Routes(dict(routes))
    with serving(type("RoutedHandler", (_RoutedHandler,), {"routing": routing})) as url:
        routing.url = url
        yield routing
