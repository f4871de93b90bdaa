"""Which requests a sandbox makes fail, and how: :class:`FaultSpec` and its text form.

Faults are deterministic and, by default, transient: a selected URL fails its first
``attempts`` requests and then succeeds, so a client with retries gets every answer.

Fault kinds (:data:`FAULT_KINDS`):

``500``, ``502``, ``503``
    That HTTP status with a TMDB error body (codes 11, 43 and 9).
``429``
    A spurious rate-limit answer (``Retry-After: 1``, TMDB code 25).
``reset``
    The connection is closed abruptly without any answer (a TCP RST, via SO_LINGER 0).
``slow``
    The right answer, but only after ``slow_s`` seconds (longer than a client's timeout).
``truncated``
    Status 200 and the full Content-Length, but only half the body, then the connection
    closes (the client sees an incomplete read).
``malformed``
    A complete 200 answer whose JSON body is cut in half (Content-Length matches it).

Which requests fail, checked in this order:

1. ``always_fail_ids``: ``/3/movie/{id}`` (and its sub-resources) of these movies always
   fails with the given kind, on every attempt.
2. ``per_path``: an exact request path (no query) fails with its kind, for ``attempts``
   attempts (a :class:`PathFault` may set its own count, or ``None`` for always).
3. ``rate``: that fraction of request keys is chosen from ``sha256(seed, key)``, each with a
   kind picked the same way from ``kinds``. A request key is the path plus the sorted
   query string without ``api_key``, so each page of a listing is chosen on its own.
   Only requests of the ``targets`` (``api``, ``images``, ``exports``) are chosen.

An attempt is a request for the same key that got past the rate limiter.

Text form, for ``reelset sandbox serve --faults`` (comma-separated ``name=value`` items)::

    rate=<0..1>                  fraction of request keys that fail (default 0)
    kinds=<kind>[+<kind>...]     kinds used by rate (default 500+502+503+reset+slow+truncated)
    attempts=<n>|always          failures per key before it succeeds (default 2)
    seed=<int>                   selection seed (default 0)
    slow=<seconds>               delay of the slow kind (default 5)
    targets=api[+images][+exports]   what rate applies to (default api)
    always=<id>:<kind>[+<id>:<kind>...]          always-failing movie ids
    path=<path>:<kind>[:<n>|:always][+...]       per-path rules

Example: ``rate=0.1,kinds=500+reset+slow+truncated,attempts=2,seed=7,always=123:500+456:reset``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "429",
    "reset",
    "slow",
    "truncated",
    "malformed",
)
DEFAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "reset", "slow", "truncated")
FAULT_TARGETS: tuple[str, ...] = ("api", "images", "exports")
AUTH_PARAMS = frozenset({"api_key"})


def _check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    return kind


def _check_attempts(attempts: int | None) -> int | None:
    if attempts is not None and attempts < 1:
        raise ValueError(f"fault attempts must be >= 1 or always, not {attempts}")
    return attempts


@dataclass(frozen=True)
class PathFault:
    """A per-path rule: ``kind`` for the first ``attempts`` attempts (None: every attempt)."""

    kind: str
    attempts: int | None = 2

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_attempts(self.attempts)


def request_key(path: str, params: Iterable[tuple[str, str]]) -> str:
    """The key a request is counted and selected by: path plus sorted query, no api_key."""
    kept = sorted((k, v) for k, v in params if k not in AUTH_PARAMS)
    return f"{path}?{urlencode(kept)}" if kept else path


def _unit_hash(seed: int, key: str) -> tuple[float, int]:
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64, int.from_bytes(digest[8:16], "big")


@dataclass(frozen=True)
class FaultSpec:
    """What fails and how; see the module docstring. ``FaultSpec()`` injects nothing."""

    rate: float = 0.0
    kinds: tuple[str, ...] = DEFAULT_KINDS
    attempts: int | None = 2
    seed: int = 0
    slow_s: float = 5.0
    always_fail_ids: Mapping[int, str] = field(default_factory=dict)
    per_path: Mapping[str, str | PathFault] = field(default_factory=dict)
    targets: tuple[str, ...] = ("api",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, not {self.rate}")
        if not self.kinds:
            raise ValueError("fault kinds must not be empty")
        object.__setattr__(self, "kinds", tuple(_check_kind(k) for k in self.kinds))
        _check_attempts(self.attempts)
        if self.slow_s <= 0:
            raise ValueError(f"slow delay must be positive, not {self.slow_s}")
        for target in self.targets:
            if target not in FAULT_TARGETS:
                raise ValueError(
                    f"unknown fault target {target!r} (known: {', '.join(FAULT_TARGETS)})"
                )
        object.__setattr__(self, "targets", tuple(self.targets))
        always = {int(k): _check_kind(v) for k, v in self.always_fail_ids.items()}
        object.__setattr__(self, "always_fail_ids", always)
        per_path: dict[str, str | PathFault] = {}
        for path, rule in self.per_path.items():
            if not path.startswith("/"):
                raise ValueError(f"fault path must start with '/': {path!r}")
            per_path[path] = rule if isinstance(rule, PathFault) else _check_kind(rule)
        object.__setattr__(self, "per_path", per_path)

    def rule_for(self, path: str) -> PathFault | None:
        """The per-path rule of ``path`` with its attempt count resolved, if any."""
        rule = self.per_path.get(path)
        if rule is None:
            return None
        return rule if isinstance(rule, PathFault) else PathFault(rule, self.attempts)

    def planned_kind(self, key: str) -> str | None:
        """The kind the ``rate`` selection gives request key ``key``, or None."""
        if self.rate <= 0.0:
            return None
        unit, pick = _unit_hash(self.seed, key)
        if unit >= self.rate:
            return None
        return self.kinds[pick % len(self.kinds)]

    def decide(
        self, *, target: str, path: str, key: str, attempt: int, movie_id: int | None = None
    ) -> str | None:
        """The fault for attempt number ``attempt`` (from 1) of a request, or None."""
        if movie_id is not None and movie_id in self.always_fail_ids:
            return self.always_fail_ids[movie_id]
        rule = self.rule_for(path)
        if rule is not None:
            if rule.attempts is None or attempt <= rule.attempts:
                return rule.kind
            return None
        if target not in self.targets:
            return None
        kind = self.planned_kind(key)
        if kind is not None and (self.attempts is None or attempt <= self.attempts):
            return kind
        return None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse the text form (see the module docstring); ``ValueError`` on bad input."""
        return parse_fault_spec(text)

    def to_text(self) -> str:
        """The text form of this spec (``FaultSpec.parse(spec.to_text()) == spec``)."""

        def attempts_text(n: int | None) -> str:
            return "always" if n is None else str(n)

        items = [
            f"rate={self.rate!r}",
            f"kinds={'+'.join(self.kinds)}",
            f"attempts={attempts_text(self.attempts)}",
            f"seed={self.seed}",
            f"slow={self.slow_s!r}",
            f"targets={'+'.join(self.targets)}",
        ]
        if self.always_fail_ids:
            items.append(
                "always=" + "+".join(f"{i}:{k}" for i, k in self.always_fail_ids.items())
            )
        if self.per_path:
            rules = []
            for path, rule in self.per_path.items():
                if isinstance(rule, PathFault):
                    rules.append(f"{path}:{rule.kind}:{attempts_text(rule.attempts)}")
                else:
                    rules.append(f"{path}:{rule}")
            items.append("path=" + "+".join(rules))
        return ",".join(items)


def _parse_attempts(text: str) -> int | None:
    if text == "always":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"fault attempts must be an integer or 'always', not {text!r}") from None


def parse_fault_spec(text: str) -> FaultSpec:
    """Parse e.g. ``"rate=0.1,kinds=500+reset,attempts=2,seed=7,always=123:500"``.

    Raises ``ValueError`` with a one-line message when the text is not a fault spec.
    """
    if not text or not text.strip():
        raise ValueError("empty fault spec")
    kwargs: dict[str, object] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"fault spec item {item.strip()!r} is not name=value")
        if name in kwargs or (name == "slow" and "slow_s" in kwargs):
            raise ValueError(f"fault spec item {name!r} given twice")
        try:
            if name == "rate":
                kwargs["rate"] = float(value)
            elif name == "kinds":
                kwargs["kinds"] = tuple(k.strip() for k in value.split("+"))
            elif name == "attempts":
                kwargs["attempts"] = _parse_attempts(value)
            elif name == "seed":
                kwargs["seed"] = int(value)
            elif name == "slow":
                kwargs["slow_s"] = float(value)
            elif name == "targets":
                kwargs["targets"] = tuple(t.strip() for t in value.split("+"))
            elif name == "always":
                always: dict[int, str] = {}
                for rule in value.split("+"):
                    movie_id, colon, kind = rule.partition(":")
                    if not colon:
                        raise ValueError(f"always rule {rule!r} is not <id>:<kind>")
                    always[int(movie_id)] = kind.strip()
                kwargs["always_fail_ids"] = always
            elif name == "path":
                paths: dict[str, str | PathFault] = {}
                for rule in value.split("+"):
                    parts = rule.split(":")
                    if len(parts) == 2:
                        paths[parts[0]] = parts[1]
                    elif len(parts) == 3:
                        paths[parts[0]] = PathFault(parts[1], _parse_attempts(parts[2]))
                    else:
                        raise ValueError(f"path rule {rule!r} is not <path>:<kind>[:<n>]")
                kwargs["per_path"] = paths
            else:
                raise ValueError(f"unknown fault spec item {name!r}")
        except ValueError as exc:
            message = str(exc)
            if message.startswith(("invalid literal", "could not convert")):
                raise ValueError(f"fault spec item {name!r} has a bad value {value!r}") from None
            raise
    return FaultSpec(**kwargs)  # type: ignore[arg-type]
