"""Rate specifications such as ``"40/10s"`` or ``"50/1s"``: N requests per window."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|min|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class RateSpec:
    """``requests`` allowed in any window of ``per_seconds`` seconds."""

    requests: int
    per_seconds: float

    @property
    def per_second(self) -> float:
        """The average rate in requests per second."""
        return self.requests / self.per_seconds

    def __str__(self) -> str:
        secs = self.per_seconds
        text = f"{int(secs)}s" if secs == int(secs) else f"{secs}s"
        return f"{self.requests}/{text}"


def parse_rate(text: str) -> RateSpec:
    """Parse ``"40/10s"``, ``"50/1s"``, ``"20/s"``, ``"600/1m"`` into a :class:`RateSpec`.

    Raises ``ValueError`` with a one-line message when the text is not a rate.
    """
    match = _RATE_RE.match(text or "")
    if not match:
        raise ValueError(f"not a rate: {text!r} (expected e.g. '40/10s' or '50/1s')")
    count = int(match.group(1))
    amount = float(match.group(2)) if match.group(2) else 1.0
    seconds = amount * _UNIT_SECONDS[match.group(3)]
    if count <= 0 or seconds <= 0:
        raise ValueError(f"not a rate: {text!r} (requests and window must be positive)")
    return RateSpec(count, seconds)
