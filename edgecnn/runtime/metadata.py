"""The metadata bundle carried inside every ``.tflite`` edgecnn writes.

A zip archive (stored, not deflated, so any zip reader, including a 60-line Kotlin one, can
read it) is appended to the TFLite flatbuffer. The interpreter ignores trailing bytes, and
``zipfile`` / ``java.util.zip`` find the archive from its end record, the same trick TFLite's
own metadata uses for associated files. The archive holds:

- ``edgecnn.json``: the :class:`Metadata` document (schema ``edgecnn.metadata/1``)
- ``labels.txt``: one label per line, for tools that only want labels

The JSON schema (documented in docs/FORMAT.md) is::

    {"schema": "edgecnn.metadata/1", "edgecnn_version": "0.1.0",
     "task": "classify" | "detect", "name": "...", "arch": "...",
     "labels": ["cat", ...],
     "input": {"height": 96, "width": 96, "channels": 3, "layout": "NHWC",
               "color": "RGB" | "GRAY", "resize": "stretch" | "letterbox",
               "mean": [0.0], "std": [255.0], "pad_value": 114,
               "interpolation": "area" | "linear"},                      # optional
     "output": {"activation": "softmax" | "sigmoid" | "none"},          # classify
     "decoder": {"type": "anchor_free_ltrb", "strides": [8, 16, 32],    # detect
                 "box_output": 0, "score_output": 1,
                 "score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 100},
     "quantization": "int8" | "float32" | "dynamic" | "float16",
     "io": {"inputs": [...], "outputs": [...]},                        # informational
     "flatbuffer_sha256": "64 hex digits"}               # absent in files written before it

The model input is ``x = (pixel - mean) / std`` with ``pixel`` in 0..255, channels in
``color`` order. Types, ranges and lengths of every field are checked on read
(:mod:`edgecnn.runtime.metaschema`); the zip is read defensively (entry count, sizes declared
and inflated, encryption and compression method checked before anything is inflated).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.runtime import metaschema as schema
from edgecnn.runtime.decoders.spec import DecoderSpec
from edgecnn.runtime.task import Task

SCHEMA = "edgecnn.metadata/1"
JSON_NAME = "edgecnn.json"
LABELS_NAME = "labels.txt"
TASKS = schema.TASKS
__all__ = ["DecoderSpec", "InputSpec", "Metadata"]
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_TFLITE_IDENT = b"TFL3"
MAX_ENTRIES = 16
MAX_ENTRY_BYTES = 2 << 20   # edgecnn.json of 65536 labels is ~1 MB
_REWRITE = "re-run 'edgecnn convert' to rewrite it"


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int = 3
    layout: str = "NHWC"
    color: str = "RGB"
    resize: str = "stretch"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    pad_value: int = 114
    # "area": edgecnn's shrink (integer area step + bilinear, DECISIONS "Letterbox resize");
    # "linear": one bilinear resize, what Ultralytics (and most PyTorch pipelines) feed.
    interpolation: str = "area"


@dataclass(frozen=True)
class Metadata:
    task: Task
    labels: tuple[str, ...]
    input: InputSpec
    name: str = "model"
    arch: str = ""
    output_activation: str = "softmax"
    decoder: DecoderSpec | None = None
    quantization: str = ""
    io: dict = field(default_factory=dict)
    edgecnn_version: str = ""
    flatbuffer_sha256: str = ""   # of the flatbuffer it is attached to; "" in files before it

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task.parse(self.task))

    def to_dict(self) -> dict:
        from edgecnn import __version__

        doc = {
            "schema": SCHEMA,
            "edgecnn_version": self.edgecnn_version or __version__,
            "task": self.task.value,
            "name": self.name,
            "arch": self.arch,
            "labels": list(self.labels),
            "input": _input_doc(self.input),
            "quantization": self.quantization,
            "io": self.io,
        }
        if self.task == Task.CLASSIFY:
            doc["output"] = {"activation": self.output_activation}
        if self.decoder is not None:
            doc["decoder"] = self.decoder.to_dict()
        if self.flatbuffer_sha256:
            doc["flatbuffer_sha256"] = self.flatbuffer_sha256
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "Metadata":
        """Validate a metadata document against the schema (:mod:`metaschema`); raise
        UsageError naming the first field that is missing, of the wrong type or out of range."""
        if not isinstance(doc, dict):
            raise UsageError("metadata is not a JSON object", schema.HINT)
        if doc.get("schema") != SCHEMA:
            raise UsageError(f"unsupported metadata schema {schema.show(doc.get('schema'))}",
                             f"this edgecnn reads {SCHEMA}; re-run 'edgecnn convert'")
        task = schema.text(doc.get("task"), "task", choices=schema.TASKS)
        labels = schema.labels(doc.get("labels"))
        inp = InputSpec(**schema.input_fields(doc))
        decoder = DecoderSpec(**schema.decoder_fields(doc)) if "decoder" in doc else None
        if task == Task.DETECT and decoder is None:
            raise UsageError("detection metadata has no 'decoder' section", schema.HINT)
        activation = "softmax"
        if "output" in doc:
            out = schema.section(doc, "output", ("activation",), ())
            activation = schema.text(out.get("activation", "softmax"), "output.activation",
                                     choices=schema.ACTIVATIONS)
        return cls(
            task=Task(task), labels=labels, input=inp,
            name=schema.text(doc.get("name", "model"), "name"),
            arch=schema.text(doc.get("arch", ""), "arch"),
            output_activation=activation, decoder=decoder,
            quantization=schema.text(doc.get("quantization", ""), "quantization", 64),
            io=schema.io_section(doc.get("io")),
            edgecnn_version=schema.text(doc.get("edgecnn_version", ""), "edgecnn_version", 64),
            flatbuffer_sha256=schema.checksum(doc.get("flatbuffer_sha256")),
        )

    def replace(self, **changes) -> "Metadata":
        from dataclasses import replace

        return replace(self, **changes)


def _input_doc(spec: InputSpec) -> dict:
    """The ``input`` section; ``interpolation`` only when not the default, so files without
    the field (and readers that predate it) are unchanged."""
    doc = _listify(asdict(spec))
    if doc["interpolation"] == "area":
        del doc["interpolation"]
    return doc


def _listify(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def split_bundle(data: bytes) -> tuple[bytes, bytes | None]:
    """Split file bytes into (flatbuffer, appended zip or None)."""
    pos = data.rfind(_EOCD, max(0, len(data) - 65536 - _EOCD_SIZE))
    if pos < 0 or pos + _EOCD_SIZE > len(data):
        return data, None
    size_cd, offset_cd = struct.unpack("<II", data[pos + 12:pos + 20])
    start = pos - size_cd - offset_cd
    if start == 0 and size_cd >= 46 and data[offset_cd:offset_cd + 4] == b"PK\x01\x02":
        # Offsets counted from the start of the file, not of the zip: what Python's zipfile
        # writes when it appends to a model in "a" mode (Ultralytics' LiteRT exports). The
        # zip then starts at its first entry's local header.
        start = struct.unpack("<I", data[offset_cd + 42:offset_cd + 46])[0]
    if start <= 0 or start >= pos or data[start:start + 4] != b"PK\x03\x04":
        return data, None
    return data[:start], data[start:]


def flatbuffer_sha256(flatbuffer: bytes) -> str:
    return hashlib.sha256(flatbuffer).hexdigest()


def attach(model: bytes, metadata: Metadata, extra: dict[str, bytes] | None = None) -> bytes:
    """Return the flatbuffer with a fresh metadata bundle appended (an old one is replaced).

    The metadata records the flatbuffer's SHA-256, which readers verify on load. ``extra``
    entries (another tool's metadata, e.g. Ultralytics' ``metadata.json``) are stored after
    edgecnn's own.
    """
    flatbuffer, _ = split_bundle(model)
    metadata = metadata.replace(flatbuffer_sha256=flatbuffer_sha256(flatbuffer))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(JSON_NAME, json.dumps(metadata.to_dict(), indent=1))
        zf.writestr(LABELS_NAME, "\n".join(metadata.labels) + "\n")
        for name, data in (extra or {}).items():
            if name not in (JSON_NAME, LABELS_NAME):
                zf.writestr(name, data)
    return flatbuffer + buf.getvalue()


class Checksum(str, Enum):
    """How a model's flatbuffer compares with the SHA-256 in its metadata."""

    VERIFIED = "verified"
    MISMATCH = "mismatch"
    ABSENT = "absent"        # no metadata, or metadata written before checksums
    SKIPPED = "skipped"      # --no-verify


def checksum_status(metadata: Metadata | None, flatbuffer: bytes) -> Checksum:
    if metadata is None or not metadata.flatbuffer_sha256:
        return Checksum.ABSENT
    if hmac.compare_digest(metadata.flatbuffer_sha256, flatbuffer_sha256(flatbuffer)):
        return Checksum.VERIFIED
    return Checksum.MISMATCH


def read(data: bytes) -> Metadata | None:
    """The metadata of a model's bytes, or None when it carries none. Invalid -> UsageError."""
    doc = read_document(data)
    return None if doc is None else Metadata.from_dict(doc)


def read_document(data: bytes) -> dict | None:
    """The parsed ``edgecnn.json`` of a model's bytes (not yet checked against the schema)."""
    _, bundle = split_bundle(data)
    if bundle is None:
        return None
    raw = _read_entry(bundle, JSON_NAME)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_float=_finite_float,
                          parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise UsageError(f"the model's {JSON_NAME} is nested too deeply", _REWRITE) from None
    except (UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"the model's {JSON_NAME} is not valid JSON: {_line(err)}",
                         _REWRITE) from None


def read_bundle_entry(bundle: bytes, name: str) -> bytes | None:
    """The bytes of entry ``name`` of a model's trailing zip (None if absent), read with the
    same checks as ``edgecnn.json``; a damaged zip is a UsageError."""
    return _read_entry(bundle, name)


def _read_entry(bundle: bytes, name: str) -> bytes | None:
    """One entry of the zip, checked before anything is inflated: at most MAX_ENTRIES, no
    duplicate names or encryption, stored or deflated only, declared and actual size capped."""
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(infos) > MAX_ENTRIES:
                raise _corrupt(f"it has {len(infos)} entries (at most {MAX_ENTRIES})")
            if len(set(names)) != len(names):
                raise _corrupt("it has duplicate entry names")
            for info in infos:
                _check_entry(info)
            if name not in names:
                return None
            with zf.open(name) as fh:
                raw = fh.read(MAX_ENTRY_BYTES + 1)
            if len(raw) > MAX_ENTRY_BYTES:
                raise _corrupt(f"{name} inflates to more than {MAX_ENTRY_BYTES} bytes")
            return raw
    except UsageError:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError,
            OverflowError, struct.error, EOFError, OSError, UnicodeDecodeError) as err:
        raise _corrupt(f"{type(err).__name__}: {_line(err)}") from None


def _check_entry(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise _corrupt(f"entry {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _corrupt(f"entry {info.filename!r} uses compression method {info.compress_type} "
                       "(edgecnn writes stored entries)")
    if info.file_size > MAX_ENTRY_BYTES:
        raise _corrupt(f"entry {info.filename!r} declares {info.file_size} bytes "
                       f"(at most {MAX_ENTRY_BYTES})")


def _corrupt(why: str) -> UsageError:
    return UsageError(f"the model's metadata bundle is corrupt: {why}", _REWRITE)


def _line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list) -> dict:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("an object repeats a key")
    return doc


def has_edgecnn_metadata(path: str | os.PathLike) -> bool:
    """Whether the file ends in an edgecnn metadata bundle (reads only its tail)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536 - _EOCD_SIZE))
            tail = fh.read()
    except OSError:
        return False
    pos = tail.rfind(_EOCD)
    return pos >= 0 and JSON_NAME.encode() in tail[:pos]


def read_model_file(path: str | os.PathLike) -> bytes:
    """Read a ``.tflite`` file, checking that it is a TFLite flatbuffer at all."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file not found: {path}", "check the path")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != _TFLITE_IDENT:
        raise UsageError(f"{path} is not a TFLite model (no TFL3 identifier)",
                         "pass a .tflite file written by 'edgecnn convert'")
    return data
