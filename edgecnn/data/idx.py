"""Reader and writer for the idx format of MNIST and Fashion-MNIST (gzip-compressed or raw).

The format is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the data. Only unsigned bytes (type 0x08) occur in the
datasets we read, so other type codes are rejected with a clear message.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from edgecnn import safeio
from edgecnn.errors import UsageError

# The Fashion-MNIST training images are 47 MB (26 MB gzipped); a gzip may inflate to at most
# INFLATE_RATIO times its size (or INFLATE_MIN), so a small bomb stays small.
FILE_LIMIT = 2 << 30
INFLATE_RATIO = 50
INFLATE_MIN = 256 << 20

# Debian's dataset-fashion-mnist and the original distribution use these names.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (``.gz`` or raw) into a uint8 array of its declared shape."""
    path = Path(path)
    try:
        raw = safeio.read_bytes(path, FILE_LIMIT)
        if raw[:2] == b"\x1f\x8b":
            limit = max(INFLATE_MIN, INFLATE_RATIO * len(raw))
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(limit + 1)
            if len(raw) > limit:
                raise UsageError(f"{path} inflates to more than {limit >> 20} MB, "
                                 f"{INFLATE_RATIO} times its size: not an idx dataset",
                                 "re-download the dataset files")
    except (OSError, EOFError, zlib.error) as err:
        raise UsageError(f"cannot read idx file {path}: {safeio.reason(err)}",
                         "re-download the dataset files") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UsageError(f"{path} is not an idx file (bad magic number)",
                         "pass MNIST-style idx files")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise UsageError(f"{path}: idx type 0x{dtype_code:02x} is not supported (only uint8)")
    header = 4 + 4 * ndim
    if ndim == 0:
        raise UsageError(f"{path} declares 0 dimensions", "pass MNIST-style idx files")
    if len(raw) < header:
        raise UsageError(f"{path} is truncated (header)", "re-download the dataset files")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(shape)   # exact: numpy's product of uint32s can wrap around
    if len(raw) - header < count:
        raise UsageError(f"{path} is truncated: {len(raw) - header} of {count} bytes",
                         "re-download the dataset files")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The idx bytes (uncompressed) of a uint8 array, the inverse of :func:`read_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"an idx file holds 1 to 255 dimensions, not {array.ndim}")
    return (bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def write_idx_folder(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                     labels: tuple[str, ...]) -> None:
    """Write ``{"train": (x, y), "test": (x, y)}`` as gzipped idx files and ``labels.txt`` into
    the existing ``folder``: a dataset :func:`load_idx_folder` (and ``--data FOLDER``) reads
    with numpy alone, where no scikit-learn or TensorFlow is installed.

    Images are N x H x W x 1 (stored N x H x W, as MNIST is) or N x H x W x C; labels must fit
    in a byte.
    """
    for split, (x, y) in splits.items():
        y = np.asarray(y)
        if len(y) and (y.min() < 0 or y.max() > 255):
            raise ValueError("idx labels are bytes: class ids must be within 0..255")
        x = np.asarray(x)
        images, names = (x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x), SPLIT_FILES[split]
        for name, array in ((names[0], images), (names[1], y)):
            # mtime 0: the same data gives the same bytes
            (folder / f"{name}.gz").write_bytes(gzip.compress(encode_idx(array), mtime=0))
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in labels),
                                       encoding="utf-8")


def find_split(folder: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) paths of ``split`` in ``folder`` (raw or .gz), or None if absent."""
    found = []
    for stem in SPLIT_FILES[split]:
        for candidate in (folder / stem, folder / f"{stem}.gz",
                          folder / stem.replace("-idx", ".idx"),
                          folder / f"{stem.replace('-idx', '.idx')}.gz"):
            if safeio.exists(candidate):     # a FIFO here is refused when read, not skipped
                found.append(candidate)
                break
        else:
            return None
    return found[0], found[1]


def has_idx(folder: Path) -> bool:
    return folder.is_dir() and find_split(folder, "train") is not None


def load_idx_folder(folder: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (x, y), "test": (x, y)} from a folder of idx files; ``test`` may be absent."""
    folder = Path(folder)
    out = {}
    for split in SPLIT_FILES:
        paths = find_split(folder, split)
        if paths is None:
            continue
        x, y = read_idx(paths[0]), read_idx(paths[1])
        if x.ndim not in (3, 4) or y.ndim != 1:
            raise UsageError(f"{paths[0]}: expected N x H x W images and N labels, got "
                             f"shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise UsageError(f"{folder}: {split} has {len(x)} images but {len(y)} labels",
                             "the image and label files do not belong together")
        out[split] = (x if x.ndim == 4 else x[..., None], y.astype(np.int64))
    if "train" not in out:
        raise UsageError(f"{folder} has no train-images-idx3-ubyte[.gz] and "
                         "train-labels-idx1-ubyte[.gz]", "pass a folder of MNIST-style idx files")
    return out
