"""Dataset names, version folders and the ``LATEST`` pointer.

Layout: ``<output_dir>/<name>/v0001/``, ``v0002/``, ... and ``<output_dir>/<name>/LATEST``
(one line, e.g. ``v0002``). A version folder appears complete or not at all: a build
writes into ``<output_dir>/<name>/.staging-<version>-<pid>/`` and renames it at the end
(:mod:`reelset.dataset.publish`); then ``LATEST`` is replaced atomically
(:func:`reelset.files.write_text`). Folders whose name starts with a dot are never
versions.

In object storage (``output_dir = "s3://..."``, :mod:`reelset.dataset.remote`) the same
layout holds keys instead of files; a version is one whose ``manifest.json`` exists (it
is uploaded last), and ``LATEST`` is replaced by one PUT. Every function here takes a
local :class:`~pathlib.Path` or a :class:`~reelset.dataset.remote.RemotePath`.

References on the command line: ``NAME`` (its latest version), ``NAME@v3``,
``NAME@v0003``, ``NAME@3`` or ``NAME@latest``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reelset.dataset.remote import Folder, RemotePath, location
from reelset.errors import UsageError, error_line
from reelset.files import write_text

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VERSION_RE = re.compile(r"^v(\d{4,})$")
LATEST_FILE = "LATEST"
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.json"


def check_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else :class:`UsageError`."""
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-' (max 100)"
        )
    return name


def format_version(number: int) -> str:
    """``v0003`` for 3."""
    return f"v{number:04d}"


def parse_version(text: str) -> int:
    """3 for ``v3``, ``v0003`` or ``3``; :class:`UsageError` otherwise."""
    raw = text.strip()
    match = re.fullmatch(r"[vV]?(\d{1,9})", raw)
    if not match or int(match.group(1)) < 1:
        raise UsageError(f"invalid version {text!r}: expected v1, v0001 or latest")
    return int(match.group(1))


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@VERSION]`` -> (name, version text or None for latest)."""
    name, sep, version = ref.partition("@")
    check_name(name)
    if sep and not version:
        raise UsageError(f"invalid dataset reference {ref!r}: nothing after '@'")
    if not sep or version.lower() == "latest":
        return name, None
    return name, format_version(parse_version(version))


def versions(root: Folder) -> list[str]:
    """The complete versions of a dataset folder, oldest first."""
    if not root.is_dir():
        return []
    found = [
        p.name
        for p in root.iterdir()
        if VERSION_RE.match(p.name) and p.is_dir() and (p / MANIFEST_FILE).is_file()
    ]
    return sorted(found, key=lambda v: int(v[1:]))


def latest(root: Folder) -> str | None:
    """The version ``LATEST`` names, or the newest version folder if it names none."""
    pointer = root / LATEST_FILE
    try:
        named = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        named = ""
    if VERSION_RE.match(named) and (root / named / MANIFEST_FILE).is_file():
        return named
    found = versions(root)
    return found[-1] if found else None


def next_version(root: Folder) -> str:
    """The version a new build of this dataset gets."""
    numbers = [int(p.name[1:]) for p in root.iterdir() if VERSION_RE.match(p.name)] if (
        root.is_dir()
    ) else []
    return format_version(max(numbers, default=0) + 1)


def write_latest(root: Folder, version: str) -> None:
    """Point ``LATEST`` at ``version`` atomically."""
    if isinstance(root, RemotePath):
        (root / LATEST_FILE).write_text(version + "\n")
    else:
        write_text(root / LATEST_FILE, version + "\n")


def read_manifest(folder: Folder) -> dict[str, Any]:
    """The ``manifest.json`` of a version folder."""
    return _read_json(folder / MANIFEST_FILE)


def read_labels(folder: Folder) -> dict[str, Any]:
    """The ``labels.json`` of a version folder (label order, counts, dropped genres)."""
    return _read_json(folder / LABELS_FILE)


def _read_json(path: Folder) -> dict[str, Any]:
    """A JSON object file of a version; a missing, unreadable or corrupt one is a usage
    error naming the file (exit 2), never a crash."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: the version is incomplete") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path} is corrupt (not JSON: {error_line(exc, limit=120)})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is corrupt (not a JSON object)")
    return data


def resolve(output_dir: Folder, name: str, version: str | None) -> tuple[str, Folder]:
    """(version, folder) of ``name`` at ``version`` (None or "latest": the latest)."""
    check_name(name)
    root = output_dir / name
    if not root.is_dir():
        raise UsageError(f"no dataset named {name!r} in {output_dir}")
    if version is None or version.lower() == "latest":
        found = latest(root)
        if found is None:
            raise UsageError(f"dataset {name!r} has no complete version in {root}")
        return found, root / found
    wanted = format_version(parse_version(version))
    if not (root / wanted / MANIFEST_FILE).is_file():
        have = ", ".join(versions(root)) or "none"
        raise UsageError(f"dataset {name!r} has no version {wanted} (versions: {have})")
    return wanted, root / wanted


def dataset_names(output_dir: Folder) -> list[str]:
    """Names of the datasets with at least one complete version, sorted."""
    if not output_dir.is_dir():
        return []
    return sorted(
        p.name for p in output_dir.iterdir() if NAME_RE.match(p.name) and p.is_dir()
        and versions(p)
    )


def split_files(folder: Folder, split: str) -> list[Folder]:
    """The parquet files of one split of a version, in order.

    From ``manifest.json`` ``data_files`` when it lists them (sharded versions:
    ``data/<split>-00000-of-0000N.parquet``), else ``data/<split>.parquet``.
    """
    listed = read_manifest(folder).get("data_files", {}).get(split)
    if listed:
        return [folder / rel for rel in listed]
    return [folder / "data" / f"{split}.parquet"]


def webdataset_files(folder: Folder, split: str) -> list[Folder]:
    """The WebDataset tar shards of one split, in order (``manifest.json``
    ``webdataset_files``); empty unless the version was built with ``images = "webdataset"``."""
    listed = read_manifest(folder).get("webdataset_files", {}).get(split) or []
    return [folder / rel for rel in listed]


def version_folder(
    path: str | Path | RemotePath, storage_options: dict[str, Any] | None = None
) -> Folder:
    """A version folder given by its path (e.g. a copy, with no config or store) or its
    URL (``s3://bucket/datasets/genres/v0003``, read with ``storage_options``): it must
    hold a ``manifest.json``; :class:`UsageError` otherwise."""
    folder = path if isinstance(path, RemotePath) else location(path, storage_options)
    if not (folder / MANIFEST_FILE).is_file():
        raise UsageError(f"{folder} is not a dataset version folder (no {MANIFEST_FILE})")
    return folder
