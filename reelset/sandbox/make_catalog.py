"""Build the sandbox's bundled catalog from the TMDB 5000 data set (run by developers).

    python -m reelset.sandbox.make_catalog --source ../shared/data

reads ``tmdb_5000_movies.csv`` and ``posters/index.csv`` (with the 20 poster JPEGs) from
``--source`` and writes ``data/catalog.json.gz`` and ``data/posters/*.jpg`` beside this
module. The output is deterministic. How the sample is made:

- all 20 movies with a real poster (their real IMDb id, ``_sandbox_poster_file`` naming the
  JPEG) plus movies in a fixed pseudo-random order (sha256 of the id) up to ``--size``;
- the sample always holds the 6 first (in that order) of the movies the data set tags with
  the retired genre 10769 "Foreign", every movie with an empty overview, the movie without
  a release date and 2 movies without genres;
- the data set has no IMDb ids or image paths: the other movies get a stable synthetic
  IMDb id (``tt`` + 7 digits from sha256 of the id) and poster/backdrop paths (27-char
  tokens from sha256); the first two non-poster movies of the order share one IMDb id (TMDB
  has such duplicates) and the next two have no poster (``poster_path`` null);
- ``adult`` is false for all; ``video`` false; companies get ``logo_path: null``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from reelset.sandbox.catalog import write_catalog_file
from reelset.sandbox.genres import FOREIGN_GENRE_ID
from reelset.sandbox.movie_shapes import POSTER_FILE_KEY, Movie, normalize_record

DEFAULT_SIZE = 300
DATA_DIR = Path(__file__).resolve().parent / "data"

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ENGLISH_NAMES = {
    "en": "English", "fr": "French", "es": "Spanish", "de": "German", "it": "Italian",
    "ja": "Japanese", "zh": "Mandarin", "cn": "Cantonese", "ko": "Korean", "hi": "Hindi",
    "ru": "Russian", "pt": "Portuguese", "ar": "Arabic", "sv": "Swedish", "da": "Danish",
    "nl": "Dutch", "no": "Norwegian", "fi": "Finnish", "pl": "Polish", "tr": "Turkish",
    "he": "Hebrew", "el": "Greek", "cs": "Czech", "hu": "Hungarian", "th": "Thai",
    "la": "Latin", "fa": "Persian", "ta": "Tamil", "te": "Telugu", "vi": "Vietnamese",
    "id": "Indonesian", "ro": "Romanian", "uk": "Ukrainian", "is": "Icelandic",
}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _token(kind: str, tmdb_id: int) -> str:
    value = int.from_bytes(_digest(f"{kind}:{tmdb_id}"), "big")
    chars = []
    for _ in range(27):
        value, digit = divmod(value, 62)
        chars.append(_B62[digit])
    return "".join(chars)


def _order_key(tmdb_id: int) -> bytes:
    return _digest(f"reelset-sandbox-sample:{tmdb_id}")


def _json_list(text: str) -> list[dict[str, Any]]:
    value = json.loads(text) if text else []
    return value if isinstance(value, list) else []


def _int(text: str) -> int:
    return int(float(text)) if text else 0


def _record(row: dict[str, str], imdb_id: str | None) -> Movie:
    tmdb_id = int(row["id"])
    countries = _json_list(row["production_countries"])
    return normalize_record(
        {
            "adult": False,
            "backdrop_path": f"/{_token('backdrop', tmdb_id)}.jpg",
            "belongs_to_collection": None,
            "budget": _int(row["budget"]),
            "genres": [{"id": g["id"], "name": g["name"]} for g in _json_list(row["genres"])],
            "homepage": row["homepage"] or "",
            "id": tmdb_id,
            "imdb_id": imdb_id,
            "origin_country": [countries[0]["iso_3166_1"]] if countries else [],
            "original_language": row["original_language"],
            "original_title": row["original_title"],
            "overview": row["overview"] or "",
            "popularity": float(row["popularity"] or 0),
            "poster_path": f"/{_token('poster', tmdb_id)}.jpg",
            "production_companies": [
                {"id": c["id"], "logo_path": None, "name": c["name"], "origin_country": ""}
                for c in _json_list(row["production_companies"])
            ],
            "production_countries": countries,
            "release_date": row["release_date"] or "",
            "revenue": _int(row["revenue"]),
            "runtime": _int(row["runtime"]),
            "spoken_languages": [
                {
                    "english_name": _ENGLISH_NAMES.get(lang["iso_639_1"], lang["name"]),
                    "iso_639_1": lang["iso_639_1"],
                    "name": lang["name"],
                }
                for lang in _json_list(row["spoken_languages"])
            ],
            "status": row["status"] or "Released",
            "tagline": row["tagline"] or "",
            "title": row["title"],
            "video": False,
            "vote_average": float(row["vote_average"] or 0),
            "vote_count": _int(row["vote_count"]),
            "keywords": {"keywords": _json_list(row["keywords"])},
        }
    )


def _synthetic_imdb(tmdb_id: int, taken: set[str]) -> str:
    number = int.from_bytes(_digest(f"imdb:{tmdb_id}")[:8], "big") % 8_999_999 + 1_000_000
    while f"tt{number:07d}" in taken:
        number += 1
    return f"tt{number:07d}"


def build_catalog(source: Path, out_dir: Path, size: int = DEFAULT_SIZE) -> list[Movie]:
    """Build the sample from ``source`` into ``out_dir``; returns the records written."""
    with (source / "tmdb_5000_movies.csv").open(encoding="utf-8", newline="") as f:
        rows = {int(r["id"]): r for r in csv.DictReader(f)}
    with (source / "posters" / "index.csv").open(encoding="utf-8", newline="") as f:
        posters = {int(r["tmdb_id"]): r for r in csv.DictReader(f)}
    missing = sorted(set(posters) - set(rows))
    if missing:
        raise ValueError(f"poster movies missing from the CSV: {missing}")

    order = sorted(rows, key=_order_key)

    def genre_ids(tmdb_id: int) -> list[int]:
        return [g["id"] for g in _json_list(rows[tmdb_id]["genres"])]

    chosen: list[int] = list(posters)
    musts = (
        [i for i in order if FOREIGN_GENRE_ID in genre_ids(i)][:6]
        + [i for i in order if not rows[i]["overview"]]
        + [i for i in order if not rows[i]["release_date"]][:1]
        + [i for i in order if not genre_ids(i)][:2]
    )
    for tmdb_id in musts + order:
        if len(chosen) >= size:
            break
        if tmdb_id not in chosen:
            chosen.append(tmdb_id)

    taken = {p["imdb_id"] for p in posters.values()}
    imdb_ids: dict[int, str | None] = {i: posters[i]["imdb_id"] for i in posters}
    synthetic_ids = [i for i in order if i in chosen and i not in posters]
    for tmdb_id in synthetic_ids:
        imdb_ids[tmdb_id] = _synthetic_imdb(tmdb_id, taken)
        taken.add(imdb_ids[tmdb_id])
    first, second = synthetic_ids[0], synthetic_ids[1]
    imdb_ids[second] = imdb_ids[first]
    no_poster = set(synthetic_ids[2:4])

    records = []
    for tmdb_id in sorted(chosen):
        record = _record(rows[tmdb_id], imdb_ids[tmdb_id])
        if tmdb_id in posters:
            record[POSTER_FILE_KEY] = posters[tmdb_id]["file"]
        if tmdb_id in no_poster:
            record["poster_path"] = None
        records.append(record)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_catalog_file(out_dir / "catalog.json.gz", records)
    poster_dir = out_dir / "posters"
    poster_dir.mkdir(exist_ok=True)
    for entry in posters.values():
        target = poster_dir / entry["file"]
        shutil.copyfile(source / "posters" / entry["file"], target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        if digest != entry["sha256"]:
            raise ValueError(f"{entry['file']}: sha256 {digest} does not match the index")
    return records


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True,
                        help="folder with tmdb_5000_movies.csv and posters/")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="movies in the sample")
    args = parser.parse_args(argv)
    try:
        records = build_catalog(args.source, args.out, args.size)
    except (OSError, ValueError, KeyError) as exc:
        print(f"make_catalog: {exc}", file=sys.stderr)
        return 1
    foreign = sum(1 for r in records if any(g["id"] == FOREIGN_GENRE_ID for g in r["genres"]))
    print(
        f"wrote {len(records)} movies to {args.out / 'catalog.json.gz'} "
        f"({(args.out / 'catalog.json.gz').stat().st_size} bytes), {foreign} with genre "
        f"{FOREIGN_GENRE_ID}, {sum(1 for r in records if POSTER_FILE_KEY in r)} real posters"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
