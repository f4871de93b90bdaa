"""Broken poster files the sandbox's image server can serve on purpose.

A catalog maps a poster file name to an :class:`ImageFault`; the server then answers
``/t/p/{size}/{name}`` with the misbehaviour of its kind instead of a picture. Kinds
(:data:`IMAGE_FAULT_KINDS`):

``truncated_jpeg``
    200, ``Content-Type: image/jpeg``, an honest Content-Length, but only the first half of
    a JPEG (no end-of-image marker): the file downloads fine and fails to decode.
``html_as_jpeg``
    200 with ``Content-Type: image/jpeg`` and an HTML error page as the body.
``truncated_once``
    Served like ``truncated_jpeg`` for the first ``attempts`` requests of the URL, then
    the real picture: a transient fault of a cache or proxy that a new download fixes.
    The truncated bytes are the same each time.
``html_once``
    Served like ``html_as_jpeg`` (an HTML page as ``image/jpeg``) for the first
    ``attempts`` requests of the URL, then the real picture.
``not_found``
    404, like the image CDN for a file it does not have.
``transient_500``
    500 for the first ``attempts`` requests of a URL, the real picture afterwards.
``oversized``
    200 with a body of :data:`OVERSIZED_BYTES` (a valid JPEG padded with zeros after its
    end marker) and an honest Content-Length.
``oversized_chunked``
    The same body sent with ``Transfer-Encoding: chunked`` and no Content-Length.
``bomb``
    A valid PNG of about 110 KB whose header declares 30000x30000 pixels (Pillow refuses
    it with ``DecompressionBombError``).
``duplicate``
    Several different file names that serve byte-identical pictures.
``hostile_dotdot``, ``hostile_encoded``, ``hostile_long``, ``hostile_unicode``, ``hostile_chars``
    Valid pictures under names a client must not use as file names as they are:
    ``../../x.jpg``, ``..%2F..%2Fx.jpg``, a 300-character name, a non-ASCII name, and a name
    with spaces, ``?`` and ``#``. The server only looks names up in a table; it never
    touches the file system with them.

The transient kinds (:data:`TRANSIENT_KINDS`) count the requests of each URL from the
server's start (or its last ``reset_counters``); :func:`poster_fault_catalog
<reelset.sandbox.fault_catalogs.poster_fault_catalog>` makes the ``*_once`` kinds bad for
one request.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from PIL import Image

IMAGE_FAULT_KINDS: tuple[str, ...] = (
    "truncated_jpeg",
    "html_as_jpeg",
    "truncated_once",
    "html_once",
    "not_found",
    "transient_500",
    "oversized",
    "oversized_chunked",
    "bomb",
    "duplicate",
    "hostile_dotdot",
    "hostile_encoded",
    "hostile_long",
    "hostile_unicode",
    "hostile_chars",
)

TRANSIENT_KINDS = frozenset({"transient_500", "truncated_once", "html_once"})
"""Kinds that misbehave for the first ``attempts`` requests of a URL only."""

# Kinds whose body is a normal, decodable picture (the fault is in the name or the group).
PICTURE_KINDS = frozenset(
    {"duplicate", "hostile_dotdot", "hostile_encoded", "hostile_long", "hostile_unicode",
     "hostile_chars"}
)

OVERSIZED_BYTES = 12 * 1024 * 1024
BOMB_SIDE = 30_000

HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><p>The origin did not answer in time.</p>"
    b"<hr><address>edge-cache</address></body></html>\n"
)


@dataclass(frozen=True)
class ImageFault:
    """A poster file that misbehaves: its ``kind``, and ``attempts`` for transient kinds
    (:data:`TRANSIENT_KINDS`: how many requests of the URL misbehave before it is served).

    ``group`` names the shared picture of ``duplicate`` files (same group, same bytes).
    """

    kind: str
    attempts: int = 2
    group: str = ""

    def __post_init__(self) -> None:
        if self.kind not in IMAGE_FAULT_KINDS:
            raise ValueError(f"unknown image fault kind: {self.kind!r}")
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")


def hostile_name(kind: str, serial: int) -> str:
    """The file name (without the leading ``/``) of hostile-name poster number ``serial``."""
    if kind == "hostile_dotdot":
        return f"../../x{serial}.jpg"
    if kind == "hostile_encoded":
        return f"..%2F..%2Fx{serial}.jpg"
    if kind == "hostile_long":
        stem = f"long{serial}-"
        return stem + "x" * (300 - len(stem) - 4) + ".jpg"
    if kind == "hostile_unicode":
        return f"affiche-été-ポスター-{serial}.jpg"
    if kind == "hostile_chars":
        return f"poster {serial} ?query=1#frag.jpg"
    raise ValueError(f"not a hostile-name kind: {kind!r}")


def truncated(jpeg: bytes) -> bytes:
    """The first half of ``jpeg``: a download that cannot be decoded."""
    return jpeg[: max(1, len(jpeg) // 2)]


def oversized(jpeg: bytes, size: int = OVERSIZED_BYTES) -> bytes:
    """``jpeg`` padded with zeros to ``size`` bytes (decoders stop at its end marker)."""
    return jpeg + b"\0" * max(0, size - len(jpeg))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@cache
def decompression_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of ``side`` x ``side`` pixels, compressed to ~110 KB."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    block = row * 256
    compressor = zlib.compressobj(9)
    parts = []
    full, rest = divmod(side, 256)
    for _ in range(full):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(row * rest))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def tiny_jpeg(color: tuple[int, int, int] = (90, 90, 90)) -> bytes:
    """A 16x24 JPEG, the payload of faults whose content does not matter."""
    out = io.BytesIO()
    Image.new("RGB", (16, 24), color).save(out, format="JPEG", quality=80)
    return out.getvalue()
