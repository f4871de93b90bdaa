"""``croissant.json``: the Croissant (MLCommons, JSON-LD) description of a version.

Work in progress: filled in by the Croissant work of issue 11.
"""

from __future__ import annotations

from typing import Any


def croissant_document(
    manifest: dict[str, Any], labels: dict[str, Any], files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The Croissant JSON-LD document of a version.

    ``files`` maps each data file's path relative to the version folder to its
    ``{"sha256", "bytes"}``.
    """
    return {
        "@context": {"@vocab": "https://schema.org/"},
        "@type": "Dataset",
        "name": f"{manifest['name']}-{manifest['version']}",
    }
