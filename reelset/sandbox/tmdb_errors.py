"""TMDB API v3 error responses, with the status codes and messages TMDB documents.

Every error body has TMDB's shape ``{"status_code": N, "status_message": "...",
"success": false}``. The numbers and texts follow TMDB's published error table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TmdbError:
    """One TMDB error: its HTTP status, TMDB's own ``status_code`` and message."""

    http_status: int
    status_code: int
    status_message: str

    def body(self) -> dict[str, Any]:
        """The JSON object TMDB sends for this error."""
        return {
            "status_code": self.status_code,
            "status_message": self.status_message,
            "success": False,
        }


SERVICE_OFFLINE = TmdbError(
    503, 9, "Service offline: This service is temporarily offline, try again later."
)
INVALID_API_KEY = TmdbError(401, 7, "Invalid API key: You must be granted a valid key.")
INTERNAL_ERROR = TmdbError(500, 11, "Internal error: Something went wrong, contact TMDB.")
INVALID_DATE_RANGE = TmdbError(
    422, 20, "Invalid date range: Should be a range no longer than 14 days."
)
INVALID_PAGE = TmdbError(
    400,
    22,
    "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.",
)
INVALID_DATE = TmdbError(400, 23, "Invalid date: Format needs to be YYYY-MM-DD.")
REQUEST_LIMIT = TmdbError(
    429, 25, "Your request count (#) is over the allowed limit of (40)."
)
TOO_MANY_APPENDS = TmdbError(
    400, 27, "Too many append to response objects: The maximum number of remote calls is 20."
)
NOT_FOUND = TmdbError(404, 34, "The resource you requested could not be found.")
METHOD_NOT_SUPPORTED = TmdbError(
    405, 42, "The request method is not supported for this resource."
)
BACKEND_UNREACHABLE = TmdbError(502, 43, "Couldn't connect to the backend server.")
INVALID_INPUT = TmdbError(400, 47, "The input is not valid.")

# What a 5xx fault of each HTTP status sends as its body.
FAULT_ERRORS: dict[int, TmdbError] = {
    500: INTERNAL_ERROR,
    502: BACKEND_UNREACHABLE,
    503: SERVICE_OFFLINE,
}
