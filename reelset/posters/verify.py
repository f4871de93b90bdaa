"""Poster verification with Pillow: decide whether downloaded bytes are a picture we keep.

Every byte here came from the network. Bytes are kept only when they decode completely
as an image of an allowed format and no larger than ``max_pixels``; anything else raises
:class:`PosterRejected` with a stable ``reason`` code (recorded in the store and counted
in the summary):

``too_large``            more bytes than ``max_bytes`` (raised by the downloader)
``invalid_path``         the movie's ``poster_path`` is not a plausible file name
``not_an_image``         Pillow cannot identify it (HTML or JSON error pages, garbage)
``format_not_allowed``   an image, but not of an allowed format
``decompression_bomb``   the header declares more pixels than allowed
``truncated``            the data ends before the image does
``corrupt``              the image data is damaged in another way

The last three (:data:`RETRYABLE_REJECTIONS`) are what a flaky cache or proxy serves now
and then, so the downloader first treats them as a failed download and tries again; only
the same bytes failing twice (or every retry failing) makes them a rejection. A rejected
poster with one of these reasons is also tried again by a later run after ``[posters]
recheck_rejected_after_days``. The others are final at once.

The pixel limit is checked on the header's size, before anything is decoded, and never
by changing Pillow's global ``Image.MAX_IMAGE_PIXELS`` (other threads use it). An image
above Pillow's own limit counts as a bomb even when ``max_pixels`` is higher, so Pillow's
``DecompressionBombWarning`` is in effect an error. ``ImageFile.LOAD_TRUNCATED_IMAGES``
must stay False: verification refuses to run when something set it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from reelset.errors import ReelsetError, error_line

REJECT_REASONS = (
    "too_large",
    "invalid_path",
    "not_an_image",
    "format_not_allowed",
    "decompression_bomb",
    "truncated",
    "corrupt",
)

RETRYABLE_REJECTIONS = ("not_an_image", "truncated", "corrupt")
"""Rejection reasons a new download of the same URL may not repeat (see above)."""

FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
"""File extension per Pillow format name (other allowed formats use the lower-case name)."""


class PosterRejected(Exception):
    """Downloaded bytes that are not kept: ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[PosterRejected], tuple[str, str]]:
        # Raised in verifier processes too: pickle with both arguments.
        return (PosterRejected, (self.reason, self.detail))


@dataclass(frozen=True)
class VerifiedImage:
    """What verification learned about a picture that is kept."""

    format: str
    width: int
    height: int
    mode: str
    phash: str

    @property
    def extension(self) -> str:
        """The file extension for this format (``jpg``, ``png``, ``webp``)."""
        return extension_for(self.format)


def extension_for(image_format: str) -> str:
    """The file extension for a Pillow format name."""
    ext = FORMAT_EXTENSIONS.get(image_format.upper(), image_format.lower())
    if not ext.isalnum() or len(ext) > 5:
        raise ValueError(f"no file extension for image format {image_format!r}")
    return ext


def pixel_limit(max_pixels: int) -> int:
    """The effective pixel limit: ``max_pixels``, capped by Pillow's warning threshold."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, pillow_limit) if pillow_limit else max_pixels


def _describe_non_image(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "an HTML page, not an image"
    if head.startswith((b"{", b"[")):
        return "JSON, not an image"
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "XML/SVG, not a raster image"
    if not data:
        return "an empty body"
    return f"not a recognised image ({len(data)} bytes starting {data[:8].hex()})"


def _check_truncation_flag() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ReelsetError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES was set to True by other code in this "
            "process; refusing to verify posters (truncated files would pass)"
        )


# imagehash.phash resizes to 32x32 with a Lanczos filter; from a full poster that filter
# costs about 3 ms, more than decoding it. A box reduction (a cheap C loop) to a short side
# of at least 128 pixels first keeps the hash's meaning at a quarter of the cost; values
# differ from imagehash.phash(full image) by a few bits at most, and every reelset hash is
# computed this way, so near-duplicate distances compare like with like.
_PHASH_MIN_SIDE = 128
_PHASH_BITS_SIDE = 8  # imagehash.phash's hash_size
_PHASH_SIDE = 32  # hash_size * highfreq_factor


def poster_phash(im: Image.Image) -> str:
    """The perceptual hash reelset records (``imagehash.phash`` of a box-reduced image), hex."""
    gray = im.convert("L")  # what phash starts with; reduce() needs a plain mode like it
    factor = min(gray.size) // _PHASH_MIN_SIDE
    return _phash_hex(gray.reduce(factor) if factor > 1 else gray)


def _phash_hex(gray: Image.Image) -> str:
    """``str(imagehash.phash(gray))`` for an ``L`` image, the same steps without its
    per-call overheads (a second grey copy, ``numpy.asarray`` through
    ``__array_interface__``, a Python loop over 64 bits for the hex): same value, bit
    for bit (``tests/posters/test_verify.py`` compares them)."""
    # Imported here, not with the module: a run that verifies in verifier processes never
    # loads numpy, scipy (and their BLAS threads) in its main process.
    import numpy
    import scipy.fftpack

    small = gray.resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS)
    pixels = numpy.frombuffer(small.tobytes(), dtype=numpy.uint8).reshape(
        _PHASH_SIDE, _PHASH_SIDE
    )
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:_PHASH_BITS_SIDE, :_PHASH_BITS_SIDE]
    bits = low > numpy.median(low)
    return numpy.packbits(bits).tobytes().hex()  # row-major, big-endian: imagehash's hex


def verify_image(data: bytes, *, allowed_formats: Sequence[str], max_pixels: int) -> VerifiedImage:
    """Decode ``data`` completely and describe it, or raise :class:`PosterRejected`."""
    _check_truncation_flag()
    allowed = [f.upper() for f in allowed_formats]
    limit = pixel_limit(max_pixels)
    try:
        # Only the allowed plugins are tried, so other formats are "not an image" here;
        # a second identification without the restriction names them properly.
        with Image.open(io.BytesIO(data), formats=allowed) as im:
            fmt = str(im.format)
            width, height = im.size
            if width < 1 or height < 1:
                raise PosterRejected("corrupt", f"image declares {width}x{height} pixels")
            if width * height > limit:
                raise PosterRejected(
                    "decompression_bomb",
                    f"{width}x{height} = {width * height:,} pixels exceeds the limit {limit:,}",
                )
            im.load()
            mode = im.mode
            phash = poster_phash(im)
        if fmt == "PNG":  # verify() checks every chunk's CRC up to IEND (a no-op for JPEG)
            with Image.open(io.BytesIO(data), formats=[fmt]) as again:
                again.verify()
    except PosterRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise PosterRejected("decompression_bomb", error_line(exc)) from None
    except UnidentifiedImageError:
        other = _identify_any(data)
        if other is not None:
            raise PosterRejected(
                "format_not_allowed", f"{other} is not one of {', '.join(allowed)}"
            ) from None
        raise PosterRejected("not_an_image", _describe_non_image(data)) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        text = error_line(exc)
        reason = (
            "truncated" if "truncated" in text.lower() or isinstance(exc, EOFError) else ("corrupt")
        )
        raise PosterRejected(reason, f"{exc.__class__.__name__}: {text}") from None
    except (MemoryError, Image.DecompressionBombWarning) as exc:
        raise PosterRejected("decompression_bomb", error_line(exc)) from None
    if fmt not in allowed:  # pragma: no cover - Image.open(formats=...) already ensures it
        raise PosterRejected("format_not_allowed", f"{fmt} is not one of {', '.join(allowed)}")
    return VerifiedImage(format=fmt, width=width, height=height, mode=mode, phash=phash)


def _identify_any(data: bytes) -> str | None:
    """The format name Pillow gives ``data`` with every plugin, without decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return str(im.format)
    except Exception:  # identification only: any failure means "not an image we know"
        return None


def training_copy(data: bytes, *, max_side: int, quality: int) -> tuple[bytes, int, int]:
    """An RGB JPEG of verified image ``data`` whose longest side is at most ``max_side``.

    EXIF orientation is applied; transparency is flattened onto white. Returns the JPEG
    bytes with their width and height. Only call this on bytes :func:`verify_image` kept.
    """
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        oriented = ImageOps.exif_transpose(im)
        if oriented.mode in ("RGBA", "LA", "PA") or (
            oriented.mode == "P" and "transparency" in oriented.info
        ):
            rgba = oriented.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = oriented.convert("RGB")
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=quality, optimize=True)
        return out.getvalue(), rgb.width, rgb.height

