"""Dataset versions in object storage: build to ``s3://`` (a moto server), read them back.

The S3 endpoint reaches the CLI through ``AWS_ENDPOINT_URL`` (the backend's standard
environment) and the Python readers through ``storage_options``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reelset.cli import main
from reelset.config import Settings, settings_from_dict
from reelset.dataset import load, load_examples, load_labels
from reelset.dataset.build import build_dataset
from reelset.dataset.remote import RemotePath, lock_name
from reelset.dataset.versions import MANIFEST_FILE, latest, read_manifest, versions
from reelset.errors import StoreError, UsageError
from reelset.storage import Store
from tests.dataset.conftest import FIXED_NOW, Crafted, poster_row, random_movies
from tests.object_store import DUMMY_KEY_ID, DUMMY_SECRET, S3Server


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The bucket's datasets URL, the endpoint in the environment, and storage_options."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return {
        "url": f"s3://{s3_bucket}/datasets",
        "bucket": s3_bucket,
        "options": {"endpoint_url": s3_server.endpoint},
        "server": s3_server,
    }


@pytest.fixture
def filled(crafted: Crafted) -> Crafted:
    crafted.add(random_movies(120, seed=5))
    crafted.posters(poster_row(i) for i in range(1, 90))
    return crafted


def settings(crafted: Crafted, output_dir: str, **build: Any) -> Settings:
    """The crafted store's build settings with ``output_dir`` as given (a URL too)."""
    return settings_from_dict(
        {
            "storage": {"url": crafted.url, "posters_dir": str(crafted.posters_dir)},
            "build": {"output_dir": output_dir, "min_genre_count": 1, **build},
        },
        base_dir=crafted.tmp_path,
    )


def config(crafted: Crafted, output_dir: str, images: str = "embed") -> Path:
    """A config.toml with the version written to ``output_dir`` (a URL here)."""
    return crafted.config_file(images, output_dir)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def objects(s3: dict[str, Any]) -> dict[str, bytes]:
    """Every object in the bucket: key -> bytes."""
    client = s3["server"].client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"]):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=s3["bucket"], Key=item["Key"])[
                "Body"
            ].read()
    return found


def root_of(s3: dict[str, Any], name: str = "genres") -> RemotePath:
    return RemotePath.from_url(f"{s3['url']}/{name}", s3["options"])


def test_build_to_s3_is_the_local_build_byte_for_byte(filled: Crafted, s3: dict[str, Any]) -> None:
    remote = build_dataset(settings(filled, s3["url"]), now=FIXED_NOW)
    local = build_dataset(settings(filled, str(filled.tmp_path / "out")), now=FIXED_NOW)
    assert remote.status == local.status == "built" and remote.version == "v0001"
    assert str(remote.path) == f"{s3['url']}/genres/v0001"
    stored = objects(s3)
    prefix = "datasets/genres/v0001/"
    assert local.path is not None
    local_files = {
        p.relative_to(local.path).as_posix(): p.read_bytes()
        for p in Path(str(local.path)).rglob("*") if p.is_file()
    }
    uploaded = {k[len(prefix):]: v for k, v in stored.items() if k.startswith(prefix)}
    manifests = [json.loads(files.pop(MANIFEST_FILE)) for files in (uploaded, local_files)]
    assert uploaded == local_files
    assert manifests[0] == manifests[1]  # the store's bookkeeping rows are not counted
    assert stored["datasets/genres/LATEST"] == b"v0001\n"
    assert set(stored) == {f"{prefix}{rel}" for rel in [*local_files, MANIFEST_FILE]} | {
        "datasets/genres/LATEST"
    }
    # Unchanged store and config: nothing is uploaded.
    again = build_dataset(settings(filled, s3["url"]), now=FIXED_NOW)
    assert again.status == "unchanged" and again.version == "v0001"
    assert objects(s3) == stored


def test_cli_builds_lists_shows_and_diffs_an_s3_dataset(
    filled: Crafted, s3: dict[str, Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REELSET_CONFIG", str(config(filled, s3["url"])))
    code, out, err = run(capsys, "build", "--json")
    assert code == 0, err
    assert json.loads(out)["path"] == f"{s3['url']}/genres/v0001"
    filled.add(random_movies(30, seed=6, start_id=500))
    code, out, _ = run(capsys, "build", "--json")
    assert code == 0 and json.loads(out)["version"] == "v0002"
    code, out, _ = run(capsys, "build")
    assert code == 0 and "unchanged (still v0002)" in out

    code, out, _ = run(capsys, "datasets", "list", "--json")
    [found] = json.loads(out)["datasets"]
    assert code == 0 and found["versions"] == ["v0001", "v0002"] and found["latest"] == "v0002"
    code, out, _ = run(capsys, "datasets", "show", "genres@v1", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["rows"]["total"] == 120
    assert shown["path"] == f"{s3['url']}/genres/v0001"
    code, out, _ = run(capsys, "datasets", "diff", "genres@v1", "genres@v2", "--json")
    assert code == 0 and json.loads(out)["added"] == 30 and json.loads(out)["split_moves"] == 0

    # No credential in any object or any output.
    blobs = [*objects(s3).values(), out.encode()]
    for secret in (DUMMY_SECRET, DUMMY_KEY_ID):
        assert not any(secret.encode() in blob for blob in blobs)


def test_runs_in_the_store_hold_no_credential(
    filled: Crafted, s3: dict[str, Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REELSET_CONFIG", str(config(filled, s3["url"])))
    caplog.set_level("DEBUG")  # every logger, the S3 client's too
    code, out, err = run(capsys, "-vv", "build", "--json")
    assert code == 0, err
    with Store(filled.url) as store, store.read() as conn:
        rows = conn.execute(text("SELECT * FROM scrape_runs")).all()
    assert rows and "build" in repr(rows)
    assert DUMMY_SECRET not in repr(rows) + caplog.text + out + err
    # botocore's own DEBUG records name the key id in the signed headers; reelset's output
    # and records never do.
    assert "v0001" in out and DUMMY_KEY_ID not in repr(rows) + out + err


def test_readers_load_an_s3_version(filled: Crafted, s3: dict[str, Any],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    build_dataset(settings(filled, s3["url"]), now=FIXED_NOW)
    local = build_dataset(settings(filled, str(filled.tmp_path / "out")), now=FIXED_NOW)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the readers get it from storage_options
    options = s3["options"]
    by_path = load(path=f"{s3['url']}/genres/v0001", split="test", storage_options=options)
    by_name = load("genres", split="test", output_dir=s3["url"], storage_options=options)
    expected = load(path=str(local.path), split="test")
    assert by_path.drop(columns="image").equals(expected.drop(columns="image"))
    assert by_name["image"].tolist() == expected["image"].tolist()
    assert load_labels("genres", output_dir=s3["url"], storage_options=options) == (
        load_labels(path=str(local.path))
    )

    examples = load_examples("genres", split="train", output_dir=s3["url"],
                             storage_options=options, image_size=16)
    local_examples = load_examples(path=str(local.path), split="train", image_size=16)
    assert len(examples) == len(local_examples) > 0
    with_image = next(i for i in range(len(examples)) if examples[i]["image"] is not None)
    assert examples[with_image]["image"].tobytes() == (
        local_examples[with_image]["image"].tobytes()
    )
    assert examples.label_names == local_examples.label_names


def test_hugging_face_datasets_reads_an_s3_version(filled: Crafted, s3: dict[str, Any]) -> None:
    datasets = pytest.importorskip("datasets")
    build_dataset(settings(filled, s3["url"]), now=FIXED_NOW)
    folder = f"{s3['url']}/genres/v0001"
    manifest = read_manifest(RemotePath.from_url(folder, s3["options"]))
    data_files = {split: [f"{folder}/{rel}" for rel in files]
                  for split, files in manifest["data_files"].items()}
    loaded = datasets.load_dataset("parquet", data_files=data_files,
                                   storage_options=s3["options"])
    assert {split: loaded[split].num_rows for split in loaded} == {
        split: manifest["rows"][split] for split in data_files
    }


def test_webdataset_tars_are_read_by_range_from_s3(filled: Crafted, s3: dict[str, Any]) -> None:
    build_dataset(settings(filled, s3["url"], images="webdataset", image_max_side=16),
                  now=FIXED_NOW)
    local = build_dataset(
        settings(filled, str(filled.tmp_path / "out"), images="webdataset", image_max_side=16),
        now=FIXED_NOW,
    )
    remote = load_examples(path=f"{s3['url']}/genres/v0001", split="validation",
                           storage_options=s3["options"])
    here = load_examples(path=str(local.path), split="validation")
    assert [remote.image_bytes(i) for i in range(len(remote))] == (
        [here.image_bytes(i) for i in range(len(here))]
    )
    assert any(remote.image_bytes(i) for i in range(len(remote)))


_KILLED_UPLOAD = """
import os, signal, sys
import s3fs
from reelset.cli import main

uploads = []
original = s3fs.S3FileSystem._put_file

async def put_file(self, lpath, rpath, *args, **kwargs):
    if len(uploads) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    uploads.append(rpath)
    return await original(self, lpath, rpath, *args, **kwargs)

s3fs.S3FileSystem._put_file = put_file
sys.exit(main(["build"]))
"""


def test_a_build_killed_mid_upload_leaves_nothing_a_reader_picks_up(
    filled: Crafted, s3: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**os.environ, "REELSET_CONFIG": str(config(filled, s3["url"]))}
    proc = subprocess.run([sys.executable, "-c", _KILLED_UPLOAD, "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    left = objects(s3)
    assert left and all(key.startswith("datasets/genres/v0001/") for key in left)
    assert not any(key.endswith(MANIFEST_FILE) for key in left)
    root = root_of(s3)
    assert versions(root) == [] and latest(root) is None
    with pytest.raises(UsageError, match="no complete version"):
        load("genres", output_dir=s3["url"], storage_options=s3["options"])
    os.environ["REELSET_CONFIG"] = env["REELSET_CONFIG"]
    try:
        code, out, _ = run(capsys, "datasets", "list")
        assert code == 0 and "no datasets built yet" in out
        # The next build (the killed one's lock is taken over) cleans up and publishes.
        code, out, err = run(capsys, "build", "--json")
    finally:
        del os.environ["REELSET_CONFIG"]
    assert code == 0 and json.loads(out)["version"] == "v0001", err
    manifest = read_manifest(root / "v0001")
    keys = {k for k in objects(s3) if k.startswith("datasets/genres/v0001/")}
    assert keys == {f"datasets/genres/v0001/{rel}" for rel in manifest["files"]} | {
        f"datasets/genres/v0001/{MANIFEST_FILE}"
    }


_SLOW_UPLOAD = """
import sys, time
import s3fs
from reelset.cli import main

original = s3fs.S3FileSystem._put_file

async def put_file(self, *args, **kwargs):
    time.sleep(0.05)
    return await original(self, *args, **kwargs)

s3fs.S3FileSystem._put_file = put_file
sys.exit(main(["build"]))
"""


def test_a_polling_reader_never_sees_half_a_version(
    filled: Crafted, s3: dict[str, Any]
) -> None:
    env = {**os.environ, "REELSET_CONFIG": str(config(filled, s3["url"]))}
    root = root_of(s3)
    seen: list[tuple[list[str], str | None]] = []
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_UPLOAD], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        done = proc.poll() is not None
        # LATEST first: it moves after the manifest is uploaded, so what it names is listed.
        pointer = latest(root)
        found = versions(root)
        seen.append((found, pointer))
        for version in found:
            manifest = read_manifest(root / version)
            for rel, digest in manifest["files"].items():
                info = root.fs.info(f"{root.path}/{version}/{rel}")
                assert info["size"] == digest["bytes"], rel
        if pointer is not None:
            assert pointer in found
        if done:
            break
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen[0] == ([], None) or seen[0] == (["v0001"], "v0001")
    assert seen[-1] == (["v0001"], "v0001")


_HOLD_LOCK = """
import sys
from reelset.storage import Store
store = Store(sys.argv[1])
store.locks.acquire(sys.argv[2])
print("held", flush=True)
sys.stdin.read()
store.locks.release(sys.argv[2])
"""


def test_a_second_build_to_the_same_url_gets_exit_3(
    filled: Crafted, s3: dict[str, Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REELSET_CONFIG", str(config(filled, s3["url"])))
    # Another live process holds the dataset URL's build lock, as a running build does.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, filled.url, lock_name(root_of(s3))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, _, err = run(capsys, "build")
        assert code == 3 and err.count("\n") == 1
        assert "another build of dataset 'genres'" in err and s3["url"] in err
        assert objects(s3) == {}
    finally:
        holder.communicate("", timeout=60)
    assert run(capsys, "build")[0] == 0


def test_bad_object_storage_input_is_one_line_exit_2(
    filled: Crafted, s3: dict[str, Any], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3["bucket"]
    for output_dir, images, wanted in (
        (f"s3://user:{DUMMY_SECRET}@{bucket}/d", "embed", "must not embed credentials"),
        (f"s3://{bucket}/d?x=1", "embed", "query"),
        (s3["url"], "reference", 'images = "reference" needs a local output_dir'),
    ):
        monkeypatch.setenv("REELSET_CONFIG", str(config(filled, output_dir, images)))
        code, _, err = run(capsys, "build")
        assert code == 2 and err.count("\n") == 1 and wanted in err, err
        assert DUMMY_SECRET not in err
    with pytest.raises(UsageError, match="must not embed credentials"):
        load(path=f"s3://k:{DUMMY_SECRET}@{bucket}/datasets/genres/v0001")
    with pytest.raises(UsageError, match="not a dataset version folder"):
        load(path=f"{s3['url']}/genres/v0009", storage_options=s3["options"])


def test_a_file_url_is_a_local_folder(filled: Crafted, tmp_path: Path) -> None:
    """``file://`` output folders are plain local folders (the local protocol)."""
    result = build_dataset(settings(filled, f"file://{tmp_path / 'viaurl'}"), now=FIXED_NOW)
    assert result.path == tmp_path / "viaurl" / "genres" / "v0001"
    assert (tmp_path / "viaurl" / "genres" / ".lock").exists()


def test_a_build_reads_posters_from_object_storage(
    filled: Crafted, s3: dict[str, Any]
) -> None:
    client = s3["server"].client()
    for path in sorted(filled.posters_dir.rglob("*.jpg")):
        key = f"posters/{path.relative_to(filled.posters_dir).as_posix()}"
        client.put_object(Bucket=s3["bucket"], Key=key, Body=path.read_bytes())

    def remote(**build: Any) -> Settings:
        return settings_from_dict(
            {
                "storage": {
                    "url": filled.url,
                    "posters_dir": f"s3://{s3['bucket']}/posters",
                    "storage_options": {"endpoint_url": s3["server"].endpoint},
                },
                "build": {"min_genre_count": 1, **build},
            },
            base_dir=filled.tmp_path,
        )

    local = build_dataset(settings(filled, str(filled.tmp_path / "local")), now=FIXED_NOW)
    built = build_dataset(remote(output_dir=str(filled.tmp_path / "remote")), now=FIXED_NOW)
    assert built.fingerprint == local.fingerprint
    assert local.path is not None and built.path is not None
    for split in ("train", "validation", "test"):
        mine = load(path=built.path, split=split)["image"].tolist()
        theirs = load(path=local.path, split=split)["image"].tolist()
        assert mine == theirs and any(image is not None for image in mine)
    # Resized in worker processes, which open the object store themselves.
    resized = build_dataset(
        remote(output_dir=str(filled.tmp_path / "resized"), image_max_side=32), now=FIXED_NOW
    )
    assert resized.path is not None
    assert all(len(i["bytes"]) > 0 for i in load(path=resized.path)["image"] if i is not None)

    with pytest.raises(UsageError, match="needs a local"):
        build_dataset(remote(output_dir=str(filled.tmp_path / "ref"), images="reference"))
    gone = client.list_objects_v2(Bucket=s3["bucket"], Prefix="posters/")["Contents"][0]["Key"]
    client.delete_object(Bucket=s3["bucket"], Key=gone)
    with pytest.raises(StoreError, match=r"1 missing poster file\(s\) under s3://"):
        build_dataset(remote(output_dir=str(filled.tmp_path / "broken")), now=FIXED_NOW)
    assert not (filled.tmp_path / "broken" / "genres" / "v0001").exists()
