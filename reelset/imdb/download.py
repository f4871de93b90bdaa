"""Downloading IMDb's dataset files: resumable, retried, and verified before use.

Each file is fetched into ``NAME.part`` next to its destination. An interrupted download
resumes from the part's size with an HTTP ``Range`` request (``If-Range`` makes sure the
server's file did not change meanwhile; a server that answers 200 instead of 206 gets
the download restarted, 416 means the part is already whole or must be dropped). The
finished part is decompressed to its end (a truncated or corrupt gzip is refused) and
its first line checked against the known header before it is moved into place.

A destination file already present is only fetched again when the server's copy is
newer (``If-Modified-Since``; the file's mtime is set from ``Last-Modified``).
Failures are classified and retried by the shared transport (:mod:`reelset.transport.retry`:
408, 425, 429, 5xx, connection errors, timeouts and bodies cut short are retried with
exponential backoff and jitter, ``Retry-After`` is honoured), each retry resuming where
the last stopped; a 429 counts as an ordinary retry. Everything from the network is
untrusted: names are checked, sizes compared with what the server announced.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from reelset.console import progress
from reelset.errors import ReelsetError, UsageError
from reelset.files import install
from reelset.imdb.tsv import DATASET_HEADERS, ImdbFileError, verify_dataset_file
from reelset.transport import retry
from reelset.transport.errors import (
    FetchError,
    TransientError,
    bad_redirect,
    describe_exception,
    url_path,
)
from reelset.transport.session import make_session

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tsv\.gz")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_CHUNK = 64 * 1024  # a cut connection loses at most this much of what it received


class DatasetDownloadError(ReelsetError):
    """A dataset file could not be downloaded (exit 1); a partial file is kept to resume."""


@dataclass(frozen=True)
class DownloadResult:
    """How one file's download went."""

    name: str
    path: Path
    status: str  # downloaded, resumed, unchanged
    bytes_received: int
    size: int
    attempts: int


def check_names(names: list[str]) -> list[str]:
    """Dataset file names, deduplicated in order; raises :class:`UsageError` on a bad one."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if not _NAME.fullmatch(name) or ".." in name:
            raise UsageError(f"{name!r} is not a dataset file name (like title.basics.tsv.gz)")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError("no dataset files to download")
    return out


def download_datasets(
    base_url: str,
    names: list[str],
    directory: Path,
    *,
    timeout_s: float,
    max_retries: int,
    backoff_initial_s: float = 1.0,
    backoff_max_s: float = 60.0,
    session: requests.Session | None = None,
) -> list[DownloadResult]:
    """Download, resume and verify each named file from ``base_url`` into ``directory``."""
    names = check_names(names)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot create folder: {exc.strerror or exc}") from None
    policy = retry.RetryPolicy(
        max_retries=max_retries,
        backoff_initial_s=backoff_initial_s,
        backoff_max_s=backoff_max_s,
        max_throttle_retries=None,
    )
    own = session is None
    # Byte ranges must count bytes of the file itself, not of a transfer encoding.
    http = session or make_session(1, headers={"Accept-Encoding": "identity"})
    try:
        return [
            _Download(
                http,
                f"{base_url.rstrip('/')}/{name}",
                directory / name,
                timeout_s=timeout_s,
            ).run(policy)
            for name in names
        ]
    finally:
        if own:
            http.close()


class _Download:
    """One file: the state shared by its attempts."""

    def __init__(
        self, session: requests.Session, url: str, target: Path, *, timeout_s: float
    ) -> None:
        self.session = session
        self.url = url
        self.target = target
        self.name = target.name
        self.part = target.with_name(target.name + ".part")
        self.meta_path = target.with_name(target.name + ".part.json")
        self.timeout = (timeout_s, timeout_s)
        self.received = 0
        self.attempts = 0
        self.resumed = False
        self.last_modified: str | None = None

    # -- bookkeeping of the part file ---------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        try:
            data = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("url") == self.url else {}

    def _save_meta(self, response: requests.Response, total: int | None) -> None:
        etag = response.headers.get("ETag")
        data = {
            "url": self.url,
            "etag": etag if etag and not etag.startswith("W/") else None,
            "last_modified": response.headers.get("Last-Modified"),
            "total": total,
        }
        self.meta_path.write_text(json.dumps(data), encoding="utf-8")

    def _drop_part(self) -> None:
        for path in (self.part, self.meta_path):
            path.unlink(missing_ok=True)

    def _part_size(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    # -- the download -------------------------------------------------------------------

    def run(self, policy: retry.RetryPolicy) -> DownloadResult:
        def on_retry(failure: BaseException) -> None:
            log.warning(
                "%s: %s; retrying (attempt %d of %d)",
                self.name,
                failure,
                self.attempts + 1,
                policy.max_retries + 1,
            )

        try:
            status = retry.retrying(policy, on_retry=on_retry)(self._attempt)
        except FetchError as exc:
            if not exc.transient:
                raise DatasetDownloadError(f"{self.name}: {exc}") from None
            kept = self._part_size()
            raise DatasetDownloadError(
                f"{self.name}: {exc} (after {self.attempts} attempts); "
                + (f"{kept:,} bytes kept in {self.part.name}, rerun to resume" if kept else "rerun")
            ) from None
        if status == "unchanged":
            size = self.target.stat().st_size
            return DownloadResult(self.name, self.target, status, 0, size, self.attempts)
        self._verify_and_install()
        status = "resumed" if self.resumed else "downloaded"
        return DownloadResult(
            self.name, self.target, status, self.received, self.target.stat().st_size, self.attempts
        )

    def _attempt(self) -> str:
        self.attempts += 1
        meta = self._meta()
        if self.meta_path.exists() and not meta:
            self._drop_part()  # a part of another URL (or unreadable bookkeeping)
        offset = self._part_size()
        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = meta.get("etag") or meta.get("last_modified")
            if validator:
                headers["If-Range"] = str(validator)
        elif self.target.is_file():
            mtime = self.target.stat().st_mtime
            headers["If-Modified-Since"] = email.utils.formatdate(mtime, usegmt=True)
        try:
            response = self.session.get(
                self.url, headers=headers, stream=True, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise retry.request_failure(exc) from None
        except ValueError:  # requests' bare ValueError for a redirect that does not parse
            raise bad_redirect(url_path(self.url)) from None
        with response:
            return self._handle(response, offset)

    def _handle(self, response: requests.Response, offset: int) -> str:
        code = response.status_code
        if code == 304 and "If-Modified-Since" in response.request.headers:
            log.info("%s: unchanged on the server, kept %s", self.name, self.target)
            return "unchanged"
        if code == 416 and offset:
            match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match and int(match.group(1)) == offset:
                return "complete"  # the part already holds the whole file
            self._drop_part()
            raise TransientError("the server cannot resume this file (416); starting over")
        if code == 206 and offset:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != offset:
                self._drop_part()
                raise TransientError("the server sent a different byte range; starting over")
            total = None if match.group(3) == "*" else int(match.group(3))
            self.resumed = True
            self._receive(response, offset, total, append=True)
            return "complete"
        if code == 200:
            if offset:
                log.info("%s: the server sent the whole file again; starting over", self.name)
            self.resumed = False
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            self._save_meta(response, total)
            self._receive(response, 0, total, append=False)
            return "complete"
        message = f"HTTP {code}" if retry.is_retryable(code) else f"HTTP {code} from {self.url}"
        retry_after = retry.parse_retry_after(response.headers.get("Retry-After"))
        raise retry.status_error(code, message, url=self.url, retry_after=retry_after)

    def _receive(
        self, response: requests.Response, offset: int, total: int | None, *, append: bool
    ) -> None:
        self.last_modified = response.headers.get("Last-Modified") or self._meta().get(
            "last_modified"
        )
        written = offset
        label = f"download {self.name}" + (f" (resuming at {offset:,} bytes)" if offset else "")
        with (
            progress(label, total, unit="B", bytes_=True) as bar,
            self.part.open("ab" if append else "wb") as out,
        ):
            bar.advance(offset)
            try:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    self.received += len(chunk)
                    bar.advance(len(chunk))
                    if total is not None and written > total:
                        break
            except requests.RequestException as exc:
                message = f"download cut at {written:,} bytes: {describe_exception(exc)}"
                raise retry.request_failure(exc, message) from None
        if total is not None and written != total:
            if written > total:
                self._drop_part()
                raise TransientError(f"got more bytes than announced ({written:,} > {total:,})")
            raise TransientError(f"download cut at {written:,} of {total:,} bytes")

    def _verify_and_install(self) -> None:
        try:
            verify_dataset_file(self.part, DATASET_HEADERS.get(self.name))
        except ImdbFileError as exc:
            self._drop_part()
            message = str(exc).replace(str(self.part), self.name)
            raise DatasetDownloadError(f"{message} (not installed)") from None
        last_modified = self.last_modified or self._meta().get("last_modified")
        install(self.part, self.target)
        self.meta_path.unlink(missing_ok=True)
        if last_modified:
            try:
                stamp = email.utils.parsedate_to_datetime(str(last_modified)).timestamp()
                os.utime(self.target, (stamp, stamp))
            except (TypeError, ValueError, OverflowError):
                pass
