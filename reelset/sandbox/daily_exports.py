"""TMDB's daily ID export files: ``movie_ids_MM_DD_YYYY.json.gz`` and the adult variant.

Each file is gzip-compressed text with one JSON object per line,
``{"adult":false,"id":N,"original_title":"...","popularity":X,"video":false}``, for every
movie of the catalog (adult movies only in ``adult_movie_ids_MM_DD_YYYY.json.gz``, as on
TMDB). The sandbox publishes a file for "today" and the days before it; whatever date a
file names, its content is the catalog as it is when the file is first asked for (it is
then cached until the catalog changes).
"""

from __future__ import annotations

import gzip
import io
import re
import threading
from dataclasses import dataclass
from datetime import date

from reelset.sandbox.catalog import Catalog

_NAME_RE = re.compile(r"^(adult_)?movie_ids_(\d\d)_(\d\d)_(\d{4})\.json\.gz$")


@dataclass(frozen=True)
class ExportName:
    """A parsed export file name."""

    day: date
    adult: bool


def parse_export_name(file_name: str) -> ExportName | None:
    """Parse ``[adult_]movie_ids_MM_DD_YYYY.json.gz``; None if it is not such a name."""
    match = _NAME_RE.match(file_name)
    if not match:
        return None
    try:
        day = date(int(match.group(4)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
    return ExportName(day, bool(match.group(1)))


def export_file_name(day: date, *, adult: bool = False) -> str:
    """The file name TMDB gives the export of ``day``."""
    prefix = "adult_" if adult else ""
    return f"{prefix}movie_ids_{day:%m_%d_%Y}.json.gz"


def build_export(catalog: Catalog, *, adult: bool = False) -> bytes:
    """The gzip bytes of an export of ``catalog`` (reproducible: no gzip timestamp)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz:
        batch: list[str] = []
        for line in catalog.export_lines(adult=adult):
            batch.append(line)
            if len(batch) >= 10_000:
                gz.write(("\n".join(batch) + "\n").encode("utf-8"))
                batch = []
        if batch:
            gz.write(("\n".join(batch) + "\n").encode("utf-8"))
    return buffer.getvalue()


class ExportCache:
    """Export bytes per (catalog version, adult), built once per version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: dict[tuple[int, bool], bytes] = {}

    def get(self, catalog: Catalog, *, adult: bool) -> bytes:
        """The export of ``catalog`` as it is now."""
        with self._lock:
            key = (catalog.version, adult)
            data = self._cached.get(key)
            if data is None:
                data = build_export(catalog, adult=adult)
                self._cached = {k: v for k, v in self._cached.items() if k[0] == key[0]}
                self._cached[key] = data
            return data
