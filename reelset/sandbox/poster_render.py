"""Pictures for the image server: synthetic posters and backdrops, resized real posters.

Synthetic pictures are drawn with Pillow from the file name (so every movie's poster has
different bytes) and the movie's title; the same name always gives the same bytes. Encoded
pictures are kept in a small LRU cache.
"""

from __future__ import annotations

import hashlib
import io
import random
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont, ImageOps

POSTER_SIZES: tuple[str, ...] = ("w92", "w154", "w185", "w342", "w500", "w780", "original")
BACKDROP_SIZES: tuple[str, ...] = ("w300", "w780", "w1280", "original")
LOGO_SIZES: tuple[str, ...] = ("w45", "w92", "w154", "w185", "w300", "w500", "original")
PROFILE_SIZES: tuple[str, ...] = ("w45", "w185", "h632", "original")
STILL_SIZES: tuple[str, ...] = ("w92", "w185", "w300", "original")
IMAGE_SIZES = frozenset(
    POSTER_SIZES + BACKDROP_SIZES + LOGO_SIZES + PROFILE_SIZES + STILL_SIZES
)

POSTER_NATIVE = (500, 750)
BACKDROP_NATIVE = (1280, 720)


def scaled_size(size: str, native: tuple[int, int]) -> tuple[int, int]:
    """Pixel size of a picture of ``native`` size served as ``size`` (never upscaled)."""
    width, height = native
    if size == "original":
        return native
    bound = int(size[1:])
    if size[0] == "w" and bound < width:
        return bound, max(1, round(height * bound / width))
    if size[0] == "h" and bound < height:
        return max(1, round(width * bound / height)), bound
    return native


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes of ``image`` (quality 85)."""
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_picture(seed_text: str, title: str, *, backdrop: bool = False) -> Image.Image:
    """Draw a poster (500x750) or backdrop (1280x720) determined by ``seed_text``."""
    digest = hashlib.sha256(seed_text.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    width, height = BACKDROP_NATIVE if backdrop else POSTER_NATIVE

    def color() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    gradient = Image.linear_gradient("L").resize((width, height))
    if rng.random() < 0.5:
        gradient = gradient.rotate(180)
    image = ImageOps.colorize(gradient, color(), color())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = x0 + rng.randint(width // 10, width // 2)
        y1 = y0 + rng.randint(height // 10, height // 2)
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=color())
        else:
            draw.rectangle((x0, y0, x1, y1), fill=color(), outline=color(), width=4)
    band_top = int(height * (0.62 if not backdrop else 0.7))
    draw.rectangle((0, band_top, width, height), fill=(12, 12, 16))
    font = _font(44 if not backdrop else 56)
    lines = textwrap.wrap(title or "Untitled", width=16 if not backdrop else 32)[:3]
    y = band_top + 24
    for line in lines:
        draw.text((28, y), line, fill=(245, 240, 230), font=font)
        y += 54 if not backdrop else 66
    draw.text((28, height - 40), "reelset sandbox", fill=(150, 150, 150), font=_font(20))
    return image


def resize_jpeg(data: bytes, size: str) -> bytes:
    """``data`` (a JPEG) served at ``size``: the same bytes unless it must shrink.

    Bytes Pillow cannot read are served unchanged at every size.
    """
    if size == "original":
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            target = scaled_size(size, image.size)
            if target == image.size:
                return data
            return encode_jpeg(image.convert("RGB").resize(target, Image.Resampling.LANCZOS))
    except (OSError, ValueError, Image.DecompressionBombError):
        return data


def synthetic_jpeg(seed_text: str, title: str, size: str, *, backdrop: bool = False) -> bytes:
    """JPEG bytes of the synthetic picture for ``seed_text`` at ``size``."""
    image = render_picture(seed_text, title, backdrop=backdrop)
    target = scaled_size(size, image.size)
    if target != image.size:
        image = image.resize(target, Image.Resampling.LANCZOS)
    return encode_jpeg(image)


class PictureCache:
    """A thread-safe LRU cache of encoded pictures, bounded by total bytes."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], build: Callable[[], bytes]) -> bytes:
        """The cached bytes of ``key``, building (outside the lock) and storing on a miss."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
                return data
        data = build()
        with self._lock:
            if key not in self._items and len(data) <= self.max_bytes // 4:
                self._items[key] = data
                self._bytes += len(data)
                while self._bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= len(old)
        return data

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
