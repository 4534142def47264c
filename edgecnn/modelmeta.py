"""``edgecnn metadata show|set``: read, attach or edit the metadata of any ``.tflite``.

Device side (no TensorFlow). ``set`` never touches the model itself: the flatbuffer is kept
byte for byte and a fresh bundle (``docs/FORMAT.md``) is appended in place of the old one; the
``metadata.json`` Ultralytics writes is kept inside it, so Ultralytics still reads the file.
Before anything is written, the new metadata is checked against the model by building its
runner (labels against the output width, the decoder against the outputs, the layout against
the input). The write is atomic; an existing file is replaced only with ``--overwrite`` (for
``-o``) or ``--in-place`` (for the model itself).

Example:
    set_metadata("yolo11n_float32.tflite", "yolo11n_meta.tflite",
                 MetadataOptions(labels=("kangaroo",)), score_threshold=0.4)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.describe import MetadataOptions, resolve_metadata, source_metadata
from edgecnn.runtime.sourcemeta import ULTRALYTICS_JSON


@dataclass(frozen=True)
class MetadataReport:
    """What a model says about itself and what edgecnn would use to run it.

    Attributes:
        source: ``edgecnn`` (its own bundle), ``ultralytics`` (``metadata.json``) or ``none``.
        metadata: the metadata runners use (None when the model needs options first).
        foreign: what the other tool wrote (task, labels, imgsz, ...), if anything.
        problem: why no metadata could be made, for ``source == "none"``.
    """

    model: str
    source: str
    metadata: dict | None
    foreign: dict | None
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    problem: str = ""

    def to_dict(self) -> dict:
        return {"model": self.model, "source": self.source, "metadata": self.metadata,
                "foreign": self.foreign, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "problem": self.problem}


def show_metadata(path: str | os.PathLike, verify: bool = True) -> MetadataReport:
    """The metadata of ``path``: edgecnn's, or the one derived from Ultralytics' keys."""
    from edgecnn.runtime.runner import open_model

    model = open_model(path, threads=1, verify=verify)
    foreign = source_metadata(model) if model.metadata is None else None
    source = "edgecnn" if model.metadata is not None else (
        "ultralytics" if foreign and foreign.producer == "ultralytics" else "none")
    meta, problem = None, ""
    try:
        meta = resolve_metadata(model).to_dict()
    except UsageError as err:
        problem = str(err)
    return MetadataReport(str(path), source, meta,
                          foreign.to_dict() if foreign is not None and source != "none" else None,
                          tuple(t.to_dict() for t in model.inputs),
                          tuple(t.to_dict() for t in model.outputs), problem)


@dataclass(frozen=True)
class SetResult:
    path: Path
    metadata: dict
    kept_entries: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "metadata": self.metadata,
                "kept_entries": list(self.kept_entries)}


def set_metadata(path: str | os.PathLike, output: str | os.PathLike | None = None,
                 options: MetadataOptions | None = None, *, in_place: bool = False,
                 overwrite: bool = False, score_threshold: float | None = None,
                 iou_threshold: float | None = None, max_detections: int | None = None,
                 name: str | None = None, verify: bool = True) -> SetResult:
    """Attach metadata built from ``options`` (over what the file says) and write the model.

    Args:
        path: the ``.tflite``.
        output: where to write; None needs ``in_place``.
        options: task, labels, decoder, normalization, layout, resize, activation.
        in_place: replace ``path`` itself.
        overwrite: replace an existing ``output``.
        score_threshold, iou_threshold, max_detections: the decoder's defaults.
        name: the model's name in the metadata.
        verify: refuse a model whose flatbuffer does not match its metadata's SHA-256.

    Raises:
        UsageError: no destination, a destination that exists, metadata that does not fit
            the model. Nothing is written then.
    """
    from edgecnn.fsutil import ensure_writable_dir, write_atomic
    from edgecnn.runtime.runner import load, open_model

    src = Path(path)
    dest = _destination(src, output, in_place, overwrite)
    ensure_writable_dir(dest.parent, "choose a writable -o path")
    data = md.read_model_file(src)
    model = open_model(src, threads=1, verify=verify)
    meta = resolve_metadata(model, options or MetadataOptions())
    changes = {k: v for k, v in (("score_threshold", score_threshold),
                                 ("iou_threshold", iou_threshold),
                                 ("max_detections", max_detections)) if v is not None}
    if changes:
        if meta.decoder is None:
            raise UsageError("--score-threshold, --iou-threshold and --max-detections apply to "
                             "detectors only", "drop them, or pass --task detect")
        meta = meta.replace(decoder=meta.decoder.replace(**changes))
    if name:
        meta = meta.replace(name=name)
    kept = _foreign_entries(model.bundle)
    out = md.attach(data, meta, extra=kept)
    load(out, threads=1)   # the runner's own checks: labels, decoder shapes, layout
    written = md.read(out)
    if written is None:
        raise UsageError("the new metadata did not read back (internal error)")
    write_atomic(dest, out)
    return SetResult(dest, written.to_dict(), tuple(kept))


def _destination(src: Path, output, in_place: bool, overwrite: bool) -> Path:
    if output is None and not in_place:
        raise UsageError("metadata set needs a destination",
                         "pass -o OUT.tflite, or --in-place to rewrite the model itself")
    if output is not None and in_place:
        raise UsageError("-o and --in-place contradict each other", "pick one")
    if in_place:
        return src
    dest = Path(output)
    if dest.is_dir():
        raise UsageError(f"-o {dest} is a folder", "pass a file name, e.g. -o model_meta.tflite")
    if dest.exists() and dest.resolve() == src.resolve():
        raise UsageError(f"-o {dest} is the model itself", "pass --in-place to rewrite it")
    if dest.exists() and not overwrite:
        raise UsageError(f"{dest} exists", "pass --overwrite to replace it, or another -o")
    return dest


def _foreign_entries(bundle: bytes | None) -> dict[str, bytes]:
    """Entries another tool put in the trailing zip that are worth keeping (Ultralytics')."""
    if bundle is None:
        return {}
    raw = md.read_bundle_entry(bundle, ULTRALYTICS_JSON)
    return {ULTRALYTICS_JSON: raw} if raw is not None else {}
