"""The image CDN: real posters, synthetic pictures, sizes, and every poster fault kind."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import struct
from collections.abc import Iterator
from datetime import date
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image

from reelset.sandbox import (
    IMAGE_FAULT_KINDS,
    Catalog,
    ImageFault,
    PosterFaultCatalog,
    Sandbox,
    poster_fault_catalog,
)

from .conftest import Api

REPO = Path(__file__).resolve().parents[2]


def _shared_poster_index() -> Path | None:
    root = os.environ.get("REELSET_SHARED_DATA")
    candidates = [Path(root)] if root else []
    candidates += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    for folder in candidates:
        if (folder / "posters" / "index.csv").is_file():
            return folder / "posters" / "index.csv"
    return None


def _get(sb: Sandbox, size: str, poster_path: str) -> requests.Response:
    return requests.get(sb.image_base_url + size + poster_path, timeout=30)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_real_posters_match_the_shared_sha256(api: Api) -> None:
    index = _shared_poster_index()
    if index is None:
        pytest.skip("shared/data/posters/index.csv not found (set REELSET_SHARED_DATA)")
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20
    for row in rows:
        details = api.json(f"/movie/{row['tmdb_id']}")
        assert details["imdb_id"] == row["imdb_id"]
        response = _get(api.sandbox, "original", details["poster_path"])
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert hashlib.sha256(response.content).hexdigest() == row["sha256"]


def test_real_posters_are_the_packaged_bytes_and_shrink_for_small_sizes(api: Api) -> None:
    posters = resources.files("reelset.sandbox").joinpath("data", "posters")
    packaged = posters.joinpath("tt0102744.jpg").read_bytes()
    poster_path = api.json("/movie/9588")["poster_path"]
    assert _get(api.sandbox, "w500", poster_path).content == packaged  # 300 px: not upscaled
    small = _decode(_get(api.sandbox, "w92", poster_path).content)
    assert small.size == (92, 138)


def test_synthetic_posters_decode_differ_and_repeat(api: Api) -> None:
    catalog = Catalog.bundled()
    plain = [i for i in catalog.ids() if (catalog.record(i) or {})["poster_path"]][-3:]
    contents = []
    for tmdb_id in plain:
        poster_path = api.json(f"/movie/{tmdb_id}")["poster_path"]
        response = _get(api.sandbox, "w500", poster_path)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
        assert _decode(response.content).size == (500, 750)
        assert _get(api.sandbox, "w500", poster_path).content == response.content
        assert _decode(_get(api.sandbox, "w185", poster_path).content).size == (185, 278)
        assert _decode(_get(api.sandbox, "original", poster_path).content).size == (500, 750)
        contents.append(response.content)
    assert len({hashlib.sha256(c).hexdigest() for c in contents}) == 3
    with Sandbox(Catalog.bundled()) as other:
        poster_path = api.json(f"/movie/{plain[0]}")["poster_path"]
        assert _get(other, "w500", poster_path).content == contents[0]


def test_backdrops_and_head(api: Api) -> None:
    backdrop = api.json("/movie/9588")["backdrop_path"]
    response = _get(api.sandbox, "w300", backdrop)
    assert _decode(response.content).size == (300, 169)
    head = requests.head(api.sandbox.image_base_url + "w300" + backdrop, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(response.content)


def test_unknown_files_and_sizes_are_404(api: Api) -> None:
    poster_path = api.json("/movie/9588")["poster_path"]
    assert _get(api.sandbox, "w999", poster_path).status_code == 404
    assert _get(api.sandbox, "w500", "/doesnotexist.jpg").status_code == 404
    assert requests.get(api.sandbox.base_url + "/t/p/", timeout=10).status_code == 404


def test_synthetic_catalog_images() -> None:
    catalog = Catalog.synthetic(5000, seed=4)
    with Sandbox(catalog) as sb:
        session = requests.Session()
        results = session.get(
            sb.api_base_url + "/movie/popular", params={"api_key": sb.api_key}, timeout=10
        ).json()["results"]
        with_poster = [m for m in results if m["poster_path"]]
        response = _get(sb, "w342", with_poster[0]["poster_path"])
        assert _decode(response.content).size == (342, 513)
        assert sb.counters.images_served == 1


# -- poster faults -------------------------------------------------------------------


@pytest.fixture(scope="module")
def faulty() -> PosterFaultCatalog:
    return poster_fault_catalog(Catalog.bundled(), per_kind=2, attempts=2)


@pytest.fixture(scope="module")
def faulty_sandbox(faulty: PosterFaultCatalog) -> Iterator[Sandbox]:
    with Sandbox(faulty.catalog) as sb:
        yield sb


def _poster_url(sb: Sandbox, faulty: PosterFaultCatalog, tmdb_id: int, size: str = "w500") -> (
    str
):
    record = faulty.catalog.record(tmdb_id)
    assert record is not None
    return sb.image_base_url + size + "/" + quote(record["poster_path"][1:], safe="")


def test_helper_covers_every_kind(faulty: PosterFaultCatalog) -> None:
    assert set(faulty.ids_by_kind) == set(IMAGE_FAULT_KINDS)
    assert all(len(ids) == 2 for k, ids in faulty.ids_by_kind.items() if k != "duplicate")
    assert len(faulty.ids_by_kind["duplicate"]) == 3
    assert len(faulty.faulty_ids) == sum(len(v) for v in faulty.ids_by_kind.values())
    first = faulty.ids_by_kind["bomb"][0]
    assert faulty.kind_of(first) == "bomb" and faulty.kind_of(9588) is None
    record = faulty.catalog.record(first)
    assert record is not None and record["poster_path"] == "/" + faulty.files_by_kind["bomb"][0]
    assert Catalog.bundled().record(first) != record  # the base catalog is untouched
    assert faulty.catalog.changes(date(1900, 1, 1), date(2100, 1, 1)) == []  # silent edits


def test_truncated_jpeg(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    for tmdb_id in faulty.ids_by_kind["truncated_jpeg"]:
        response = requests.get(_poster_url(faulty_sandbox, faulty, tmdb_id), timeout=10)
        assert response.status_code == 200
        assert len(response.content) == int(response.headers["Content-Length"]) > 100
        assert response.content[:2] == b"\xff\xd8" and not response.content.endswith(b"\xff\xd9")
        with pytest.raises(OSError):
            _decode(response.content)


def test_html_served_as_jpeg(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    tmdb_id = faulty.ids_by_kind["html_as_jpeg"][0]
    response = requests.get(_poster_url(faulty_sandbox, faulty, tmdb_id), timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    assert response.content.startswith(b"<!DOCTYPE html>")
    with pytest.raises(OSError):
        _decode(response.content)


def test_transient_bad_bodies_are_bad_once_then_the_picture(
    faulty_sandbox: Sandbox, faulty: PosterFaultCatalog
) -> None:
    truncated_id = faulty.ids_by_kind["truncated_once"][0]
    url = _poster_url(faulty_sandbox, faulty, truncated_id, "w185")
    first, second, third = (requests.get(url, timeout=10) for _ in range(3))
    assert first.headers["Content-Type"] == second.headers["Content-Type"] == "image/jpeg"
    assert len(first.content) == int(first.headers["Content-Length"]) > 100
    with pytest.raises(OSError):
        _decode(first.content)
    assert first.content == second.content[: len(first.content)]  # its first half
    assert second.content == third.content and _decode(second.content).size == (185, 278)

    html_id = faulty.ids_by_kind["html_once"][0]
    url = _poster_url(faulty_sandbox, faulty, html_id, "w185")
    first, second = (requests.get(url, timeout=10) for _ in range(2))
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert first.content.startswith(b"<!DOCTYPE html>")
    assert _decode(second.content).size == (185, 278)

    # attempts=N keeps the same bad bytes for N requests.
    catalog = faulty.catalog.copy()
    name = catalog.set_image_fault(truncated_id, ImageFault("truncated_once", attempts=2))
    with Sandbox(catalog) as sb:
        url = sb.image_base_url + "w185/" + name
        bodies = [requests.get(url, timeout=10).content for _ in range(3)]
    assert bodies[0] == bodies[1] != bodies[2] and _decode(bodies[2]).size == (185, 278)


def test_not_found(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    for tmdb_id in faulty.ids_by_kind["not_found"]:
        url = _poster_url(faulty_sandbox, faulty, tmdb_id)
        assert requests.get(url, timeout=10).status_code == 404


def test_transient_500(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    tmdb_id = faulty.ids_by_kind["transient_500"][0]
    url = _poster_url(faulty_sandbox, faulty, tmdb_id, "w342")
    assert [requests.get(url, timeout=10).status_code for _ in range(2)] == [500, 500]
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and _decode(response.content).size == (342, 513)


def test_oversized_with_and_without_content_length(
    faulty_sandbox: Sandbox, faulty: PosterFaultCatalog
) -> None:
    honest = faulty.ids_by_kind["oversized"][0]
    with requests.get(_poster_url(faulty_sandbox, faulty, honest), stream=True, timeout=10) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == 12 * 1024 * 1024
    chunked = faulty.ids_by_kind["oversized_chunked"][0]
    with requests.get(_poster_url(faulty_sandbox, faulty, chunked), stream=True, timeout=10) as r:
        assert r.status_code == 200 and "Content-Length" not in r.headers
        assert r.headers["Transfer-Encoding"] == "chunked"
        total = sum(len(chunk) for chunk in r.iter_content(1024 * 1024))
    assert total == 12 * 1024 * 1024


def test_decompression_bomb(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    tmdb_id = faulty.ids_by_kind["bomb"][0]
    response = requests.get(_poster_url(faulty_sandbox, faulty, tmdb_id), timeout=30)
    assert response.status_code == 200 and len(response.content) < 200_000
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", response.content[16:24])
    assert (width, height) == (30000, 30000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(response.content))


def test_duplicates_share_bytes(faulty_sandbox: Sandbox, faulty: PosterFaultCatalog) -> None:
    ids = faulty.ids_by_kind["duplicate"]
    assert len(set(faulty.files_by_kind["duplicate"])) == len(ids)
    bodies = {
        requests.get(_poster_url(faulty_sandbox, faulty, i), timeout=10).content for i in ids
    }
    assert len(bodies) == 1
    _decode(bodies.pop())


@pytest.mark.parametrize(
    "kind", ["hostile_dotdot", "hostile_encoded", "hostile_long", "hostile_unicode",
             "hostile_chars"]
)
def test_hostile_names_are_served(
    faulty_sandbox: Sandbox, faulty: PosterFaultCatalog, kind: str
) -> None:
    for tmdb_id, name in zip(faulty.ids_by_kind[kind], faulty.files_by_kind[kind], strict=True):
        response = requests.get(_poster_url(faulty_sandbox, faulty, tmdb_id), timeout=10)
        assert response.status_code == 200, name
        _decode(response.content)
    if kind == "hostile_long":
        assert all(len(name) == 300 for name in faulty.files_by_kind[kind])
    if kind == "hostile_unicode":
        assert all(not name.isascii() for name in faulty.files_by_kind[kind])


def test_raw_dotdot_path_is_looked_up_not_opened(
    faulty_sandbox: Sandbox, faulty: PosterFaultCatalog
) -> None:
    name = faulty.files_by_kind["hostile_dotdot"][0]
    assert name.startswith("../../")
    host, port = faulty_sandbox.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            f"GET /t/p/w92/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    _decode(body)


def test_image_fault_counters(faulty: PosterFaultCatalog) -> None:
    with Sandbox(faulty.catalog) as sb:
        for kind in ("not_found", "html_as_jpeg"):
            requests.get(_poster_url(sb, faulty, faulty.ids_by_kind[kind][0]), timeout=10)
        assert sb.counters.image_faults == {"not_found": 1, "html_as_jpeg": 1}
        assert sb.counters.images_served == 1  # the HTML one is a 200 "image"
