"""Copy a converted ``.tflite`` into the Android demo app, after checking it the way the app will.

The app (``android_demo/``) reads everything it needs from the model's metadata bundle (task,
labels, input size, normalization, decoder), so exporting is: refuse anything the app would
reject on the phone, then place the file in ``app/src/main/assets/`` atomically. A failed
export writes nothing.

Example:
    result = export_android("runs/det/model_int8.tflite")
    print(result.destination)   # .../android_demo/app/src/main/assets/model.tflite
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.fsutil import check_output_file, write_atomic
from edgecnn.runtime import metadata as md
from edgecnn.runtime.task import Task

APP_TASKS = (Task.CLASSIFY, Task.DETECT)
# The decoders android_demo/core registers (Decoders.kt); a test keeps the two lists equal.
APP_DECODERS = ("anchor_free_ltrb", "ssd_postprocess", "ultralytics_end2end", "ultralytics_yolo")
APP_DTYPES = ("float32", "int8", "uint8")
ASSETS = Path("app") / "src" / "main" / "assets"
DEFAULT_NAME = "model.tflite"


@dataclass(frozen=True)
class AndroidExport:
    """What was exported and where."""

    model: Path
    destination: Path
    size_bytes: int
    task: Task
    labels: int
    input_shape: tuple[int, ...]
    input_dtype: str
    quantization: str

    def to_dict(self) -> dict:
        return {"model": str(self.model), "destination": str(self.destination),
                "size_bytes": self.size_bytes, "task": self.task.value, "labels": self.labels,
                "input_shape": list(self.input_shape), "input_dtype": self.input_dtype,
                "quantization": self.quantization}


def default_app_dir() -> Path:
    """``android_demo`` of the source checkout edgecnn runs from, else ``./android_demo``."""
    checkout = Path(__file__).resolve().parents[2] / "android_demo"
    return checkout if (checkout / "app").is_dir() else Path("android_demo")


def check_model(path: str | os.PathLike) -> tuple[bytes, md.Metadata, tuple[int, ...], str]:
    """Validate a model for the app; returns ``(bytes, metadata, input shape, input dtype)``.

    Raises:
        UsageError: naming the first problem the app would hit (no metadata, unsupported task or
            decoder, tensors that do not match the metadata, a model the interpreter refuses).
    """
    from edgecnn.runtime.model import TFLiteModel

    path = Path(path)
    data = md.read_model_file(path)
    meta = md.read(data)
    if meta is None:
        raise UsageError(f"{path} carries no edgecnn metadata, so the app cannot know its task, "
                         "labels or normalization",
                         "convert the model with 'edgecnn convert', which appends it")
    if meta.task not in APP_TASKS:
        raise UsageError(f"the Android app does not support task {meta.task.value!r}",
                         f"it runs {', '.join(t.value for t in APP_TASKS)} models")
    if meta.task == Task.DETECT and (meta.decoder is None
                                     or meta.decoder.type not in APP_DECODERS):
        kind = getattr(meta.decoder, "type", None)
        raise UsageError(f"the Android app does not decode {kind!r} detection heads",
                         f"it decodes {', '.join(APP_DECODERS)}")
    if meta.input.layout != "NHWC":
        # The app writes pixels channels last; either interpolation is fine: it resizes every
        # frame with one filtered (bilinear) bitmap draw.
        raise UsageError(f"the Android app feeds NHWC images; {path} wants {meta.input.layout}",
                         "convert the model with 'edgecnn convert', which writes NHWC")
    model = TFLiteModel(data, threads=1, metadata=meta)
    if len(model.inputs) != 1:
        raise UsageError(f"{path} has {len(model.inputs)} inputs; the app feeds exactly one image")
    info = model.input
    dtype = np.dtype(info.dtype).name
    shape = tuple(int(d) for d in info.shape)
    want = (1, meta.input.height, meta.input.width, meta.input.channels)
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise UsageError(f"{path} input shape {list(shape)} is not 1 x H x W x 1|3 (NHWC)",
                         "export the model with a batch-1 NHWC image input")
    if shape != want:
        raise UsageError(f"{path} input shape {list(shape)} does not match its metadata "
                         f"{list(want)}", "re-run 'edgecnn convert' to rewrite the metadata")
    for i, t in enumerate([info, *model.outputs]):
        name = np.dtype(t.dtype).name
        if name not in APP_DTYPES:
            what = "input" if i == 0 else f"output {i - 1}"
            raise UsageError(f"{path} {what} is {name}; the app handles {', '.join(APP_DTYPES)}")
    # The runtime's own runner checks outputs against labels / decoder exactly as the Kotlin
    # app does (same shapes, same anchor count).
    from edgecnn.runtime import load

    load(model, metadata=meta)
    return data, meta, shape, dtype


def export_android(model_path: str | os.PathLike, app_dir: str | os.PathLike | None = None,
                   name: str = DEFAULT_NAME, overwrite: bool = False) -> AndroidExport:
    """Check ``model_path`` and copy it to ``APP/app/src/main/assets/NAME``.

    Args:
        model_path: a ``.tflite`` written by ``edgecnn convert``.
        app_dir: the Android project (``android_demo``); default: :func:`default_app_dir`.
        name: file name in the assets; the app loads ``model.tflite`` first, else the only
            ``.tflite`` there.
        overwrite: replace an asset of that name that edgecnn did not write (a model without
            edgecnn metadata); an earlier export is replaced without it.
    """
    if not name.endswith(".tflite") or Path(name).name != name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain file name ending in .tflite",
                         f"for example --name {DEFAULT_NAME}")
    app = Path(app_dir) if app_dir is not None else default_app_dir()
    if not (app / "app" / "src" / "main").is_dir():
        raise UsageError(f"{app} does not look like the edgecnn Android app (no app/src/main)",
                         "pass --app PATH/TO/android_demo")
    destination = app / ASSETS / name
    data, meta, shape, dtype = check_model(model_path)
    check_output_file(destination, overwrite, "--name")
    try:
        write_atomic(destination, data)
    except OSError as err:
        raise UsageError(f"cannot write {destination}: {err.strerror or err}",
                         "check the app folder's permissions") from None
    return AndroidExport(model=Path(model_path), destination=destination, size_bytes=len(data),
                         task=meta.task, labels=len(meta.labels), input_shape=shape,
                         input_dtype=dtype, quantization=meta.quantization)
