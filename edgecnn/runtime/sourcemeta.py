"""What a model file says about itself: input layout, Ultralytics' and ONNX's metadata keys.

Device side (no framework): ``edgecnn predict``/``camera``/``eval`` read Ultralytics' own
``.tflite`` exports with it, and the converters read ONNX ``metadata_props`` with it.
Ultralytics writes some values as Python literals (``names = {0: 'kangaroo'}``, ``imgsz =
[256, 256]``); they are read with :func:`ast.literal_eval`, which evaluates literals only, never
code.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from edgecnn.errors import UsageError

ULTRALYTICS_JSON = "metadata.json"


class Layout(str, Enum):
    """Where the channel axis of a 4-d image input is."""

    NCHW = "NCHW"
    NHWC = "NHWC"

    @classmethod
    def parse(cls, value: str | Layout) -> Layout:
        try:
            return cls(str(getattr(value, "value", value)).upper())
        except ValueError:
            raise UsageError(f"unknown input layout {value!r}", "choose NCHW or NHWC") from None


@dataclass(frozen=True)
class ImageInput:
    """The model's one image input: ``shape`` as the source declares it, batch first."""

    name: str
    shape: tuple[int, ...]
    layout: Layout

    @property
    def hwc(self) -> tuple[int, int, int]:
        if self.layout is Layout.NCHW:
            return self.shape[2], self.shape[3], self.shape[1]
        return self.shape[1], self.shape[2], self.shape[3]


def image_input(name: str, shape: Sequence, layout: str | Layout | None = None) -> ImageInput:
    """Check a 4-d image input and find its layout (the channel axis holds 1 or 3).

    Args:
        name: the input's name in the source model.
        shape: its declared shape; a symbolic batch dimension becomes 1.
        layout: ``--layout`` when given; it must agree with the shape.
    """
    dims = [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None for d in shape]
    if len(dims) != 4:
        raise UsageError(f"input {name!r} has shape {list(shape)}; edgecnn converts models "
                         "with one 4-d image input", "export the model with a fixed NCHW or "
                         "NHWC image input")
    dims[0] = dims[0] or 1
    if dims[0] != 1 or any(d is None for d in dims[1:]):
        raise UsageError(f"input {name!r} has shape {list(shape)}: the batch must be 1 and "
                         "height, width and channels fixed",
                         "re-export with a fixed input size (Ultralytics: dynamic=False)")
    fixed = tuple(int(d or 0) for d in dims)   # every side is known from here on
    nchw_ok, nhwc_ok = fixed[1] in (1, 3), fixed[3] in (1, 3)
    if layout is not None:
        want = Layout.parse(layout)
        if (want is Layout.NCHW and not nchw_ok) or (want is Layout.NHWC and not nhwc_ok):
            raise UsageError(f"--layout {want.value} does not fit input {name!r} of shape "
                             f"{dims}: its {'second' if want is Layout.NCHW else 'last'} axis "
                             "is not 1 or 3 channels", "drop --layout or pass the other one")
        return ImageInput(name, fixed, want)
    if nchw_ok and not nhwc_ok:
        return ImageInput(name, fixed, Layout.NCHW)
    if nhwc_ok and not nchw_ok:
        return ImageInput(name, fixed, Layout.NHWC)
    if nchw_ok and nhwc_ok:
        raise UsageError(f"input {name!r} of shape {dims} could be NCHW or NHWC",
                         "pass --layout NCHW or --layout NHWC")
    raise UsageError(f"input {name!r} of shape {dims} is not an image with 1 or 3 channels "
                     "in NCHW or NHWC order", "export the model with an RGB or grey image input")


@dataclass(frozen=True)
class SourceMetadata:
    """What the source file says about itself (all optional)."""

    task: str | None = None            # "classify" | "detect"
    labels: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    stride: int | None = None
    end2end: bool | None = None
    producer: str = ""
    raw: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"task": self.task, "labels": list(self.labels) if self.labels else None,
                "imgsz": list(self.imgsz) if self.imgsz else None, "stride": self.stride,
                "end2end": self.end2end, "producer": self.producer}


ULTRALYTICS_TASKS = {"detect": "detect", "classify": "classify"}


def _value(value):
    """A Python/JSON literal written as text becomes its value; other text stays text."""
    if not isinstance(value, str) or len(value) > 1_000_000:
        return value
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def parse_props(props: Mapping[str, str]) -> SourceMetadata:
    """Metadata from key/value pairs (ONNX ``metadata_props`` or Ultralytics' JSON).

    Understands Ultralytics' keys (``names``, ``imgsz``, ``task``, ``stride``, ``end2end``,
    ``author``) and generic ones (``labels`` as a JSON/Python list, ``task``).
    """
    raw = {str(k): v if isinstance(v, str) else repr(v) for k, v in props.items()}
    get = {k: _value(v) for k, v in props.items()}
    labels = None
    names = get.get("names", get.get("labels"))
    if isinstance(names, dict):
        try:
            labels = tuple(str(names[k]) for k in sorted(names, key=int))
        except (TypeError, ValueError):
            labels = None
    elif isinstance(names, (list, tuple)):
        labels = tuple(str(n) for n in names)
    imgsz = get.get("imgsz")
    if isinstance(imgsz, int):
        imgsz = (imgsz, imgsz)
    imgsz = tuple(int(v) for v in imgsz) if isinstance(imgsz, (list, tuple)) and \
        len(imgsz) == 2 else None
    task = get.get("task")
    task = ULTRALYTICS_TASKS.get(str(task)) if task is not None else None
    stride = get.get("stride")
    stride = int(stride) if isinstance(stride, (int, float)) else None
    end2end = get.get("end2end")
    author = str(props.get("author", ""))
    return SourceMetadata(task=task, labels=labels, imgsz=imgsz, stride=stride,
                          end2end=end2end if isinstance(end2end, bool) else None,
                          producer="ultralytics" if "ultralytics" in author.lower() else "",
                          raw=raw)


def ultralytics_props(bundle: bytes | None) -> dict | None:
    """The JSON object Ultralytics appends to its ``.tflite`` exports (``metadata.json`` in a
    trailing zip, read with the metadata bundle's own size and entry checks), or None."""
    from edgecnn.runtime import metadata as md

    if bundle is None:
        return None
    try:
        raw = md.read_bundle_entry(bundle, ULTRALYTICS_JSON)
        doc = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (UsageError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None
