"""What ``edgecnn convert`` accepts: one table of source formats, and sniffing a path into one.

Every source format is a row of :data:`FORMATS`: what it is, how it is recognized, which
recipes and input layouts it supports, what metadata it carries, which route turns it into a
``.tflite`` and what that route needs installed. ``edgecnn convert --help``, the errors for an
unknown file and the README's table are all made from it (Ultralytics' ``export_formats()``
does the same for its exporters).

Formats are recognized by content, not only by suffix: a ``.pt`` that is a pickled checkpoint
(``torch.save`` of a whole model) is refused because loading it runs code from the file, and a
``.pt2`` is an ExportedProgram only if its archive says so.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from converters.recipes import Quant
from edgecnn.errors import UsageError

ALL_QUANT = tuple(Quant)
EXPORT_HINT = ("export it to ONNX (torch.onnx.export, or 'yolo export format=onnx') or to an "
               "ExportedProgram (torch.export.save(torch.export.export(model, (x,)), "
               "'model.pt2')) and convert that")


@dataclass(frozen=True)
class SourceFormat:
    """One row of the table: a source format and what converting it involves."""

    name: str
    title: str
    suffixes: tuple[str, ...]
    quant: tuple[Quant, ...]
    layouts: tuple[str, ...]
    metadata: str
    route: str
    extra: str
    packages: tuple[str, ...]
    needs_tensorflow: bool

    def row(self) -> dict:
        return {"format": self.name, "title": self.title, "suffixes": list(self.suffixes),
                "quant": [q.value for q in self.quant], "layouts": list(self.layouts),
                "metadata": self.metadata, "route": self.route, "extra": self.extra,
                "packages": list(self.packages), "needs_tensorflow": self.needs_tensorflow}


FORMATS: tuple[SourceFormat, ...] = (
    SourceFormat("edgecnn", "run directory or .keras file written by 'edgecnn train'",
                 ("run dir", ".keras"), ALL_QUANT, ("NHWC",), "run.json (everything)",
                 "Keras -> SavedModel -> TFLiteConverter", "train", ("tensorflow",), True),
    SourceFormat("keras", "Keras 3 model edgecnn did not train", (".keras",), ALL_QUANT,
                 ("NHWC",), "none (pass --task/--labels)",
                 "Keras (safe_mode) -> SavedModel -> TFLiteConverter", "train",
                 ("tensorflow",), True),
    SourceFormat("savedmodel", "TensorFlow SavedModel folder", ("folder with saved_model.pb",),
                 ALL_QUANT, ("NHWC",), "none (pass --task/--labels)", "TFLiteConverter",
                 "train", ("tensorflow",), True),
    SourceFormat("onnx", "ONNX model", (".onnx",), ALL_QUANT, ("NCHW", "NHWC"),
                 "ONNX metadata_props (Ultralytics: names, imgsz, task, stride, end2end)",
                 "onnx2tf >= 2.4 flatbuffer_direct, its own command (NCHW -> NHWC); "
                 "quantized by ai-edge-quantizer", "convert",
                 ("onnx", "onnxruntime", "ai_edge_quantizer"), False),
    SourceFormat("pt2", "PyTorch ExportedProgram (torch.export.save)", (".pt2",), ALL_QUANT,
                 ("NCHW", "NHWC"), "none (pass --task/--labels)",
                 "torch.export.load (no pickle) -> litert-torch (NHWC I/O); quantized by "
                 "ai-edge-quantizer", "convert", ("torch", "litert_torch", "ai_edge_quantizer"),
                 False),
    SourceFormat("tflite", "existing .tflite (float: re-quantized; otherwise kept as is)",
                 (".tflite",), ALL_QUANT, ("NCHW", "NHWC"),
                 "edgecnn.json, Ultralytics' metadata.json",
                 "float model re-quantized by ai-edge-quantizer, or kept with metadata attached",
                 "convert", ("ai_edge_quantizer",), False),
)

BY_NAME = {f.name: f for f in FORMATS}


def get(name: str) -> SourceFormat:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown source format {name!r}",
                         f"choose one of: {', '.join(BY_NAME)}") from None


def table_text() -> str:
    """The table as plain text, for ``--help`` and the README."""
    lines = []
    for f in FORMATS:
        tf = "needs TensorFlow" if f.needs_tensorflow else "no TensorFlow"
        lines.append(f"{f.name:<10} {', '.join(f.suffixes):<28} {f.route} "
                     f"[{'/'.join(f.layouts)}; {tf}; pip install 'edgecnn[{f.extra}]']")
    return "\n".join(lines)


def _known_suffixes() -> str:
    return ", ".join(sorted({s for f in FORMATS for s in f.suffixes if s.startswith(".")}))


def detect(path: str | os.PathLike) -> SourceFormat:
    """The format of ``path``, by its content; UsageError for what edgecnn cannot convert.

    Example:
        detect("yolo11n.onnx").name     # "onnx"
        detect("yolo11n.pt")            # UsageError: a pickled PyTorch checkpoint ...
    """
    p = Path(path)
    if p.is_dir():   # a folder that is no SavedModel is read (and judged) as a run directory
        return BY_NAME["savedmodel" if (p / "saved_model.pb").is_file() else "edgecnn"]
    if not p.is_file():
        raise UsageError(f"model not found: {p}", "check the path")
    if p.suffix.lower() == ".keras":   # Keras' own loader says what is wrong with a bad one
        return BY_NAME["edgecnn" if (p.parent / "run.json").is_file() else "keras"]
    with open(p, "rb") as fh:
        head = fh.read(16)
    if head[4:8] == b"TFL3":
        return BY_NAME["tflite"]
    if head[:2] == b"PK":
        return _detect_zip(p)
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        raise _pickle_error(p)
    if head[:4] == b"\x89HDF":
        raise UsageError(f"{p} is a legacy Keras HDF5 file, which edgecnn does not load",
                         "save the model as .keras with Keras 3 (model.save('model.keras'))")
    if p.suffix.lower() == ".onnx":
        return BY_NAME["onnx"]
    raise UsageError(f"cannot tell the format of {p}",
                     f"edgecnn converts {_known_suffixes()}, SavedModel folders and run "
                     "directories; see 'edgecnn convert --help'")


def _detect_zip(p: Path) -> SourceFormat:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            formats = [n for n in names if n.rsplit("/", 1)[-1] == "archive_format"]
            if formats and zf.read(formats[0]).strip() == b"pt2":
                return BY_NAME["pt2"]
    except (zipfile.BadZipFile, OSError) as err:
        raise UsageError(f"{p} is a damaged zip archive: {err}", "re-export the model") from None
    base = {n.rsplit("/", 1)[-1] for n in names}
    if "config.json" in base and ("model.weights.h5" in base or "metadata.json" in base):
        return BY_NAME["edgecnn" if (p.parent / "run.json").is_file() else "keras"]
    if base & {"data.pkl", "constants.pkl"}:
        raise _pickle_error(p)
    raise UsageError(f"{p} is a zip archive of no model format edgecnn knows",
                     f"edgecnn converts {_known_suffixes()} and SavedModel folders")


def _pickle_error(p: Path) -> UsageError:
    return UsageError(f"{p} is a pickled PyTorch checkpoint; loading it would run code from "
                      "the file, so edgecnn refuses it", EXPORT_HINT)
