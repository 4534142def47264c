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
               "mean": [0.0], "std": [255.0], "pad_value": 114},
     "output": {"activation": "softmax" | "sigmoid" | "none"},          # classify
     "decoder": {"type": "anchor_free_ltrb", "strides": [8, 16, 32],    # detect
                 "box_output": 0, "score_output": 1,
                 "score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 100},
     "quantization": "int8" | "float32" | "dynamic" | "float16",
     "io": {"inputs": [...], "outputs": [...]}}                        # informational

The model input is ``x = (pixel - mean) / std`` with ``pixel`` in 0..255, channels in
``color`` order.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecnn.errors import UsageError

SCHEMA = "edgecnn.metadata/1"
JSON_NAME = "edgecnn.json"
LABELS_NAME = "labels.txt"
TASKS = ("classify", "detect")
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_TFLITE_IDENT = b"TFL3"


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


@dataclass(frozen=True)
class DecoderSpec:
    type: str = "anchor_free_ltrb"
    strides: tuple[int, ...] = (8, 16, 32)
    box_output: int = 0
    score_output: int = 1
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100

    def to_dict(self) -> dict:
        return _listify(asdict(self))

    @classmethod
    def from_dict(cls, doc: dict) -> "DecoderSpec":
        """Read a decoder section; UsageError naming unknown or malformed fields."""
        if not isinstance(doc, dict):
            raise UsageError("the decoder section is not a JSON object")
        try:
            return cls(**_tuplify(doc))
        except TypeError as err:
            raise UsageError(f"the decoder section is malformed: {err}") from None


@dataclass(frozen=True)
class Metadata:
    task: str
    labels: tuple[str, ...]
    input: InputSpec
    name: str = "model"
    arch: str = ""
    output_activation: str = "softmax"
    decoder: DecoderSpec | None = None
    quantization: str = ""
    io: dict = field(default_factory=dict)
    edgecnn_version: str = ""

    def to_dict(self) -> dict:
        from edgecnn import __version__

        doc = {
            "schema": SCHEMA,
            "edgecnn_version": self.edgecnn_version or __version__,
            "task": self.task,
            "name": self.name,
            "arch": self.arch,
            "labels": list(self.labels),
            "input": _listify(asdict(self.input)),
            "quantization": self.quantization,
            "io": self.io,
        }
        if self.task == "classify":
            doc["output"] = {"activation": self.output_activation}
        if self.decoder is not None:
            doc["decoder"] = _listify(asdict(self.decoder))
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> "Metadata":
        """Validate a metadata document; raise UsageError naming the first problem."""
        if not isinstance(doc, dict):
            raise UsageError("metadata is not a JSON object")
        if doc.get("schema") != SCHEMA:
            raise UsageError(f"unsupported metadata schema {doc.get('schema')!r}",
                             f"this edgecnn reads {SCHEMA}; re-run 'edgecnn convert'")
        task = doc.get("task")
        if task not in TASKS:
            raise UsageError(f"metadata task {task!r} is not one of {', '.join(TASKS)}")
        labels = doc.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise UsageError("metadata 'labels' must be a non-empty list of strings")
        try:
            inp = InputSpec(**_tuplify(doc["input"]))
            decoder = DecoderSpec(**_tuplify(doc["decoder"])) if doc.get("decoder") else None
        except (KeyError, TypeError) as err:
            raise UsageError(f"metadata 'input' or 'decoder' is malformed: {err}") from None
        if inp.height <= 0 or inp.width <= 0 or inp.channels not in (1, 3):
            raise UsageError(f"metadata input size {inp.height}x{inp.width}x{inp.channels} is invalid")
        if inp.resize not in ("stretch", "letterbox") or inp.color not in ("RGB", "BGR", "GRAY"):
            raise UsageError(f"metadata input resize/color {inp.resize}/{inp.color} is invalid")
        if task == "detect" and decoder is None:
            raise UsageError("detection metadata has no 'decoder' section")
        return cls(
            task=task, labels=tuple(labels), input=inp, name=str(doc.get("name", "model")),
            arch=str(doc.get("arch", "")),
            output_activation=str(doc.get("output", {}).get("activation", "softmax")),
            decoder=decoder, quantization=str(doc.get("quantization", "")),
            io=doc.get("io", {}) or {}, edgecnn_version=str(doc.get("edgecnn_version", "")),
        )

    def replace(self, **changes) -> "Metadata":
        from dataclasses import replace

        return replace(self, **changes)


def _listify(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _tuplify(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def split_bundle(data: bytes) -> tuple[bytes, bytes | None]:
    """Split file bytes into (flatbuffer, appended zip or None)."""
    pos = data.rfind(_EOCD, max(0, len(data) - 65536 - _EOCD_SIZE))
    if pos < 0 or pos + _EOCD_SIZE > len(data):
        return data, None
    size_cd, offset_cd = struct.unpack("<II", data[pos + 12:pos + 20])
    start = pos - size_cd - offset_cd
    if start <= 0 or data[start:start + 4] != b"PK\x03\x04":
        return data, None
    return data[:start], data[start:]


def attach(model: bytes, metadata: Metadata) -> bytes:
    """Return the flatbuffer with a fresh metadata bundle appended (an old one is replaced)."""
    flatbuffer, _ = split_bundle(model)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(JSON_NAME, json.dumps(metadata.to_dict(), indent=1))
        zf.writestr(LABELS_NAME, "\n".join(metadata.labels) + "\n")
    return flatbuffer + buf.getvalue()


def read(data: bytes) -> Metadata | None:
    """The metadata of a model's bytes, or None when it carries none. Invalid -> UsageError."""
    _, bundle = split_bundle(data)
    if bundle is None:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            if JSON_NAME not in zf.namelist():
                return None
            doc = json.loads(zf.read(JSON_NAME).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"the model's metadata bundle is corrupt: {err}",
                         "re-run 'edgecnn convert' to rewrite it") from None
    return Metadata.from_dict(doc)


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
