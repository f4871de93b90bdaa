"""Poster verification, URL safety and content-addressed files (no network)."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import types
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageFile

from reelset.errors import ConfigError, ReelsetError
from reelset.posters.fetch import (
    PosterFetchError,
    check_base_url,
    invalid_poster_path,
    poster_url,
    public_url,
)
from reelset.posters.filestore import (
    TEMP_PREFIX,
    PosterFiles,
    TempFile,
    is_valid_relpath,
    poster_relpath,
    resized_relpath,
    sha256_hex,
    temp_is_stale,
)
from reelset.posters.verify import (
    PosterRejected,
    pixel_limit,
    poster_phash,
    training_copy,
    verify_image,
)
from reelset.posters.verify_pool import VerifierCrashed, VerifierPool, spawn_is_safe

FIXTURES = Path(__file__).parent.parent / "fixtures" / "posters"
ALLOWED = ["JPEG", "PNG", "WEBP"]
MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return (FIXTURES / "tt1242460.jpg").read_bytes()


def _convert(jpeg: bytes, fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as im:
        im.convert(mode).save(out, format=fmt)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _bomb_png(width: int, height: int) -> bytes:
    """A small valid 1-bit PNG whose header declares width x height pixels."""
    row = b"\0" * (1 + (width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _reason(data: bytes, **kwargs: object) -> str:
    with pytest.raises(PosterRejected) as info:
        verify_image(
            data,
            allowed_formats=kwargs.get("allowed", ALLOWED),  # type: ignore[arg-type]
            max_pixels=kwargs.get("max_pixels", MAX_PIXELS),  # type: ignore[arg-type]
        )
    return info.value.reason


# -- verification ------------------------------------------------------------------------


def test_a_real_jpeg_is_described(jpeg: bytes) -> None:
    image = verify_image(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    assert (image.format, image.width, image.height, image.mode) == ("JPEG", 300, 439, "RGB")
    assert image.extension == "jpg"
    with Image.open(io.BytesIO(jpeg)) as im:
        assert image.phash == poster_phash(im)
        exact = imagehash.phash(im)
    assert len(image.phash) == 16 and int(image.phash, 16) >= 0
    # the reduced-input hash stays within a few bits of imagehash's full-size one
    assert imagehash.hex_to_hash(image.phash) - exact <= 4


def _reference_phash(im: Image.Image) -> str:
    """The recorded hash as it was first defined: imagehash.phash of the box-reduced grey."""
    gray = im.convert("L")
    factor = min(gray.size) // 128
    return str(imagehash.phash(gray.reduce(factor) if factor > 1 else gray))


def test_phash_is_bit_for_bit_imagehash_of_the_reduced_grey_image(jpeg: bytes) -> None:
    """Stored hashes are compared with new ones: the value may never change."""
    originals = [Image.open(path) for path in sorted(FIXTURES.glob("*.jpg"))]
    pictures = list(originals)
    for mode in ("P", "RGBA", "LA", "1", "I", "F", "CMYK", "I;16"):
        pictures.extend(im.convert(mode) for im in originals)
    for size in ((1, 1), (2, 3), (7, 1000), (128, 128), (255, 256), (4000, 10)):
        pictures.append(originals[0].resize(size))
        pictures.append(Image.new("RGB", size, (77, 77, 77)))  # flat: every DCT term ties
    pictures.append(Image.effect_noise((500, 750), 64))
    for im in pictures:
        assert poster_phash(im) == _reference_phash(im), (im.mode, im.size)


def test_phash_finds_near_duplicates_and_separates_different_posters(jpeg: bytes) -> None:
    with Image.open(io.BytesIO(jpeg)) as im:
        original = imagehash.hex_to_hash(poster_phash(im))
        copy = io.BytesIO()
        im.convert("RGB").resize((250, 366)).save(copy, "JPEG", quality=60)
        other = Image.new("RGB", im.size, (20, 40, 200))
        other.paste(im.rotate(90, expand=False).resize((150, 200)), (0, 0))
    with Image.open(copy) as small:
        assert imagehash.hex_to_hash(poster_phash(small)) - original <= 4
    assert imagehash.hex_to_hash(poster_phash(other)) - original > 10


@pytest.mark.parametrize(("fmt", "mode", "ext"), [("PNG", "RGBA", "png"), ("WEBP", "RGB", "webp")])
def test_png_and_webp_are_kept(jpeg: bytes, fmt: str, mode: str, ext: str) -> None:
    image = verify_image(_convert(jpeg, fmt, mode), allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    assert (image.format, image.mode, image.extension) == (fmt, mode, ext)


def test_truncated_jpeg_and_png_are_rejected(jpeg: bytes) -> None:
    assert _reason(jpeg[: len(jpeg) // 2]) == "truncated"
    png = _convert(jpeg, "PNG")
    assert _reason(png[: len(png) * 2 // 3]) in ("truncated", "corrupt")


def test_png_with_a_bad_checksum_is_rejected(jpeg: bytes) -> None:
    png = bytearray(_convert(jpeg, "PNG"))
    png[-20] ^= 0xFF  # inside the last IDAT chunk's data or CRC
    assert _reason(bytes(png)) in ("truncated", "corrupt")


def test_error_pages_are_not_images() -> None:
    html = b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(PosterRejected) as info:
        verify_image(html, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    assert info.value.reason == "not_an_image" and "HTML" in info.value.detail
    assert _reason(b'{"status_code": 34, "status_message": "not found"}') == "not_an_image"
    assert _reason(b"") == "not_an_image"
    assert _reason(os.urandom(2048)) == "not_an_image"


def test_formats_outside_the_list_are_rejected_by_name(jpeg: bytes) -> None:
    gif = _convert(jpeg, "GIF", "P")
    with pytest.raises(PosterRejected) as info:
        verify_image(gif, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    assert info.value.reason == "format_not_allowed" and "GIF" in info.value.detail
    assert _reason(_convert(jpeg, "PNG"), allowed=["JPEG"]) == "format_not_allowed"


def test_pixel_limit_is_checked_on_the_header_before_decoding() -> None:
    # 5000 x 5000 = 25 MP: under Pillow's own limit, over ours (so only our check stops it).
    bomb = _bomb_png(5000, 5000)
    assert len(bomb) < 100_000
    with pytest.raises(PosterRejected) as info:
        verify_image(bomb, allowed_formats=ALLOWED, max_pixels=10_000_000)
    assert info.value.reason == "decompression_bomb" and "5000x5000" in info.value.detail
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # never changed by the check
    # The same picture passes when the limit allows it.
    assert verify_image(bomb, allowed_formats=ALLOWED, max_pixels=30_000_000).width == 5000


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_counts_as_an_error() -> None:
    # 10000 x 10000 = 100 MP: above MAX_IMAGE_PIXELS (a warning in Pillow), below 2x (no error).
    bomb = _bomb_png(10_000, 10_000)
    assert pixel_limit(10**9) == Image.MAX_IMAGE_PIXELS
    assert _reason(bomb, max_pixels=10**9) == "decompression_bomb"
    huge = _bomb_png(30_000, 30_000)  # above 2x: Pillow raises while opening
    assert _reason(huge, max_pixels=10**9) == "decompression_bomb"


def test_truncated_images_flag_must_stay_off(jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ReelsetError, match="LOAD_TRUNCATED_IMAGES"):
        verify_image(jpeg[: len(jpeg) // 2], allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)


def test_training_copy_is_rgb_jpeg_with_the_longest_side(jpeg: bytes) -> None:
    data, width, height = training_copy(jpeg, max_side=128, quality=85)
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (width, height))
    assert max(width, height) == 128 and width == round(300 * 128 / 439)
    rgba = _convert(jpeg, "PNG", "RGBA")
    _data, w2, h2 = training_copy(rgba, max_side=1000, quality=85)
    assert (w2, h2) == (300, 439)  # never enlarged


# -- URLs from untrusted poster paths -----------------------------------------------------

BASE = "http://img.example:8080/t/p/"


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/kqjL17yufvn9OVLyXYpvtyrFfak.jpg", "kqjL17yufvn9OVLyXYpvtyrFfak.jpg"),
        ("/..%2F..%2Fx.jpg", "..%252F..%252Fx.jpg"),
        ("/poster 1 ?query=1#frag.jpg", "poster%201%20%3Fquery%3D1%23frag.jpg"),
        ("/affiche-été.jpg", "affiche-%C3%A9t%C3%A9.jpg"),
        ("/@evil.example:80", "%40evil.example%3A80"),
    ],
)
def test_poster_urls_stay_on_the_image_server(path: str, quoted: str) -> None:
    url = poster_url(BASE, "w500", path)
    assert url == f"{BASE}w500/{quoted}"


@pytest.mark.parametrize(
    "path",
    [
        "/../../x.jpg",
        "/..",
        "/.",
        "/",
        "",
        "x.jpg",
        "//evil.example/x.jpg",
        "/a/b.jpg",
        "/a\\b.jpg",
        "/x\x00.jpg",
        "/x\n.jpg",
        "/" + "x" * 296 + ".jpg",
    ],
)
def test_implausible_poster_paths_are_rejected(path: str) -> None:
    assert invalid_poster_path(path) is not None
    with pytest.raises(PosterFetchError) as info:
        poster_url(BASE, "w500", path)
    assert info.value.rejected and info.value.reason == "invalid_path"


def test_base_url_and_size_are_checked() -> None:
    assert check_base_url("https://image.example/t/p") == "https://image.example/t/p/"
    for bad in ("ftp://x/t/p/", "javascript:alert(1)", "https:///t/p/", "http://x/t/p/?a=1"):
        with pytest.raises(ConfigError):
            check_base_url(bad)
    with pytest.raises(ConfigError):
        poster_url(BASE, "../w500", "/a.jpg")
    assert public_url("https://user:pw@img.example/t/p/w500/a.jpg") == (
        "https://img.example/t/p/w500/a.jpg"
    )


# -- content-addressed files --------------------------------------------------------------


def test_every_control_character_and_odd_space_is_refused_in_a_poster_path() -> None:
    """The character check is exactly: C0 controls, DEL, whitespace but a plain space."""
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        bad = ord(c) < 0x20 or ord(c) == 0x7F or (c.isspace() and c != " ")
        problem = invalid_poster_path(f"/a{c}b.jpg")
        assert (problem == "contains control characters") == bad, hex(code)


def test_relative_paths_come_only_from_hashes(jpeg: bytes) -> None:
    sha = sha256_hex(jpeg)
    rel = poster_relpath(sha, "jpg")
    assert rel == f"{sha[:2]}/{sha}.jpg" and is_valid_relpath(rel)
    assert is_valid_relpath(resized_relpath(sha, 224))
    for bad in (
        "../x.jpg",
        f"{sha[:2]}/../{sha}.jpg",
        f"/{sha[:2]}/{sha}.jpg",
        f"ff/{sha}.jpg" if not sha.startswith("ff") else f"00/{sha}.jpg",
        f"{sha[:2]}/{sha}.jpg/..",
        f"{sha[:2]}/{sha[:-1]}.jpg",
    ):
        assert not is_valid_relpath(bad), bad


def test_atomic_write_leaves_only_the_final_file(tmp_path: Path, jpeg: bytes) -> None:
    files = PosterFiles(tmp_path / "posters")
    sha = sha256_hex(jpeg)
    rel = poster_relpath(sha, "jpg")
    assert not files.holds(rel, sha)
    files.write(rel, jpeg)
    assert files.holds(rel, sha)
    assert [r for r, _ in files.scan()] == [rel]
    with pytest.raises(ValueError):
        files.write("../escape.jpg", jpeg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posters"]


def test_a_failed_write_removes_its_temp_file(
    tmp_path: Path, jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = PosterFiles(tmp_path)
    rel = poster_relpath(sha256_hex(jpeg), "jpg")

    def broken_fsync(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        files.write(rel, jpeg)
    assert [r for r, _ in files.scan()] == []


def test_temp_files_are_recognised_and_judged_by_their_process(tmp_path: Path) -> None:
    mine = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-abcd-x.jpg"
    mine.write_bytes(b"x")
    found = PosterFiles.temp_file(mine)
    assert found is not None and found.pid == os.getpid() and not temp_is_stale(found)
    assert PosterFiles.temp_file(tmp_path / "x.jpg") is None
    dead = TempFile(tmp_path / "t", pid=2**22 + 12345, age_s=1.0)
    assert temp_is_stale(dead)
    assert temp_is_stale(TempFile(tmp_path / "t", pid=os.getpid(), age_s=10**6))


# -- verifier processes -------------------------------------------------------------------


def test_verifier_processes_verify_reject_and_survive_a_crash(jpeg: bytes) -> None:
    pool = VerifierPool(1)
    try:
        image = pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
        assert image == verify_image(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
        with pytest.raises(PosterRejected) as info:
            pool.verify(jpeg[:1000], allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
        assert info.value.reason == "truncated"  # the reason survives pickling
        (victim,) = pool.pids()
        os.kill(victim, signal.SIGKILL)  # a decoder crash, simulated
        _wait_gone(victim)
        with pytest.raises(VerifierCrashed):
            pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
        assert pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS).width == 300
        assert victim not in pool.pids() and len(pool.pids()) == 1
    finally:
        pool.close()
    with pytest.raises(VerifierCrashed):
        pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)


def _wait_gone(pid: int, timeout_s: float = 30.0) -> None:
    """Wait until ``pid`` has exited (and is reaped, or is a zombie)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} is still running")


def test_verifier_processes_answer_many_threads_at_once(jpeg: bytes) -> None:
    """More threads than pipes: each gets its own answer, in a worker, none lost."""
    png = _convert(jpeg, "PNG")
    inputs = [jpeg, png, jpeg[:1000], b"<html>oops</html>"] * 8
    expected = []
    for data in inputs:
        try:
            expected.append(verify_image(data, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS))
        except PosterRejected as exc:
            expected.append(exc.reason)

    pool = VerifierPool(2, channels_per_process=2)

    def verify(data: bytes) -> object:
        try:
            return pool.verify(data, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
        except PosterRejected as exc:
            return exc.reason

    try:
        with ThreadPoolExecutor(12) as threads:
            assert list(threads.map(verify, inputs)) == expected
        assert len(pool.pids()) == 2 and os.getpid() not in pool.pids()
    finally:
        pool.close()


def test_a_verifier_process_is_one_thread_and_its_parent_loads_no_numpy(
    tmp_path: Path, jpeg: bytes
) -> None:
    """The decoding libraries live in the verifier only, without BLAS threads (numpy's
    and scipy's OpenBLAS would start one per CPU there, spinning at start for nothing)."""
    script = tmp_path / "pool.py"  # spawn needs a main module it can import again
    script.write_text(
        "import json, os, sys\n"
        "from reelset.posters.verify_pool import VerifierPool\n"
        "from reelset.posters.verify import verify_image\n"
        "if __name__ == '__main__':\n"
        "    data = open(sys.argv[1], 'rb').read()\n"
        "    pool = VerifierPool(1)\n"
        "    image = pool.verify(data, allowed_formats=['JPEG'], max_pixels=10**8)\n"
        "    (pid,) = pool.pids()\n"
        "    threads = len(os.listdir(f'/proc/{pid}/task'))\n"
        "    numpy_here = 'numpy' in sys.modules\n"
        "    pool.close()\n"
        "    print(json.dumps([image.phash, threads, numpy_here]))\n"
    )
    data = tmp_path / "poster.jpg"
    data.write_bytes(jpeg)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, str(script), str(data)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    phash, threads, numpy_here = json.loads(proc.stdout.splitlines()[-1])
    assert threads == 1
    assert numpy_here is False
    expected = verify_image(data.read_bytes(), allowed_formats=["JPEG"], max_pixels=10**8)
    assert phash == expected.phash


def test_closing_the_pool_stops_its_workers_and_refuses_new_work(jpeg: bytes) -> None:
    pool = VerifierPool(1, channels_per_process=1)
    pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    (pid,) = pool.pids()
    pool.close()
    _wait_gone(pid)
    assert pool.pids() == []
    for _ in range(2):  # every waiting or later caller is told, none blocks
        with pytest.raises(VerifierCrashed, match="shut down"):
            pool.verify(jpeg, allowed_formats=ALLOWED, max_pixels=MAX_PIXELS)
    pool.close()  # twice is fine


def test_verifier_processes_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from reelset.posters.verify_pool import VerifierPool\n"
        "pool = VerifierPool(1)\n"
        "print(*pool.pids(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        (child,) = (int(pid) for pid in parent.stdout.readline().split())
        parent.kill()
        parent.wait(30)
        _wait_gone(child)  # its pipes closed with the parent: it left on its own
    finally:
        parent.kill()
        parent.wait(30)


def test_processes_start_only_where_the_main_module_is_safe_to_import_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = types.ModuleType("__main__")
    script.__file__ = "/home/user/my_script.py"
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert not spawn_is_safe()
    script.__file__ = "/venv/bin/reelset"
    assert spawn_is_safe()
    interactive = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", interactive)
    assert spawn_is_safe()
