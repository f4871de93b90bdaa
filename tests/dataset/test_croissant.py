"""croissant.json: a Croissant 1.0 document that mlcroissant loads and reads records from."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import mlcroissant as mlc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reelset.dataset.croissant import croissant_document
from reelset.dataset.publish import file_digest
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import read_labels, read_manifest
from tests.dataset.conftest import Crafted, build, random_movies

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def poster_bytes(tmdb_id: int) -> bytes:
    """A small JPEG whose size and colour depend on the movie."""
    image = Image.new("RGB", (20 + tmdb_id % 7, 30 + tmdb_id % 5), (tmdb_id % 256, 80, 160))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def embed_images(folder: Path) -> dict[str, Any]:
    """Turn a reference-mode version into an embed-mode one, the way the publisher lays it
    out (``data/<split>-00000-of-00001.parquet`` with an ``image`` struct column; null for
    movies without a poster, here every third one); the updated manifest."""
    manifest = read_manifest(folder)
    shards: dict[str, list[str]] = {}
    for split in SPLITS:
        table = pq.read_table(folder / "data" / f"{split}.parquet")
        table = table.drop_columns([c for c in ("image",) if c in table.column_names])
        ids = table.column("tmdb_id").to_pylist()
        images = [
            None if i % 3 == 0 else {"bytes": poster_bytes(i), "path": f"{i}.jpg"} for i in ids
        ]
        table = table.append_column(pa.field("image", IMAGE_TYPE), pa.array(images, IMAGE_TYPE))
        rel = f"data/{split}-00000-of-00001.parquet"
        pq.write_table(table, folder / rel)
        (folder / "data" / f"{split}.parquet").unlink()
        shards[split] = [rel]
    manifest["data_files"] = shards
    manifest["images"] = {"mode": "embed", "max_side": 0, "quality": 90}
    return manifest


def write_croissant(folder: Path, manifest: dict[str, Any]) -> Path:
    files = {
        p.relative_to(folder).as_posix(): file_digest(p)
        for p in sorted((folder / "data").rglob("*"))
        if p.is_file()
    }
    document = croissant_document(manifest, read_labels(folder), files)
    path = folder / "croissant.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def embedded(crafted: Crafted) -> tuple[Path, dict[str, Any]]:
    crafted.add(random_movies(40, seed=4))  # no posters: the images are added after
    folder = build(crafted, images="reference").path
    return folder, embed_images(folder)


def test_mlcroissant_reads_every_split_with_images(embedded: tuple[Path, dict[str, Any]]) -> None:
    folder, manifest = embedded
    path = write_croissant(folder, manifest)
    dataset = mlc.Dataset(jsonld=str(path))
    for split in SPLITS:
        table = pq.read_table(folder / manifest["data_files"][split][0])
        records = list(dataset.records(record_set=split))
        assert [r[f"{split}/tmdb_id"] for r in records] == table.column("tmdb_id").to_pylist()
        assert [[g.decode() for g in r[f"{split}/genres"]] for r in records] == (
            table.column("genres").to_pylist()
        )
        n_labels = manifest["labels"]["count"]
        assert all(len(r[f"{split}/labels"]) == n_labels for r in records)
    records = list(dataset.records(record_set="train"))
    with_image = [r for r in records if r["train/tmdb_id"] % 3]
    assert with_image and len(with_image) < len(records)
    for record in with_image:
        image = record["train/image"]
        original = Image.open(io.BytesIO(poster_bytes(record["train/tmdb_id"])))
        assert image.size == original.size
        assert hashlib.sha256(image.tobytes()).hexdigest() == (
            hashlib.sha256(original.tobytes()).hexdigest()
        )
    assert all(r["train/image"] is None for r in records if r["train/tmdb_id"] % 3 == 0)


def test_document_describes_files_labels_and_biases(
    embedded: tuple[Path, dict[str, Any]],
) -> None:
    folder, manifest = embedded
    manifest["label_agreement"] = {
        **manifest["label_agreement"], "movies_compared": 1234, "micro_jaccard": 0.4321,
    }
    document = json.loads(write_croissant(folder, manifest).read_text(encoding="utf-8"))
    assert document["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    objects = {d["contentUrl"]: d for d in document["distribution"] if "contentUrl" in d}
    assert sorted(objects) == sorted(p for s in SPLITS for p in manifest["data_files"][s])
    for rel, entry in objects.items():
        digest = file_digest(folder / rel)
        assert entry["sha256"] == digest["sha256"]
        assert entry["contentSize"] == f"{digest['bytes']} B"
        assert entry["encodingFormat"] == "application/x-parquet"
    fields = {f["@id"]: f for f in document["recordSet"][1]["field"]}
    assert fields["train/tmdb_id"]["dataType"] == "sc:Integer"
    assert fields["train/popularity"]["dataType"] == "sc:Float"
    assert fields["train/genres"]["dataType"] == "sc:Text" and fields["train/genres"]["repeated"]
    assert fields["train/image"]["dataType"] == "sc:ImageObject"
    assert fields["train/image"]["source"]["transform"] == {"jsonPath": "bytes"}
    names = [row["genre_labels/name"] for row in document["recordSet"][0]["data"]]
    assert names == manifest["labels"]["names"]
    assert "1,234 movies" in document["rai:dataBiases"]
    assert "0.4321" in document["rai:dataBiases"]
    assert "not endorsed or certified by TMDB" in document["creditText"]
    assert "IMDb" in document["creditText"]  # IMDb data was compared: its notice is due


def test_tmdb_only_version_has_no_imdb_notice(embedded: tuple[Path, dict[str, Any]]) -> None:
    folder, manifest = embedded
    assert manifest["label_agreement"]["movies_compared"] == 0
    document = json.loads(write_croissant(folder, manifest).read_text(encoding="utf-8"))
    assert "IMDb" not in document["creditText"]
    assert document["license"] == ["https://www.themoviedb.org/api-terms-of-use"]
