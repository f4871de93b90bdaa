"""One split of a built version as a map-style dataset, for training code (PyTorch & co).

    from torch.utils.data import DataLoader
    from reelset.dataset import load_examples

    train = load_examples("genres", split="train", image_size=64, transform=to_tensors)
    loader = DataLoader(train, batch_size=32, num_workers=2,
                        sampler=train.shuffled_indices(seed=epoch))
    train.label_names                                 # multi-hot order (labels.json)

``train[i]`` is ``{"image": PIL.Image.Image | None, "overview": str, "labels": int8
array (multi-hot), "genres": [str], "tmdb_id": int}``, or what ``transform`` makes of
that dict. ``image`` is None for a movie without a poster.

The object follows the protocol ``torch.utils.data.Dataset`` expects (``__len__``,
``__getitem__``) without reelset importing torch. The text, labels and ids of the split
are held in memory as Arrow and numpy arrays (no per-row Python objects, so forked
DataLoader workers share them); images are read on demand. Open files and cached images
belong to one process: a pickled copy (a ``spawn`` worker) or a forked worker opens its
own on first use.

Where the images come from, by the version's ``manifest.json`` ``images.mode``:

- ``embed``: the ``image`` column (``{bytes, path}``) of the split's parquet shards. One
  row group of that column is read at a time, and the last ``cache_row_groups`` are kept,
  so a sequential pass reads each row group once, while random access (``shuffle=True``)
  reads a whole row group (up to ``reelset.dataset.shards.ROW_GROUP_MAX_BYTES`` of
  images) per item that misses the cache: shuffle with
  :meth:`GenreExamples.shuffled_indices` instead, which shuffles the row groups and the
  rows within each.
- ``webdataset``: the members ``<tmdb_id>.<ext>`` of the split's tar shards, whose offsets
  are indexed once, when the object is made; each image is one read.
- ``reference``: the files ``poster_file`` names under the posters folder
  (``posters_dir=``, else the manifest's ``images.posters_dir``, relative to the version
  folder, else ``[storage] posters_dir`` for versions older than the ``images`` setting).

A version in object storage (``path="s3://..."`` or an ``output_dir`` URL, with
``storage_options``; :mod:`reelset.dataset.remote`) is read the same way: the parquet
row groups and the tar members by ranged reads; the pickled object carries the fsspec
filesystem, so DataLoader workers read on their own.

Resizing (``image_size``): images are converted to RGB, then made exactly ``(width,
height)`` by the ``fit`` policy: ``"pad"`` (default) scales the whole poster to fit and
centres it on black bars, keeping its aspect ratio and every pixel of content;
``"crop"`` scales it to cover the size and cuts the centre; ``"stretch"`` resizes without
keeping the aspect ratio. Resampling is bicubic; JPEGs are decoded at a reduced scale
first when that still leaves at least the requested size (Pillow's ``draft``).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from reelset.dataset.format import IMAGE_COLUMN
from reelset.dataset.load import dataset_dir
from reelset.dataset.remote import Folder, RemotePath, location, parquet_source
from reelset.dataset.splits import SPLITS
from reelset.dataset.versions import read_labels, read_manifest, split_files
from reelset.errors import ReelsetError, UsageError

if TYPE_CHECKING:
    from PIL import Image

Fit = Literal["pad", "crop", "stretch"]
FITS: tuple[str, ...] = ("pad", "crop", "stretch")
MODES: tuple[str, ...] = ("embed", "webdataset", "reference")
IMAGE = IMAGE_COLUMN.name
# Read into memory once; images are read per item.
_COLUMNS = ("tmdb_id", "overview", "genres", "labels", "poster_file")


def load_examples(
    name: str | None = None,
    version: str | int = "latest",
    split: str = "train",
    *,
    path: str | Path | None = None,
    output_dir: str | Path | None = None,
    posters_dir: str | Path | None = None,
    image_size: int | Sequence[int] | None = None,
    fit: Fit = "pad",
    transform: Callable[[dict[str, Any]], Any] | None = None,
    cache_row_groups: int = 2,
    storage_options: dict[str, Any] | None = None,
) -> GenreExamples:
    """One split of a version as a map-style dataset (:class:`GenreExamples`).

    The version is ``path`` (a version folder) when given, else ``version`` of dataset
    ``name`` under ``output_dir`` (both default to the ``[build]`` settings).
    ``image_size``: an int (a square) or ``(width, height)``; None keeps each image as
    stored. ``transform`` is called with each example dict and its result is the item.
    ``path`` and ``output_dir`` may be fsspec URLs, read with ``storage_options``.
    """
    folder = location(path, storage_options) if path is not None else dataset_dir(
        name, version, output_dir=output_dir, storage_options=storage_options
    )
    return GenreExamples(
        folder,
        split,
        posters_dir=posters_dir,
        image_size=image_size,
        fit=fit,
        transform=transform,
        cache_row_groups=cache_row_groups,
    )


class GenreExamples:
    """A map-style dataset over one split of a built version (see the module doc)."""

    def __init__(
        self,
        folder: str | Path | RemotePath,
        split: str = "train",
        *,
        posters_dir: str | Path | None = None,
        image_size: int | Sequence[int] | None = None,
        fit: Fit = "pad",
        transform: Callable[[dict[str, Any]], Any] | None = None,
        cache_row_groups: int = 2,
    ) -> None:
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r}: use train, validation or test")
        if fit not in FITS:
            raise UsageError(f"unknown fit {fit!r}: use pad, crop or stretch")
        if transform is not None and not callable(transform):
            raise UsageError("transform must be a callable taking the example dict")
        if isinstance(cache_row_groups, bool) or not isinstance(cache_row_groups, int) or (
            cache_row_groups < 1
        ):
            raise UsageError(f"cache_row_groups must be a positive int, not {cache_row_groups!r}")
        self.folder: Folder = folder if isinstance(folder, RemotePath) else location(folder)
        if not self.folder.is_dir():
            raise UsageError(f"{self.folder} is not a dataset version folder")
        self.split = split
        self.image_size = _size(image_size)
        self.fit: Fit = fit
        self.transform = transform
        self.cache_row_groups = cache_row_groups

        manifest = read_manifest(self.folder)
        images = manifest.get("images") or {}
        # Versions written before the images setting hold references only.
        self.mode: str = images.get("mode", "reference")
        if self.mode not in MODES:
            raise UsageError(f"{self.folder}: unknown images mode {self.mode!r} in manifest.json")
        self.label_names: list[str] = [
            str(label["name"]) for label in read_labels(self.folder)["labels"]
        ]

        self._files = split_files(self.folder, split)
        parts = [_read_columns(p, self.mode) for p in self._files]
        table = pa.concat_tables(parts)
        self._tmdb_ids: npt.NDArray[np.int64] = table.column("tmdb_id").to_numpy()
        self._labels = _labels_matrix(table.column("labels"), len(self.label_names))
        self._overview = table.column("overview").combine_chunks()
        self._genres = table.column("genres").combine_chunks()
        self._poster_file = table.column("poster_file").combine_chunks()

        self._posters_dir: Path | None = None
        self._tars: list[Folder] = []
        if self.mode == "embed":
            self._groups = _row_groups(self._files)
        elif self.mode == "webdataset":
            self._tars = _tar_files(self.folder, manifest, split)
            self._members = _index_tars(self._tars, self._tmdb_ids)
        else:
            self._posters_dir = _posters_folder(self.folder, images, posters_dir)
        self._reset_handles()

    # --- the Dataset protocol ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tmdb_ids)

    def __getitem__(self, index: int) -> Any:
        i = self._position(index)
        example: dict[str, Any] = {
            "image": self._image(i),
            "overview": self._overview[i].as_py(),
            "labels": self._labels[i].copy(),
            "genres": self._genres[i].as_py(),
            "tmdb_id": int(self._tmdb_ids[i]),
        }
        return self.transform(example) if self.transform is not None else example

    def __repr__(self) -> str:
        return (
            f"GenreExamples(split={self.split!r}, rows={len(self)}, images={self.mode!r}, "
            f"image_size={self.image_size}, folder={str(self.folder)!r})"
        )

    def image_bytes(self, index: int) -> bytes | None:
        """The encoded image of row ``index`` as stored (None without a poster)."""
        return self._image_bytes(self._position(index))

    def shuffled_indices(self, seed: int) -> list[int]:
        """Every row index once, in a seeded random order that reads each image row group
        once: the row groups in a random order, the rows of each in a random order.

        Pass it as ``DataLoader(..., sampler=examples.shuffled_indices(epoch))`` instead
        of ``shuffle=True`` to train from embedded images without reading a row group per
        item; in the other image modes every order is cheap and this is a plain shuffle.
        """
        rng = np.random.default_rng(seed)
        if self.mode != "embed" or not len(self):
            return [int(i) for i in rng.permutation(len(self))]
        starts = self._groups[0]
        ends = np.append(starts[1:], len(self))
        order: list[int] = []
        for g in rng.permutation(len(starts)):
            order.extend(int(i) for i in starts[g] + rng.permutation(ends[g] - starts[g]))
        return order

    @property
    def tmdb_ids(self) -> npt.NDArray[np.int64]:
        """The TMDB ids of the rows, in row order (a read-only view)."""
        view = self._tmdb_ids.view()
        view.flags.writeable = False
        return view

    # --- pickling: open files and the cache stay in the process that opened them -------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_pid", "_parquet", "_open_tars", "_cache"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_handles()

    def _reset_handles(self) -> None:
        self._pid = os.getpid()
        self._parquet: dict[int, pq.ParquetFile] = {}
        self._open_tars: dict[int, Any] = {}
        self._cache: OrderedDict[int, pa.Array] = OrderedDict()

    def _check_process(self) -> None:
        # A forked DataLoader worker inherits the parent's open files; their shared file
        # offsets would race, so the worker opens its own.
        if self._pid != os.getpid():
            self._reset_handles()

    # --- rows and images ----------------------------------------------------------------

    def _position(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"indices must be integers, not {type(index).__name__}")
        n = len(self)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        return i

    def _image(self, i: int) -> Image.Image | None:
        data = self._image_bytes(i)
        if data is None:
            return None
        return _decode(data, self.image_size, self.fit, what=f"tmdb_id {self._tmdb_ids[i]}")

    def _image_bytes(self, i: int) -> bytes | None:
        self._check_process()
        if self.mode == "embed":
            return self._embedded(i)
        if self.mode == "webdataset":
            return self._tar_member(i)
        return self._poster(i)

    def _embedded(self, i: int) -> bytes | None:
        starts, files, groups = self._groups
        g = int(np.searchsorted(starts, i, side="right")) - 1
        column = self._cache.get(g)
        if column is None:
            f = int(files[g])
            handle = self._parquet.get(f)
            if handle is None:
                source, fs = parquet_source(self._files[f])
                handle = self._parquet[f] = pq.ParquetFile(source, filesystem=fs)
            table = handle.read_row_group(int(groups[g]), columns=[IMAGE])
            column = table.column(IMAGE).combine_chunks().field("bytes")
            self._cache[g] = column
            while len(self._cache) > self.cache_row_groups:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(g)
        value: bytes | None = column[i - int(starts[g])].as_py()
        return value

    def _tar_member(self, i: int) -> bytes | None:
        tar, offset, size = (int(v) for v in self._members[i])
        if tar < 0:
            return None
        path = self._tars[tar]
        if isinstance(path, RemotePath):
            data = path.read_range(offset, size)
        else:
            handle = self._open_tars.get(tar)
            if handle is None:
                handle = self._open_tars[tar] = open(path, "rb")  # noqa: SIM115
            data = os.pread(handle.fileno(), size, offset)
        if len(data) != size:
            raise ReelsetError(f"{self._tars[tar]} is truncated (tmdb_id {self._tmdb_ids[i]})")
        return data

    def _poster(self, i: int) -> bytes | None:
        relpath = self._poster_file[i].as_py()
        if relpath is None:
            return None
        path = Path(self._posters_dir or ".") / relpath
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ReelsetError(
                f"cannot read the poster of tmdb_id {self._tmdb_ids[i]} ({path}): "
                f"{exc.strerror or exc}"
            ) from None


def _size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``(width, height)`` from an int or a pair; UsageError unless positive ints."""
    if image_size is None:
        return None
    values: list[object] = []
    if isinstance(image_size, int):
        values = [image_size, image_size]
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str):
        values = list(image_size)
    sizes = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    if len(values) != 2 or len(sizes) != 2:
        raise UsageError(
            f"image_size must be a positive int or (width, height), not {image_size!r}"
        )
    return (sizes[0], sizes[1])


def _read_columns(path: Folder, mode: str) -> pa.Table:
    """The in-memory columns of one parquet file of a split."""
    source, fs = parquet_source(path)
    try:
        schema = pq.read_schema(source, filesystem=fs)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: the version is incomplete") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if mode == "embed" and IMAGE not in schema.names:
        raise UsageError(f"{path} has no {IMAGE!r} column, yet images mode is embed")
    missing = [c for c in _COLUMNS if c not in schema.names]
    if missing:
        raise UsageError(f"{path} lacks the column(s) {', '.join(missing)}")
    return pq.read_table(source, columns=list(_COLUMNS), filesystem=fs)


def _labels_matrix(column: pa.ChunkedArray, n_labels: int) -> npt.NDArray[np.int8]:
    """The multi-hot labels as one (rows, labels) int8 array."""
    values = column.combine_chunks().flatten() if column.num_chunks else pa.array([], pa.int8())
    matrix = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int8)
    return matrix.reshape(len(column), n_labels)


def _row_groups(
    files: list[Folder],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """For every row group of the split's files, in row order: its first row, its file and
    its index in that file."""
    starts: list[int] = []
    owners: list[int] = []
    indices: list[int] = []
    row = 0
    for f, path in enumerate(files):
        source, fs = parquet_source(path)
        meta = pq.read_metadata(source, filesystem=fs)
        for g in range(meta.num_row_groups):
            starts.append(row)
            owners.append(f)
            indices.append(g)
            row += meta.row_group(g).num_rows
    return (np.array(starts, np.int64), np.array(owners, np.int32), np.array(indices, np.int32))


def _tar_files(folder: Folder, manifest: dict[str, Any], split: str) -> list[Folder]:
    """The split's tar shards: from ``webdataset_files``, else ``data/<split>-*.tar``."""
    listed = (manifest.get("webdataset_files") or {}).get(split)
    if listed:
        return [folder / rel for rel in listed]
    return sorted((folder / "data").glob(f"{split}-*.tar"), key=str)


def _index_tars(
    tars: list[Folder], tmdb_ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """(tar, data offset, size) of each row's image member; tar -1 when it has none."""
    row_of = {int(t): i for i, t in enumerate(tmdb_ids)}
    members = np.full((len(tmdb_ids), 3), -1, dtype=np.int64)
    for t, path in enumerate(tars):
        try:
            with (
                path.open() if isinstance(path, RemotePath) else open(path, "rb") as fh,
                tarfile.open(fileobj=fh, mode="r:") as archive,
            ):
                for info in archive:
                    stem, _, ext = info.name.rpartition("/")[2].partition(".")
                    if not info.isfile() or ext == "json" or not stem.isdigit():
                        continue
                    i = row_of.get(int(stem))
                    if i is not None:
                        members[i] = (t, info.offset_data, info.size)
        except (OSError, tarfile.TarError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    return members


def _posters_folder(
    folder: Folder, images: dict[str, Any], posters_dir: str | Path | None
) -> Path:
    """The posters folder of a reference-mode version (see the module doc)."""
    if posters_dir is not None:
        found = Path(posters_dir)
    elif images.get("posters_dir") and isinstance(folder, Path):
        found = folder / str(images["posters_dir"])
    else:
        from reelset.config import load_settings

        found = load_settings().posters_dir
    if not found.is_dir():
        raise UsageError(
            f"the posters folder {found} does not exist: pass posters_dir= "
            "(the folder poster_file is relative to)"
        )
    return found


def _decode(
    data: bytes, size: tuple[int, int] | None, fit: Fit, *, what: str
) -> Image.Image:
    """Decode an image; with ``size``, RGB and exactly ``size`` by the ``fit`` policy."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if size is None:
            image.load()
            return image
        if fit == "stretch":
            image.draft("RGB", size)
        else:
            # The size the image is scaled to before padding or cropping; a JPEG is
            # decoded at a reduced scale that is still at least that big.
            pick = min if fit == "pad" else max
            scale = pick(size[0] / image.width, size[1] / image.height)
            image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
        rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ReelsetError(f"cannot decode the image of {what}: {exc}") from None
    if fit == "pad":
        return ImageOps.pad(rgb, size, method=Image.Resampling.BICUBIC, color=(0, 0, 0))
    if fit == "crop":
        return ImageOps.fit(rgb, size, method=Image.Resampling.BICUBIC)
    return rgb.resize(size, Image.Resampling.BICUBIC)
