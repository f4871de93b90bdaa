"""Posters in object storage: ``[storage] posters_dir = "s3://bucket/prefix"`` against a
real S3 API (moto's server on loopback, see :mod:`tests.object_store`) through s3fs."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reelset.cli import main
from reelset.config import Settings, settings_from_dict
from reelset.errors import ConfigError, ReelsetError
from reelset.posters.audit import audit_posters
from reelset.posters.download import download_posters
from reelset.posters.filestore import ObjectPosterFiles, PosterFiles, PosterStore
from reelset.sandbox import Catalog, PosterFaultCatalog, Sandbox, poster_fault_catalog
from reelset.storage import MovieRecord, Store
from tests.cli_env import write_config
from tests.object_store import DUMMY_SECRET, S3Server
from tests.posters.support import normal_ids, open_failures, poster_rows, store_movies

PREFIX = "posters"


@pytest.fixture(scope="module")
def faulty() -> PosterFaultCatalog:
    return poster_fault_catalog(Catalog.bundled(), per_kind=1)


def s3_settings(endpoint: str, bucket: str, tmp_path: Path, **posters: Any) -> Settings:
    """Settings whose posters live in ``s3://bucket/posters`` on ``endpoint``."""
    section: dict[str, Any] = {
        "rate_limit": "1000/1s",
        "max_workers": 4,
        "timeout_s": 2.0,
        "max_retries": 2,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        **posters,
    }
    storage = {
        "url": f"sqlite:///{tmp_path / 'store' / 'reelset.db'}",
        "posters_dir": f"s3://{bucket}/{PREFIX}",
        # No botocore retries: a dead server fails each request at once.
        "storage_options": {
            "endpoint_url": endpoint,
            "config_kwargs": {"retries": {"max_attempts": 0}},
        },
    }
    return settings_from_dict({"storage": storage, "posters": section}, base_dir=tmp_path)


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    """Every object under the prefix: ``{relative key: bytes}``."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"].removeprefix(PREFIX + "/")] = body
    return found


def check_consistent(store: Store, found: dict[str, bytes]) -> None:
    """Every ``ok`` row's object exists with the row's SHA-256, every object is referenced
    and holds the bytes its name says (no partial object under a final key)."""
    referenced = set()
    for row in poster_rows(store).values():
        if row["status"] != "ok":
            assert row["file_path"] is None
            continue
        rel = row["file_path"]
        assert (
            hashlib.sha256(found[rel]).hexdigest() == row["sha256"]
            and len(found[rel]) == row["bytes"]
        )
        referenced.add(rel)
        if row["resized_file_path"]:
            referenced.add(row["resized_file_path"])
            assert found[row["resized_file_path"]][:3] == b"\xff\xd8\xff"  # a JPEG
    assert set(found) == referenced
    for rel, data in found.items():
        if ".r" not in rel:
            assert rel.split("/")[1].split(".")[0] == hashlib.sha256(data).hexdigest()


class PutCounter:
    """Counts the PutObject calls of the process's one s3fs instance (botocore events)."""

    def __init__(self, files: ObjectPosterFiles) -> None:
        self.count = 0
        self._lock = threading.Lock()
        files.fs.connect()
        files.fs.s3.meta.events.register("before-call.s3.PutObject", self._seen)

    def _seen(self, **_kwargs: Any) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture
def world(
    sqlite_store: Store,
    faulty: PosterFaultCatalog,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> Iterator[tuple[Store, Settings, Sandbox, list[int]]]:
    """Ordinary posters plus a duplicate group, in a fresh bucket; nothing downloaded yet."""
    catalog = faulty.catalog.copy()
    ids = normal_ids(catalog, faulty.faulty_ids, 6) + faulty.ids_by_kind["duplicate"]
    store_movies(sqlite_store, catalog, ids)
    settings = s3_settings(s3_server.endpoint, s3_bucket, tmp_path, resize_max_side=64)
    with Sandbox(catalog=catalog) as sb:
        yield sqlite_store, settings, sb, ids


def test_config_takes_urls_and_refuses_credentials(tmp_path: Path) -> None:
    s = settings_from_dict({"storage": {"posters_dir": "s3://bucket/some/prefix/"}})
    assert s.posters_url == "s3://bucket/some/prefix" == s.posters_location
    with pytest.raises(ConfigError, match="object storage"):
        _ = s.posters_dir  # callers that need a local folder get one line, not a bad Path
    local = settings_from_dict({"storage": {"posters_dir": f"file://{tmp_path}/p"}})
    assert local.posters_url is None and local.posters_dir == tmp_path / "p"
    assert isinstance(PosterStore.for_settings(local), PosterFiles)
    plain = settings_from_dict({"storage": {"posters_dir": "p"}}, base_dir=tmp_path)
    assert plain.posters_dir == tmp_path / "p" and plain.posters_url is None

    refused = [
        ({"posters_dir": f"s3://AKIAX:{DUMMY_SECRET}@bucket/p"}, "must not embed credentials"),
        ({"posters_dir": f"s3://bucket/p?secret={DUMMY_SECRET}"}, "query"),
        ({"posters_dir": "nosuchfs://bucket/p"}, "no fsspec backend"),
        ({"posters_dir": "s3:///p"}, "name a bucket"),
        ({"posters_dir": "p", "storage_options": {"endpoint_url": "http://x"}}, "object-storage"),
    ]
    for key in ("key", "secret", "token", "password", "aws_secret_access_key", "session_token"):
        refused.append(
            ({"posters_dir": "s3://b/p", "storage_options": {key: DUMMY_SECRET}}, "AWS_SECRET")
        )
    refused.append(
        (
            {
                "posters_dir": "s3://b/p",
                "storage_options": {"client_kwargs": {"aws_access_key_id": "AKIAX"}},
            },
            "looks like a secret",
        )
    )
    refused.append(
        (
            {
                "posters_dir": "s3://b/p",
                "storage_options": {"endpoint_url": f"http://u:{DUMMY_SECRET}@host:9000"},
            },
            "credentials",
        )
    )
    for storage, message in refused:
        with pytest.raises(ConfigError, match=message) as info:
            settings_from_dict({"storage": storage})
        text = str(info.value)
        assert DUMMY_SECRET not in text and "\n" not in text and text.startswith("<defaults>: ")


def test_a_run_stores_every_poster_once_in_the_bucket(
    world: tuple[Store, Settings, Sandbox, list[int]], s3_server: S3Server, s3_bucket: str
) -> None:
    store, settings, sb, ids = world
    files = PosterStore.for_settings(settings)
    assert isinstance(files, ObjectPosterFiles)
    same = PosterStore.for_settings(settings)
    assert isinstance(same, ObjectPosterFiles) and same.fs is files.fs  # one per process
    puts = PutCounter(files)

    summary = download_posters(
        store, settings, image_base_url=sb.image_base_url, show_progress=False
    )
    assert summary.ok == len(ids) and summary.failed == 0
    found = objects(s3_server.client(), s3_bucket)
    check_consistent(store, found)
    shas = {r["sha256"] for r in poster_rows(store).values()}
    assert len(shas) < len(ids)  # the duplicate group shares one object
    assert len(found) == 2 * len(shas) == puts.count  # originals and copies, each put once
    assert summary.new_files == len(shas) and summary.shared == len(ids) - len(shas)

    # Downloaded again: every object is there already, nothing is uploaded.
    again = download_posters(
        store,
        settings,
        image_base_url=sb.image_base_url,
        tmdb_ids=ids,
        force=True,
        show_progress=False,
    )
    assert again.ok == len(ids) and again.new_files == 0 and puts.count == len(found)
    assert objects(s3_server.client(), s3_bucket) == found
    report = audit_posters(store, settings, show_progress=False)
    assert report.problems == 0 and report.files_ok == len(found)


def test_verify_finds_and_repairs_a_deleted_a_corrupt_and_an_orphan_object(
    world: tuple[Store, Settings, Sandbox, list[int]], s3_server: S3Server, s3_bucket: str
) -> None:
    store, settings, sb, ids = world
    assert download_posters(
        store, settings, image_base_url=sb.image_base_url, show_progress=False
    ).ok == len(ids)
    client = s3_server.client()
    good = objects(client, s3_bucket)
    rows = poster_rows(store)
    deleted, corrupt = rows[ids[0]]["file_path"], rows[ids[1]]["file_path"]
    copy = rows[ids[2]]["resized_file_path"]
    flipped = bytearray(good[corrupt])
    flipped[len(flipped) // 2] ^= 0x55  # same size: only the hash can tell
    client.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{deleted}")
    client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{corrupt}", Body=bytes(flipped))
    client.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{copy}")
    orphan = b"referenced by no row"
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    orphan_rel = f"{orphan_sha[:2]}/{orphan_sha}.jpg"
    client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{orphan_rel}", Body=orphan)
    client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/notes.txt", Body=b"the user's own")

    report = audit_posters(store, settings, show_progress=False)
    assert report.missing == [deleted] and report.corrupt == [corrupt]
    assert report.resized_missing == [copy] and report.orphans == [orphan_rel]
    assert report.unknown == ["notes.txt"] and report.stale_temp == []
    assert report.problems == 4

    served = sb.counters.images_served
    repaired = audit_posters(
        store, settings, repair=True, image_base_url=sb.image_base_url, show_progress=False
    )
    assert repaired.problems == 0
    assert repaired.removed_orphans == repaired.removed_corrupt == repaired.resized_remade == 1
    assert sb.counters.images_served - served == 2  # the copy was remade from its original
    after = objects(client, s3_bucket)
    assert after.pop("notes.txt") == b"the user's own"  # not ours: never touched
    assert after == good
    check_consistent(store, after)
    final = audit_posters(store, settings, show_progress=False)
    assert final.problems == 0 and final.unknown == ["notes.txt"]  # reported, not a problem


def test_a_server_that_stops_mid_run_loses_nothing(
    sqlite_store: Store,
    faulty: PosterFaultCatalog,
    s3_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from moto.server import ThreadedMotoServer

    # In-process so that the bucket outlives a stop and start, like a restarted service.
    port = S3Server().port
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        bucket = "reelset-restart"
        S3Server.client_for(endpoint).create_bucket(Bucket=bucket)
        catalog = faulty.catalog.copy()
        ids = normal_ids(catalog, faulty.faulty_ids, 12)
        store_movies(sqlite_store, catalog, ids)
        # Slow downloads, so that the server stops while posters are still to come.
        settings = s3_settings(endpoint, bucket, tmp_path, rate_limit="6/1s", max_workers=2)
        with Sandbox(catalog=catalog) as sb:

            def stop_after_three() -> None:
                deadline = time.monotonic() + 30
                while sb.counters.images_served < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                server.stop()

            stopper = threading.Thread(target=stop_after_three)
            stopper.start()
            with caplog.at_level(logging.WARNING):
                first = download_posters(
                    sqlite_store, settings, image_base_url=sb.image_base_url, show_progress=False
                )
            stopper.join()
            assert first.failed > 0 and first.failed_by_reason.keys() == {"write_error"}
            assert first.ok + first.failed == len(ids)
            failures = open_failures(sqlite_store)
            assert len(failures) == first.failed
            assert all("\n" not in r.getMessage() for r in caplog.records)

            # While it is down, a new run stops at once with one line.
            config = write_config(
                tmp_path / "config.toml",
                {
                    "storage": settings.storage.model_dump(),
                    "tmdb": {"image_base_url": sb.image_base_url},
                    "posters": {"rate_limit": "1000/1s"},
                },
            )
            capsys.readouterr()
            assert main(["--config", str(config), "posters"]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            where = f"s3://{bucket}/{PREFIX}"
            assert len(err) == 1, err  # one line, no traceback
            assert err[0].startswith(
                f"reelset: error: cannot use the posters folder {where}: cannot reach"
            )

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            client = S3Server.client_for(endpoint)
            check_consistent_partial(sqlite_store, objects(client, bucket))
            second = download_posters(
                sqlite_store, settings, image_base_url=sb.image_base_url, show_progress=False
            )
            assert second.ok == first.failed and second.failed == 0
            check_consistent(sqlite_store, objects(client, bucket))
            assert open_failures(sqlite_store) == {}
            assert audit_posters(sqlite_store, settings, show_progress=False).problems == 0
    finally:
        server.stop()


def check_consistent_partial(store: Store, found: dict[str, bytes]) -> None:
    """After a failed run: every ``ok`` row's object is right; objects the run uploaded
    before its row was recorded are whole (named by their content)."""
    for row in poster_rows(store).values():
        if row["status"] == "ok":
            assert hashlib.sha256(found[row["file_path"]]).hexdigest() == row["sha256"]
    for rel, data in found.items():
        assert rel.split("/")[1].split(".")[0] == hashlib.sha256(data).hexdigest()


def test_secrets_never_reach_logs_the_store_or_output(
    world: tuple[Store, Settings, Sandbox, list[int]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, settings, sb, ids = world
    config = write_config(
        tmp_path / "config.toml",
        {
            "storage": settings.storage.model_dump(),
            "tmdb": {"image_base_url": sb.image_base_url},
            "posters": {"rate_limit": "1000/1s", "max_workers": 4},
        },
    )
    with caplog.at_level(logging.DEBUG):
        assert main(["--config", str(config), "posters", "--json"]) == 0
        assert main(["--config", str(config), "posters", "verify", "--repair", "--json"]) == 0
    out = capsys.readouterr()
    assert len(poster_rows(store)) == len(ids)
    assert DUMMY_SECRET not in out.out + out.err + caplog.text
    store_bytes = b"".join(p.read_bytes() for p in (tmp_path / "store").iterdir())
    assert DUMMY_SECRET.encode() not in store_bytes


def test_a_missing_bucket_is_one_line(
    sqlite_store: Store, s3_server: S3Server, s3_env: None, tmp_path: Path
) -> None:
    settings = s3_settings(s3_server.endpoint, "reelset-no-such-bucket", tmp_path)
    sqlite_store.movies.upsert([MovieRecord(tmdb_id=1, title="x", poster_path="/x.jpg")])
    with pytest.raises(ReelsetError, match=r"no such bucket: reelset-no-such-bucket$"):
        download_posters(sqlite_store, settings, image_base_url="http://127.0.0.1:9/")
    assert poster_rows(sqlite_store) == {}


def test_deletes_stay_under_the_root(tmp_path: Path, s3_bucket: str, s3_server: S3Server) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"precious")
    local = PosterFiles(tmp_path / "posters")
    remote = PosterStore.for_settings(s3_settings(s3_server.endpoint, s3_bucket, tmp_path))
    s3_server.client().put_object(Bucket=s3_bucket, Key="outside.jpg", Body=b"precious")
    for files in (local, remote):
        for bad in ("../outside.jpg", "/outside.jpg", "a/../../outside.jpg", ""):
            with pytest.raises(ValueError):
                files.delete(bad)
        with pytest.raises(ValueError):
            files.put("../outside.jpg", b"x")
    assert outside.read_bytes() == b"precious"
    assert s3_server.client().get_object(Bucket=s3_bucket, Key="outside.jpg")["Body"].read()
