"""Poster downloads against the sandbox's image server (real sockets, real faults)."""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import update

from reelset.config import Credentials, settings_from_dict
from reelset.errors import ConfigError
from reelset.posters.audit import audit_posters
from reelset.posters.download import PostersInterrupted, download_posters, rejected_recheck
from reelset.posters.verify import RETRYABLE_REJECTIONS
from reelset.sandbox import (
    Catalog,
    FaultSpec,
    ImageFault,
    PathFault,
    PosterFaultCatalog,
    Sandbox,
    poster_fault_catalog,
)
from reelset.sandbox.poster_faults import decompression_bomb_png
from reelset.storage import MovieRecord, Store, schema
from reelset.storage.posters import (
    PosterRow,
    Recheck,
    count_poster_targets,
    iter_poster_targets,
    upsert_poster_rows,
)
from reelset.storage.schema import utcnow
from reelset.tmdb.client import TmdbClient
from tests.posters.support import (
    FIXTURES,
    check_folder,
    normal_ids,
    open_failures,
    poster_rows,
    poster_settings,
    store_movies,
)

NO_POSTER_ID = 1645  # a bundled movie TMDB has no poster for


@pytest.fixture(scope="module")
def faulty() -> PosterFaultCatalog:
    return poster_fault_catalog(Catalog.bundled(), per_kind=2, attempts=2)


@pytest.fixture
def sandbox(faulty: PosterFaultCatalog) -> Iterator[Sandbox]:
    with Sandbox(catalog=faulty.catalog) as sb:
        yield sb


@pytest.mark.parametrize("processes", [0, 2], ids=["in-threads", "verifier-processes"])
def test_every_fault_ends_in_the_right_status(
    sqlite_store: Store,
    sandbox: Sandbox,
    faulty: PosterFaultCatalog,
    tmp_path: Path,
    processes: int,
) -> None:
    catalog = faulty.catalog
    normal = normal_ids(catalog, faulty.faulty_ids, 3)
    assert catalog.record(NO_POSTER_ID)["poster_path"] is None  # type: ignore[index]
    ids = store_movies(sqlite_store, catalog, [*faulty.faulty_ids, *normal, NO_POSTER_ID])
    settings = poster_settings(tmp_path, verify_processes=processes)
    decompression_bomb_png()  # made once per process (1-2 s): not within a download

    summary = download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)

    rows = poster_rows(sqlite_store)
    assert set(rows) == set(ids)
    expected = {
        "truncated_jpeg": ("rejected", "truncated"),
        "html_as_jpeg": ("rejected", "not_an_image"),
        "truncated_once": ("ok", None),
        "html_once": ("ok", None),
        "not_found": ("failed", "http_404"),
        "transient_500": ("ok", None),
        "oversized": ("rejected", "too_large"),
        "oversized_chunked": ("rejected", "too_large"),
        "bomb": ("rejected", "decompression_bomb"),
        "duplicate": ("ok", None),
        "hostile_dotdot": ("rejected", "invalid_path"),
        "hostile_encoded": ("ok", None),
        "hostile_long": ("rejected", "invalid_path"),
        "hostile_unicode": ("ok", None),
        "hostile_chars": ("ok", None),
    }
    for kind, (status, reason) in expected.items():
        for tmdb_id in faulty.ids_by_kind[kind]:
            row = rows[tmdb_id]
            assert row["status"] == status, (kind, row["error"])
            if reason is not None:
                assert row["error"].startswith(reason + ":"), (kind, row["error"])
            if status != "ok":
                assert row["file_path"] is None and row["sha256"] is None
    assert "Content-Length" in rows[faulty.ids_by_kind["oversized"][0]]["error"]
    assert "stopped reading" in rows[faulty.ids_by_kind["oversized_chunked"][0]]["error"]
    assert "HTML" in rows[faulty.ids_by_kind["html_as_jpeg"][0]]["error"]
    for tmdb_id in faulty.ids_by_kind["transient_500"]:
        assert rows[tmdb_id]["attempts"] == 3  # two 500s, then the picture
    for kind in ("truncated_once", "html_once"):  # one bad body, then the picture
        assert all(rows[i]["attempts"] == 2 for i in faulty.ids_by_kind[kind])
    for kind in ("truncated_jpeg", "html_as_jpeg"):  # the same bad bytes twice
        for tmdb_id in faulty.ids_by_kind[kind]:
            assert rows[tmdb_id]["attempts"] == 2
            assert rows[tmdb_id]["error"].endswith("the same bytes twice"), rows[tmdb_id]
    assert rows[faulty.ids_by_kind["bomb"][0]]["attempts"] == 1  # final at once
    assert rows[NO_POSTER_ID]["status"] == "missing"
    for tmdb_id in normal:
        assert rows[tmdb_id]["status"] == "ok"

    # Recorded metadata of a kept poster.
    ok = rows[normal[0]]
    assert (ok["format"], ok["mode"]) == ("JPEG", "RGB") and ok["width"] > 0
    assert ok["file_path"] == f"{ok['sha256'][:2]}/{ok['sha256']}.jpg"
    assert len(ok["phash"]) == 16 and ok["downloaded_at"] is not None
    assert ok["source_url"].startswith(sandbox.image_base_url + "w500/")
    with Image.open(settings.posters_dir / ok["file_path"]) as im:
        assert im.size == (ok["width"], ok["height"])

    # Byte-identical posters are stored once and shared.
    dup = {rows[i]["sha256"] for i in faulty.ids_by_kind["duplicate"]}
    assert len(dup) == 1
    files = check_folder(settings.posters_dir, tmp_path)
    ok_shas = {r["sha256"] for r in rows.values() if r["status"] == "ok"}
    assert sorted(files.values()) == sorted(ok_shas)  # one file per distinct content
    assert summary.ok == len([r for r in rows.values() if r["status"] == "ok"])
    assert summary.shared == summary.ok - len(ok_shas) == 2
    assert summary.rejected_by_reason["too_large"] == 4
    assert summary.failed == 2 and summary.missing == 1
    # Hostile names reached nothing outside the folder.
    for outside in (tmp_path, tmp_path.parent, settings.posters_dir.parent):
        assert not [p for p in outside.glob("x*.jpg")]

    # Failures are recorded for the 404s only; a rerun tries exactly those again.
    failures = open_failures(sqlite_store)
    assert set(failures) == {str(i) for i in faulty.ids_by_kind["not_found"]}
    assert all(f.http_status == 404 for f in failures.values())
    again = download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)
    assert (again.movies, again.failed, again.ok) == (2, 2, 0)
    assert all(f.attempts == 2 for f in open_failures(sqlite_store).values())
    assert poster_rows(sqlite_store)[faulty.ids_by_kind["not_found"][0]]["attempts"] == 2


def _path_faults(
    store: Store, faulty: PosterFaultCatalog, kinds: list[str], *, attempts: int, **spec: Any
) -> tuple[list[int], FaultSpec]:
    """Store one ordinary movie per fault kind; a spec failing each one's poster ``attempts``
    times with its kind."""
    catalog = faulty.catalog
    ids = normal_ids(catalog, faulty.faulty_ids, len(kinds))
    store_movies(store, catalog, ids)
    paths = [f"/t/p/w500{catalog.record(i)['poster_path']}" for i in ids]  # type: ignore[index]
    rules = {p: PathFault(k, attempts=attempts) for p, k in zip(paths, kinds, strict=True)}
    return ids, FaultSpec(per_path=rules, **spec)


def test_a_rerun_fixes_transient_failures(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    catalog = faulty.catalog
    kinds = ["500", "reset", "truncated", "slow", "503"]
    ids, spec = _path_faults(sqlite_store, faulty, kinds, attempts=1, slow_s=2.0)
    settings = poster_settings(tmp_path, max_retries=0, timeout_s=0.5)
    with Sandbox(catalog=catalog, faults=spec) as sb:
        first = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        assert first.failed == 5 and first.ok == 0
        assert dict(first.failed_by_reason) == {
            "http_500": 1,
            "http_503": 1,
            "connection": 1,
            "incomplete": 1,
            "timeout": 1,
        }
        assert set(open_failures(sqlite_store)) == {str(i) for i in ids}
        assert check_folder(settings.posters_dir, tmp_path) == {}

        second = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
    assert (second.movies, second.ok, second.failed) == (5, 5, 0)
    rows = poster_rows(sqlite_store)
    assert all(rows[i]["status"] == "ok" and rows[i]["attempts"] == 2 for i in ids)
    assert open_failures(sqlite_store) == {}
    assert len(check_folder(settings.posters_dir, tmp_path)) == 5


def test_retries_within_one_run(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    catalog = faulty.catalog
    _ids, spec = _path_faults(sqlite_store, faulty, ["502", "reset", "429"], attempts=2)
    with Sandbox(catalog=catalog, faults=spec) as sb:
        summary = download_posters(
            sqlite_store, poster_settings(tmp_path), image_base_url=sb.image_base_url
        )
    assert (summary.ok, summary.failed, summary.retries, summary.requests) == (3, 0, 6, 9)


def test_changed_or_removed_poster_paths_are_fetched_again(
    store: Store, sandbox: Sandbox, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    sqlite_store = store  # this one runs on each backend
    catalog = faulty.catalog
    a, b, c = normal_ids(catalog, faulty.faulty_ids, 3)
    store_movies(sqlite_store, catalog, [a, b, c])
    settings = poster_settings(tmp_path)
    download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)
    before = poster_rows(sqlite_store)

    catalog_copy_name = "reelsetTestChangedPoster000001.jpg"
    catalog.add_image(catalog_copy_name, (FIXTURES / "tt0457308.jpg").read_bytes())
    sqlite_store.movies.upsert(
        [
            MovieRecord(tmdb_id=a, title="A", poster_path="/" + catalog_copy_name),
            MovieRecord(tmdb_id=b, title="B", poster_path=None),
        ]
    )
    assert count_poster_targets(sqlite_store) == 2
    summary = download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url)
    assert (summary.movies, summary.ok, summary.missing) == (2, 1, 1)
    after = poster_rows(sqlite_store)
    assert after[a]["poster_path"] == "/" + catalog_copy_name
    assert after[a]["sha256"] == "81c9cd68c0deb980e8aefd17966d951cda4aae11c82c49624e58fe1fbb8efa64"
    assert after[a]["attempts"] == 1
    assert after[b]["status"] == "missing" and after[b]["file_path"] is None
    assert after[c] == before[c]
    assert (
        download_posters(sqlite_store, settings, image_base_url=sandbox.image_base_url).movies == 0
    )


def test_formats_and_training_copies(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    catalog = faulty.catalog.copy()
    jpeg = (FIXTURES / "tt1242460.jpg").read_bytes()
    ids = normal_ids(catalog, faulty.faulty_ids, 4)
    bodies = {}
    for tmdb_id, (fmt, mode) in zip(
        ids, [("PNG", "RGBA"), ("WEBP", "RGB"), ("GIF", "P"), ("JPEG", "L")], strict=True
    ):
        out = io.BytesIO()
        with Image.open(io.BytesIO(jpeg)) as im:
            im.convert(mode).save(out, format=fmt)
        name = f"reelsetFormatTest{fmt}{tmdb_id}.img"
        catalog.add_image(name, out.getvalue())
        catalog.update_movie(tmdb_id, record_change=False, poster_path="/" + name)
        bodies[tmdb_id] = fmt
    store_movies(sqlite_store, catalog, ids)
    settings = poster_settings(tmp_path, resize_max_side=96, resize_quality=80)
    with Sandbox(catalog=catalog) as sb:
        summary = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
    rows = poster_rows(sqlite_store)
    png, webp, gif, gray = (rows[i] for i in ids)
    assert (png["format"], png["mode"], png["file_path"][-4:]) == ("PNG", "RGBA", ".png")
    assert (webp["format"], webp["file_path"][-5:]) == ("WEBP", ".webp")
    assert gif["status"] == "rejected" and gif["error"].startswith("format_not_allowed")
    assert (gray["format"], gray["mode"]) == ("JPEG", "L")
    assert summary.resized == 3
    for row in (png, webp, gray):
        resized = row["resized_file_path"]
        assert resized == f"{row['sha256'][:2]}/{row['sha256']}.r96.jpg"
        with Image.open(settings.posters_dir / resized) as im:
            assert (im.format, im.mode) == ("JPEG", "RGB")
            assert im.size == (row["resized_width"], row["resized_height"])
            assert max(im.size) == 96
    assert len(check_folder(settings.posters_dir, tmp_path)) == 6


def test_image_base_url_comes_from_the_tmdb_client_only_when_needed(
    sqlite_store: Store, sandbox: Sandbox, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    catalog = faulty.catalog
    ids = normal_ids(catalog, faulty.faulty_ids, 2)
    store_movies(sqlite_store, catalog, [*ids, NO_POSTER_ID])
    settings = settings_from_dict(
        {
            "storage": {"posters_dir": "posters"},
            "tmdb": {"api_base_url": sandbox.api_base_url},
            "posters": {"rate_limit": "1000/1s", "backoff_initial_s": 0.01},
        },
        base_dir=tmp_path,
    )
    credentials = Credentials(api_key=SecretStr(sandbox.api_key))
    with TmdbClient(settings, credentials) as client:
        before = sandbox.counters.requests_by_endpoint.get("/3/configuration", 0)
        summary = download_posters(sqlite_store, settings, client=client)
        again = download_posters(sqlite_store, settings, client=client)
        after = sandbox.counters.requests_by_endpoint.get("/3/configuration", 0)
    assert (summary.ok, summary.missing, again.movies) == (2, 1, 0)
    assert after - before == 1

    # Nothing to fetch over the network: no base URL needed at all.
    sqlite_store.movies.upsert([MovieRecord(tmdb_id=NO_POSTER_ID, title="x", poster_path=None)])
    with sqlite_store.write() as conn:
        conn.execute(
            update(schema.posters)
            .values(status="failed")
            .where(schema.posters.c.tmdb_id == NO_POSTER_ID)
        )
    assert download_posters(sqlite_store, poster_settings(tmp_path)).missing == 1
    with sqlite_store.write() as conn:
        conn.execute(update(schema.posters).values(status="failed"))
    with pytest.raises(ConfigError, match="image base URL"):
        download_posters(sqlite_store, poster_settings(tmp_path))


def test_target_selection_and_upserts_on_each_backend(store: Store) -> None:
    store.movies.upsert(
        [MovieRecord(tmdb_id=i, title=f"m{i}", poster_path=f"/p{i}.jpg") for i in range(1, 8)]
    )
    assert [t.tmdb_id for t in iter_poster_targets(store)] == list(range(1, 8))
    upsert_poster_rows(
        store,
        [
            PosterRow(2, "ok", poster_path="/p2.jpg", sha256="a" * 64, attempts=1),
            PosterRow(3, "failed", poster_path="/p3.jpg", error="http_500: HTTP 500", attempts=4),
            PosterRow(4, "rejected", poster_path="/p4.jpg", error="truncated: x", attempts=1),
            PosterRow(5, "ok", poster_path="/old.jpg", sha256="b" * 64, attempts=1),
            PosterRow(6, "missing", poster_path=None),
            PosterRow(7, "ok", poster_path="/p7.jpg", sha256="c" * 64, attempts=1),
        ],
    )
    store.movies.mark_gone([7])
    store.movies.upsert(
        [MovieRecord(tmdb_id=7, title="m7", poster_path="/new7.jpg", status="gone")]
    )
    targets = {t.tmdb_id: t for t in iter_poster_targets(store, page_size=2)}
    assert sorted(targets) == [1, 3, 5, 6]  # no row, failed, path changed, path appeared
    assert targets[3].previous_attempts == 4 and targets[5].previous_poster_path == "/old.jpg"
    assert sorted(t.tmdb_id for t in iter_poster_targets(store, retry_rejected=True)) == [
        1,
        3,
        4,
        5,
        6,
    ]
    assert [t.tmdb_id for t in iter_poster_targets(store, [2, 3, 99])] == [3]
    assert [t.tmdb_id for t in iter_poster_targets(store, [2, 3], force=True)] == [2, 3]
    assert count_poster_targets(store) == 4
    assert count_poster_targets(store, [1, 2], force=True) == 2
    # Upserts replace whole rows and are idempotent; rows of unknown movies are skipped.
    row = PosterRow(3, "ok", poster_path="/p3.jpg", sha256="d" * 64, attempts=5)
    upsert_poster_rows(store, [row, row, PosterRow(12345, "missing")])
    upsert_poster_rows(store, [row])
    with store.read() as conn:
        stored = conn.execute(schema.posters.select().where(schema.posters.c.tmdb_id == 3)).one()
        count = conn.execute(schema.posters.select()).all()
    assert (stored.status, stored.error, stored.attempts) == ("ok", None, 5)
    assert len(count) == 6


def test_a_stop_event_ends_the_run_with_its_work_recorded(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    ids = normal_ids(faulty.catalog, faulty.faulty_ids, 30)
    store_movies(sqlite_store, faulty.catalog, ids)
    settings = poster_settings(tmp_path, max_workers=2)
    stop = threading.Event()

    def stop_after_three_files() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            if len(list(settings.posters_dir.glob("*/*.jpg"))) >= 3:
                stop.set()
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_after_three_files)
    with Sandbox(catalog=faulty.catalog, image_latency_ms=100) as sb:
        watcher.start()
        with pytest.raises(PostersInterrupted) as info:
            download_posters(sqlite_store, settings, image_base_url=sb.image_base_url, stop=stop)
        watcher.join()
    summary = info.value.summary
    assert summary.interrupted and 3 <= summary.ok < len(ids) and summary.failed == 0
    assert len(poster_rows(sqlite_store)) == summary.ok
    assert audit_posters(sqlite_store, settings, show_progress=False).problems == 0


def test_bodies_served_bad_once_all_end_ok_in_one_run(sqlite_store: Store, tmp_path: Path) -> None:
    # A realistic fault mix: ~3 % of posters served once cut short with an honest
    # Content-Length, ~3 % once as an HTML error page labelled image/jpeg, plus a few
    # network faults; every one of them can be had, so every one must end ok.
    catalog = Catalog.synthetic(400, seed=11)
    ids = [i for i in catalog.ids() if catalog.record(i)["poster_path"]]  # type: ignore[index]
    once = {kind: ids[offset::32] for offset, kind in ((3, "truncated_once"), (17, "html_once"))}
    for kind, chosen in once.items():
        for tmdb_id in chosen:
            catalog.set_image_fault(tmdb_id, ImageFault(kind, attempts=1))
    store_movies(sqlite_store, catalog, ids)
    spec = FaultSpec(
        rate=0.03, kinds=("500", "reset", "truncated"), attempts=1, seed=3, targets=("images",)
    )
    settings = poster_settings(tmp_path, max_workers=8)
    with Sandbox(catalog=catalog, faults=spec) as sb:
        summary = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        served_bad = dict(sb.counters.image_faults)
    # Each bad body is served once (less when a network fault took that first request).
    assert all(10 <= served_bad[kind] <= len(chosen) for kind, chosen in once.items())
    assert (summary.ok, summary.rejected, summary.failed) == (len(ids), 0, 0)
    rows = poster_rows(sqlite_store)
    bad_once = [i for chosen in once.values() for i in chosen]
    assert all(rows[i]["status"] == "ok" and rows[i]["attempts"] == 2 for i in bad_once)
    assert summary.retries >= len(bad_once)
    files = check_folder(settings.posters_dir, tmp_path)
    assert len(files) == len({r["sha256"] for r in rows.values()})
    assert open_failures(sqlite_store) == {}


def _age_rows(store: Store, ids: list[int], days: float) -> None:
    when = utcnow() - dt.timedelta(days=days)
    with store.write() as conn:
        conn.execute(
            update(schema.posters)
            .where(schema.posters.c.tmdb_id.in_(ids))
            .values(downloaded_at=when)
        )


def test_the_same_bad_bytes_twice_are_rejected_and_rechecked_days_later(
    sqlite_store: Store, faulty: PosterFaultCatalog, tmp_path: Path
) -> None:
    catalog = faulty.catalog.copy()
    cut, page, changing, bomb = normal_ids(catalog, faulty.faulty_ids, 4)
    # Bad twice with the same bytes: rejected in the run, fine by the run 8 days later.
    catalog.set_image_fault(cut, ImageFault("truncated_once", attempts=2))
    catalog.set_image_fault(page, ImageFault("html_once", attempts=2))
    # Bad on both attempts with different bytes (half a page, then the page): rejected
    # when the retries run out.
    changing_name = catalog.set_image_fault(changing, ImageFault("html_once", attempts=2))
    catalog.set_image_fault(bomb, ImageFault("bomb"))
    ids = store_movies(sqlite_store, catalog, [cut, page, changing, bomb])
    decompression_bomb_png()  # made once per process (1-2 s): not within a download
    spec = FaultSpec(per_path={f"/t/p/w500/{changing_name}": PathFault("malformed", 1)})
    settings = poster_settings(tmp_path, max_retries=1)
    with Sandbox(catalog=catalog, faults=spec) as sb:
        first = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        rows = poster_rows(sqlite_store)
        assert (first.ok, first.rejected, first.failed) == (0, 4, 0)
        assert dict(first.rejected_by_reason) == {
            "truncated": 1, "not_an_image": 2, "decompression_bomb": 1
        }
        assert [rows[i]["attempts"] for i in ids] == [2, 2, 2, 1]
        assert rows[cut]["error"].endswith("the same bytes twice")
        assert rows[changing]["error"].endswith("(after 2 attempts)")
        assert open_failures(sqlite_store) == {}  # rejected, not failed

        # Not again within recheck_rejected_after_days (7 by default).
        _age_rows(sqlite_store, ids, 6)
        soon = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        assert soon.movies == 0
        # 0 turns rechecks off.
        _age_rows(sqlite_store, ids, 30)
        never = poster_settings(tmp_path, max_retries=1, recheck_rejected_after_days=0)
        assert download_posters(sqlite_store, never, image_base_url=sb.image_base_url).movies == 0

        # Later: a transient reason is tried again (and the server is fine by now); a
        # decompression bomb never is.
        before = sb.counters.requests_by_endpoint["images"]
        later = download_posters(sqlite_store, settings, image_base_url=sb.image_base_url)
        requests_made = sb.counters.requests_by_endpoint["images"] - before
    assert (later.movies, later.ok, later.rejected) == (3, 3, 0)
    assert requests_made == 3
    rows = poster_rows(sqlite_store)
    assert [rows[i]["status"] for i in ids] == ["ok", "ok", "ok", "rejected"]
    assert [rows[i]["attempts"] for i in ids] == [3, 3, 3, 1]
    assert rows[bomb]["error"].startswith("decompression_bomb:")


def test_rejected_rows_due_for_a_recheck_on_each_backend(store: Store) -> None:
    store.movies.upsert(
        [MovieRecord(tmdb_id=i, title=f"m{i}", poster_path=f"/p{i}.jpg") for i in range(1, 8)]
    )
    old, recent = utcnow() - dt.timedelta(days=10), utcnow()
    rejected = {
        1: ("truncated: image file is truncated", old),
        2: ("not_an_image: an HTML page, not an image", old),
        3: ("corrupt: broken data stream", old),
        4: ("truncated: image file is truncated", recent),
        5: ("decompression_bomb: 30000x30000", old),
        6: ("notXanXimage: not one of ours (LIKE's _ must be literal)", old),
        7: ("invalid_path: poster_path is a relative path", None),
    }
    upsert_poster_rows(
        store,
        [
            PosterRow(i, "rejected", poster_path=f"/p{i}.jpg", error=e, attempts=2,
                      downloaded_at=at)
            for i, (e, at) in rejected.items()
        ],
    )
    recheck = Recheck(RETRYABLE_REJECTIONS, utcnow() - dt.timedelta(days=7))
    assert [t.tmdb_id for t in iter_poster_targets(store, recheck=recheck)] == [1, 2, 3]
    assert count_poster_targets(store, recheck=recheck) == 3
    assert count_poster_targets(store, [1, 4, 5], recheck=recheck) == 1
    assert count_poster_targets(store) == 0
    assert count_poster_targets(store, retry_rejected=True, recheck=recheck) == 7
    settings = settings_from_dict({"posters": {"recheck_rejected_after_days": 7}})
    due = rejected_recheck(settings)
    assert due is not None and due.reasons == RETRYABLE_REJECTIONS
    assert [t.tmdb_id for t in iter_poster_targets(store, recheck=due)] == [1, 2, 3]
    off = settings_from_dict({"posters": {"recheck_rejected_after_days": 0}})
    assert rejected_recheck(off) is None
