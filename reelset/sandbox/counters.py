"""Thread-safe tallies of what a sandbox served, and their immutable snapshots."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CountersSnapshot:
    """What a sandbox has served since it started (or since ``reset_counters``).

    - ``requests``: every request received;
    - ``requests_by_endpoint``: by route template, e.g. ``"/3/movie/{id}"``, ``"images"``;
    - ``responses_by_status``: by HTTP status sent (faults without an answer are not here);
    - ``rate_limited``: 429 answers of the rate limiter (not of the ``429`` fault kind);
    - ``faults_injected``: API/image/export faults by kind (``"500"``, ``"reset"``, ...);
    - ``image_faults``: poster-file faults served, by kind (``"truncated_jpeg"``, ...);
    - ``images_served``: 200 answers carrying a picture;
    - ``attempts``: requests per request key (path plus query without api_key) that got
      past the rate limiter; transient faults count these;
    - ``internal_errors``: requests that hit a bug in the sandbox (answered 500);
    - ``connections``: TCP connections accepted (keep-alive clients reuse theirs).
    """

    requests: int = 0
    requests_by_endpoint: dict[str, int] = field(default_factory=dict)
    responses_by_status: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    image_faults: dict[str, int] = field(default_factory=dict)
    images_served: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    internal_errors: int = 0
    connections: int = 0


class Counters:
    """The live, lock-protected counters behind :class:`CountersSnapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every count back to zero."""
        with self._lock:
            self._requests = 0
            self._by_endpoint: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._rate_limited = 0
            self._faults: Counter[str] = Counter()
            self._image_faults: Counter[str] = Counter()
            self._images = 0
            self._attempts: Counter[str] = Counter()
            self._internal_errors = 0
            self._connections = 0

    def connection(self) -> None:
        """Count an accepted connection."""
        with self._lock:
            self._connections += 1

    def request(self, endpoint: str) -> None:
        """Count a request received for ``endpoint``."""
        with self._lock:
            self._requests += 1
            self._by_endpoint[endpoint] += 1

    def attempt(self, key: str) -> int:
        """Count an attempt for request key ``key``; return its number (from 1)."""
        with self._lock:
            self._attempts[key] += 1
            return self._attempts[key]

    def status(self, code: int) -> None:
        """Count a response sent with HTTP status ``code``."""
        with self._lock:
            self._by_status[code] += 1

    def rate_limited(self) -> None:
        """Count a 429 sent by the rate limiter."""
        with self._lock:
            self._rate_limited += 1

    def fault(self, kind: str) -> None:
        """Count an injected fault of ``kind``."""
        with self._lock:
            self._faults[kind] += 1

    def image_fault(self, kind: str) -> None:
        """Count a poster-file fault of ``kind`` served."""
        with self._lock:
            self._image_faults[kind] += 1

    def image_served(self) -> None:
        """Count a picture served."""
        with self._lock:
            self._images += 1

    def internal_error(self) -> None:
        """Count a request that failed inside the sandbox."""
        with self._lock:
            self._internal_errors += 1

    def snapshot(self) -> CountersSnapshot:
        """An immutable copy of the counts."""
        with self._lock:
            return CountersSnapshot(
                requests=self._requests,
                requests_by_endpoint=dict(self._by_endpoint),
                responses_by_status=dict(self._by_status),
                rate_limited=self._rate_limited,
                faults_injected=dict(self._faults),
                image_faults=dict(self._image_faults),
                images_served=self._images,
                attempts=dict(self._attempts),
                internal_errors=self._internal_errors,
                connections=self._connections,
            )
