"""``reelset imdb download`` against a local HTTP server: Range resume, retries, checks.

The server (below) serves fixture files with ``Range``/``If-Range``/``If-Modified-Since``
support and can cut a response short, ignore ``Range``, or answer with an error, to
simulate what real downloads meet.
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import hashlib
import json
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reelset.cli import main
from reelset.imdb.download import DatasetDownloadError, download_datasets
from tests.transport.scripted_server import QuietHandler, serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imdb"
MTIME = 1_700_000_000.0


@functools.cache
def dataset(name: str, rows: int = 6000, seed: int = 1) -> bytes:
    """A gzip of a fixture file's rows plus random ones: ~200 KB, several read chunks."""
    header, _, body = (FIXTURES / name).read_bytes().partition(b"\n")
    rng = random.Random(seed)
    width = header.count(b"\t") + 1
    extra = "".join(
        "\t".join([f"tt{9_100_000 + i}", *(rng.randbytes(6).hex() for _ in range(width - 1))])
        + "\n"
        for i in range(rows)
    )
    return gzip.compress(header + b"\n" + body + extra.encode(), mtime=0)


@dataclass
class Behaviour:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: list[int] = field(default_factory=list)  # per response, bytes then close
    fail_with: list[int] = field(default_factory=list)  # per request, an error status
    retry_after: str | None = None  # sent with those errors
    ignore_range: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)


class Handler(QuietHandler):
    behaviour: Behaviour

    def do_GET(self) -> None:
        b = self.behaviour
        name = self.path.rsplit("/", 1)[-1]
        b.requests.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        if b.fail_with:
            self._empty(b.fail_with.pop(0), b.retry_after)
            return
        data = b.files.get(name)
        if data is None:
            self._empty(404)
            return
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        modified = email.utils.formatdate(MTIME, usegmt=True)
        since = self.headers.get("If-Modified-Since")
        if since and email.utils.parsedate_to_datetime(since).timestamp() >= MTIME:
            self._empty(304)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and not b.ignore_range and (if_range is None or if_range in (etag, modified)):
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if b.cut_after:
            self.wfile.write(body[: b.cut_after.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _empty(self, status: int, retry_after: str | None = None) -> None:
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour(
        files={
            "title.basics.tsv.gz": dataset("title.basics.tsv"),
            "title.ratings.tsv.gz": dataset("title.ratings.tsv"),
            "title.crew.tsv.gz": dataset("cinemagoer/title.crew.tsv"),
        }
    )
    with serving(type("BoundHandler", (Handler,), {"behaviour": behaviour})) as url:
        yield f"{url}/datasets", behaviour


def fetch(url: str, folder: Path, names: list[str] | None = None, retries: int = 3) -> list:
    return download_datasets(
        url,
        names or ["title.basics.tsv.gz"],
        folder,
        timeout_s=5,
        max_retries=retries,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )


def ranges(b: Behaviour) -> list[str | None]:
    return [r.get("Range") for r in b.requests]


def test_fresh_download_is_verified_and_dated(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    [basics, ratings] = fetch(url, tmp_path, ["title.basics.tsv.gz", "title.ratings.tsv.gz"])
    assert (basics.status, ratings.status) == ("downloaded", "downloaded")
    assert basics.path.read_bytes() == b.files["title.basics.tsv.gz"]
    assert ratings.size == len(b.files["title.ratings.tsv.gz"])
    assert basics.path.stat().st_mtime == MTIME
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "title.basics.tsv.gz",
        "title.ratings.tsv.gz",
    ]
    # Nothing new on the server: a conditional request, no body.
    [again] = fetch(url, tmp_path)
    assert again.status == "unchanged" and again.bytes_received == 0
    assert "If-Modified-Since" in b.requests[-1]


def test_cut_response_is_resumed_with_range(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    data = b.files["title.basics.tsv.gz"]
    b.cut_after = [100_000]  # a cut connection keeps what arrived in whole read chunks
    [result] = fetch(url, tmp_path)
    assert result.status == "resumed" and result.attempts == 2
    assert ranges(b) == [None, "bytes=65536-"]
    assert b.requests[1]["If-Range"].startswith('"')  # the ETag of the first response
    assert result.path.read_bytes() == data
    assert result.bytes_received == len(data)
    assert not (tmp_path / "title.basics.tsv.gz.part").exists()


@pytest.mark.parametrize(("ignore_range", "status"), [(False, "resumed"), (True, "downloaded")])
def test_a_part_from_an_earlier_run_is_resumed_unless_the_server_ignores_range(
    server: tuple[str, Behaviour], tmp_path: Path, ignore_range: bool, status: str
) -> None:
    url, b = server
    data = b.files["title.basics.tsv.gz"]
    (tmp_path / "title.basics.tsv.gz.part").write_bytes(data[:777])
    b.ignore_range = ignore_range
    [result] = fetch(url, tmp_path)
    assert ranges(b) == ["bytes=777-"]
    assert result.status == status and result.path.read_bytes() == data
    assert result.bytes_received == len(data) - (0 if ignore_range else 777)


def test_changed_file_on_server_restarts_through_if_range(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    old = b.files["title.basics.tsv.gz"]
    b.cut_after = [70_000]
    with pytest.raises(DatasetDownloadError, match="rerun to resume"):
        fetch(url, tmp_path, retries=0)
    assert (tmp_path / "title.basics.tsv.gz.part").stat().st_size == 65536
    new = dataset("title.basics.tsv", seed=2)
    assert new != old
    b.files["title.basics.tsv.gz"] = new
    [result] = fetch(url, tmp_path)
    assert ranges(b)[-1] == "bytes=65536-"  # asked to resume, but If-Range no longer matched
    assert result.path.read_bytes() == new


def test_416_for_a_complete_part_installs_it(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    data = b.files["title.basics.tsv.gz"]
    (tmp_path / "title.basics.tsv.gz.part").write_bytes(data)
    [result] = fetch(url, tmp_path)
    assert ranges(b) == [f"bytes={len(data)}-"]
    assert result.path.read_bytes() == data and result.bytes_received == 0


def test_416_for_an_oversized_part_starts_over(
    server: tuple[str, Behaviour], tmp_path: Path
) -> None:
    url, b = server
    data = b.files["title.basics.tsv.gz"]
    (tmp_path / "title.basics.tsv.gz.part").write_bytes(data + b"junk")
    [result] = fetch(url, tmp_path)
    assert ranges(b) == [f"bytes={len(data) + 4}-", None]
    assert result.path.read_bytes() == data


def test_transient_errors_are_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.fail_with = [503, 500, 429, 408, 425]
    [result] = fetch(url, tmp_path, retries=5)
    assert result.attempts == 6 and result.status == "downloaded"


def test_retry_after_is_waited_out(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.fail_with, b.retry_after = [503], "1"
    started = time.monotonic()
    [result] = fetch(url, tmp_path)
    assert result.attempts == 2 and result.status == "downloaded"
    assert time.monotonic() - started >= 0.95  # the backoff alone would be 0.01-0.02 s


def test_client_errors_are_not_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.fail_with = [403]
    with pytest.raises(DatasetDownloadError, match=r"HTTP 403 from http://"):
        fetch(url, tmp_path)
    assert len(b.requests) == 1


def test_giving_up_keeps_the_part_for_later(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.cut_after = [70_000, 70_000]
    with pytest.raises(DatasetDownloadError) as info:
        fetch(url, tmp_path, retries=1)
    assert "after 2 attempts" in str(info.value) and "131,072 bytes kept" in str(info.value)
    assert ranges(b) == [None, "bytes=65536-"]
    assert not (tmp_path / "title.basics.tsv.gz").exists()
    [result] = fetch(url, tmp_path)  # the next run picks up where that one stopped
    assert ranges(b)[-1] == "bytes=131072-" and result.status == "resumed"


def test_not_found_is_not_retried(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    with pytest.raises(DatasetDownloadError, match="HTTP 404"):
        fetch(url, tmp_path, ["title.akas.tsv.gz"])
    assert len(b.requests) == 1


def test_truncated_gzip_is_not_installed(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    whole = b.files["title.basics.tsv.gz"]
    b.files["title.basics.tsv.gz"] = whole[: len(whole) - 40]  # the server's file is cut
    with pytest.raises(DatasetDownloadError, match="truncated"):
        fetch(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_wrong_header_is_not_installed(server: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = server
    b.files["title.basics.tsv.gz"] = b.files["title.ratings.tsv.gz"]
    with pytest.raises(DatasetDownloadError, match=r"not an IMDb title\.basics file"):
        fetch(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_download_with_extra_files(
    server: tuple[str, Behaviour], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, b = server
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[imdb]\ndatasets_base_url = "{url}"\nmax_retries = 1\nbackoff_initial_s = 0.01\n'
    )
    dest = tmp_path / "dl"
    code = main(
        [
            "--config",
            str(cfg),
            "imdb",
            "download",
            "--to",
            str(dest),
            "--files",
            "title.crew.tsv.gz",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert list(summary) == ["title.basics.tsv.gz", "title.ratings.tsv.gz", "title.crew.tsv.gz"]
    assert all(v["status"] == "downloaded" for v in summary.values())
    assert (dest / "title.crew.tsv.gz").read_bytes() == b.files["title.crew.tsv.gz"]

    code = main(
        ["--config", str(cfg), "imdb", "download", "--to", str(dest), "--files", "../evil.tsv.gz"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a dataset file name" in err

    b.fail_with = [503, 503]
    code = main(["--config", str(cfg), "imdb", "download", "--to", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 1 and "HTTP 503 (after 2 attempts)" in err.splitlines()[-1]
