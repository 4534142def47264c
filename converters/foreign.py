"""Models edgecnn did not train (ONNX, ``.pt2``, Keras, SavedModel, ``.tflite``) -> ``.tflite``.

Steps: recognize the format (:mod:`converters.formats`); describe the source (input layout,
outputs, the metadata it carries); take calibration and held-out images through the runtime's
own preprocessing; run the route chosen by measurement (docs/DECISIONS.md, "Foreign models");
check the result loads and takes an NHWC image; attach metadata (task, labels, input
normalization, layout, decoder); compare with the source framework on held-out images; write
atomically. Nothing is written when any step fails.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters import calibration as cal
from converters import formats
from converters.agreement import Agreement
from converters.parity import DetectionAgreement, MapScorer, parity
from converters.recipes import IOType, Quant, Recipe
from converters.sources.base import Layout, SourceModel
from edgecnn.errors import UsageError
from edgecnn.fsutil import check_output_file, ensure_writable_dir, write_atomic
from edgecnn.rundir import RunInfo
from edgecnn.runtime import metadata as md
from edgecnn.runtime.describe import (
    ULTRALYTICS_THRESHOLDS,
    MetadataOptions,
    guess_decoder,
    parse_floats,
    parse_labels,
)
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.task import Task

__all__ = ["ForeignOptions", "ForeignResult", "convert_foreign", "parse_floats",
           "parse_labels"]


# What the source may not say about itself: the runtime's own description options.
ForeignOptions = MetadataOptions


@dataclass(frozen=True)
class ForeignResult:
    """What :func:`convert_foreign` wrote and measured."""

    path: Path
    source_format: str
    recipe: str
    size_bytes: int
    layout: str
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    metadata: dict
    source_metadata: dict
    agreement: Agreement | DetectionAgreement | None
    agreement_source: str
    calib_samples: int
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "source_format": self.source_format,
                "recipe": self.recipe, "size_bytes": self.size_bytes, "layout": self.layout,
                "inputs": list(self.inputs), "outputs": list(self.outputs),
                "metadata": self.metadata, "source_metadata": self.source_metadata,
                "agreement": self.agreement.to_dict() if self.agreement else None,
                "agreement_source": self.agreement_source, "calib_samples": self.calib_samples,
                "seconds": round(self.seconds, 2), "notes": list(self.notes)}


def load_source(path: Path, fmt: formats.SourceFormat, layout: str | None) -> SourceModel:
    name = fmt.name if fmt.name in ("onnx", "pt2", "tflite") else "keras"
    src = importlib.import_module(f"converters.sources.{name}")   # each pulls its framework
    return src.load(path, layout)


def convert_foreign(source: str | Path, output: str | Path | None = None,
                    quant: str | Quant | None = "int8", *, io: str | IOType | None = None,
                    options: ForeignOptions | None = None, calib: str | None = None,
                    calib_size: int = cal.DEFAULT_CALIB_SIZE,
                    held_out: int = cal.DEFAULT_HELD_OUT, verbose: bool = False,
                    map_scorer: MapScorer | None = None, overwrite: bool = False
                    ) -> ForeignResult:
    """Convert a model edgecnn did not train to a ``.tflite`` with edgecnn metadata.

    Args:
        source: ``.onnx``, ``.pt2``, ``.keras``, a SavedModel folder or a ``.tflite``.
        output: the ``.tflite`` to write (or a folder); None: ``<name>_<recipe>.tflite`` beside
            the source.
        quant: recipe; None keeps a ``.tflite`` source as it is (metadata attached only).
        io: int8 recipe: ``int8`` (default) or ``float`` I/O.
        options: task, labels, layout and input normalization the source does not carry.
        calib: calibration images (a folder or a dataset SPEC); required for int8.
        calib_size: calibration images to use.
        held_out: images for the parity report against the source framework (0 skips it).
        verbose: show the route's own output.
        map_scorer: detectors with held-out boxes (``--calib data.yaml``): scores the mAP of
            the source and the ``.tflite`` (the CLI passes ``edgecnn eval``'s COCO mAP; this
            layer may not import it). None: matched-box IoU only.
        overwrite: replace an existing output that edgecnn did not write; without it that is
            an error, before any work.

    Example:
        convert_foreign("yolo11n.onnx", "yolo11n_int8.tflite", "int8", calib="data.yaml")
    """
    start = time.perf_counter()
    path = Path(source)
    fmt, keep = _source_format(path, quant)
    recipe = Recipe.parse(quant or "float32", io)
    options = options or ForeignOptions()
    model = load_source(path, fmt, options.layout)
    task = _task(model, options)
    labels = _labels(model, options, task)
    spec = _input_spec(model, options, task)   # checks the channels
    h, w = spec.height, spec.width
    out_path = _checked_output(output, path, model.name, "keep" if keep else recipe.name,
                               overwrite)
    images = _images(spec, calib, calib_size, held_out, recipe, keep)
    if options.labels is None and model.metadata.labels is None and images is not None \
            and images.labels and len(images.labels) == len(labels):
        labels = images.labels   # the names of the --calib dataset, when nothing else says
    calib_x = _calib_inputs(images, spec)
    notes: list[str] = []
    boxes = (h, w) if task == "detect" and _yolo_layout(model) and fmt.name in ("onnx", "pt2") \
        else None
    flat = _route(path, fmt, model, recipe, keep, calib_x, verbose, notes, boxes)
    converted = _load(flat)
    layout = _check_layout(converted, model, spec)
    spec = md.InputSpec(**{**spec.__dict__, "layout": layout.value})
    decoder = _decoder(model, converted, task, labels, options, boxes is not None)
    activation = options.activation or _activation(model, task)
    meta = md.Metadata(task=Task(task), labels=labels, input=spec, name=model.name, arch=fmt.name,
                       output_activation=activation, decoder=decoder,
                       quantization="keep" if keep else recipe.quant.value,
                       io={"inputs": [t.to_dict() for t in converted.inputs],
                           "outputs": [t.to_dict() for t in converted.outputs]})
    data = md.attach(flat, meta)
    final = _load(data)
    agreement, agreement_source = None, "skipped"
    if held_out > 0 and model.reference is not None:
        agreement, agreement_source = _parity_report(model, final, meta, images, held_out,
                                                     boxes, map_scorer)
    elif model.reference is None:
        notes.append(f"no parity report: the {fmt.name} runtime is not installed")
    write_atomic(out_path, data)
    return ForeignResult(
        path=out_path, source_format=fmt.name, recipe="keep" if keep else recipe.name,
        size_bytes=len(data), layout=layout.value,
        inputs=tuple(t.to_dict() for t in final.inputs),
        outputs=tuple(t.to_dict() for t in final.outputs), metadata=meta.to_dict(),
        source_metadata=model.metadata.to_dict(), agreement=agreement,
        agreement_source=agreement_source,
        calib_samples=0 if calib_x is None else len(calib_x),
        seconds=time.perf_counter() - start, notes=tuple(notes + list(model.notes)))


def _checked_output(output, source: Path, name: str, recipe: str, overwrite: bool) -> Path:
    """The output path, its folder writable and no file of the user's in the way."""
    path = _output_path(output, source, name, recipe)
    ensure_writable_dir(path.parent, "choose a writable -o path")
    check_output_file(path, overwrite, "-o")
    return path


def _calib_inputs(images, spec: md.InputSpec) -> np.ndarray | None:
    if images is None or not len(images.calib):
        return None
    return cal.full_range_inputs(cal.to_model_inputs(images.calib, spec, images.color), spec)


def _source_format(path: Path, quant) -> tuple[formats.SourceFormat, bool]:
    """The source's format and whether it is kept as it is (``quant`` None: a ``.tflite``)."""
    fmt = formats.detect(path)
    if fmt.name == "edgecnn":
        raise UsageError(f"{path} was trained by edgecnn", "convert it with convert_model")
    if quant is None and fmt.name != "tflite":
        raise UsageError("--quant keep only applies to a .tflite source",
                         "choose float32, dynamic, float16 or int8")
    return fmt, quant is None


def _parity_report(model: SourceModel, final: TFLiteModel, meta: md.Metadata, images,
                   held_out: int, boxes, map_scorer: MapScorer | None):
    """The source against the written file on held-out images (random pixels without
    ``--calib``); returns ``(agreement, what it was measured on)``."""
    held = list(images.held_out)[:held_out] if images is not None else []
    color_in = images.color if images is not None else meta.input.color
    if not held:
        rng = np.random.default_rng(0)
        spec = meta.input
        held = [rng.integers(0, 256, (spec.height, spec.width, spec.channels), dtype=np.uint8)
                for _ in range(8)]
        color_in, source = spec.color, f"{len(held)} random-pixel images (no --calib given)"
    else:
        source = f"{len(held)} held-out images of {images.source}"
    truth = images.held_out_boxes if images is not None else None
    return parity(model, final, meta, held, color_in, boxes,
                  truth[:len(held)] if truth else None, map_scorer), source


def _input_spec(model: SourceModel, options: MetadataOptions, task: str) -> md.InputSpec:
    """NHWC for calibration (the final layout is the converted model's); Ultralytics' models
    get the single bilinear resize they were trained with."""
    h, w, c = model.input.hwc
    if c not in (1, 3):
        raise UsageError(f"the model input has {c} channels; edgecnn feeds 1 (GRAY) or 3 (RGB)")
    ultralytics = model.metadata.producer == "ultralytics"
    return md.InputSpec(
        height=h, width=w, channels=c, layout=Layout.NHWC.value,
        color="GRAY" if c == 1 else options.color or "RGB",
        resize=options.resize or ("letterbox" if task == "detect" else "stretch"),
        mean=tuple(options.mean or (0.0,)), std=tuple(options.std or (255.0,)),
        interpolation=options.interpolation or ("linear" if ultralytics else "area"))


def _task(model: SourceModel, options: ForeignOptions) -> str:
    task = options.task or model.metadata.task
    if task is None and len(model.outputs) == 1 and len(model.outputs[0][1]) == 2:
        task = "classify"
    if task not in md.TASKS:
        shapes = [list(s) for _, s in model.outputs]
        raise UsageError(f"cannot tell the task of {model.name} (outputs {shapes})",
                         "pass --task classify or --task detect")
    return task


def _labels(model: SourceModel, options: ForeignOptions, task: str) -> tuple[str, ...]:
    classes = _num_classes(model, task)
    labels = options.labels or model.metadata.labels
    if labels is None:
        if classes is None:
            raise UsageError("the model's outputs do not say how many classes it has",
                             "pass --labels FILE or --labels a,b,c")
        return tuple(str(i) for i in range(classes))
    if classes is not None and len(labels) != classes:
        raise UsageError(f"{len(labels)} labels given but the model outputs {classes} classes",
                         f"pass --labels with {classes} names")
    return tuple(labels)


def _num_classes(model: SourceModel, task: str) -> int | None:
    shapes = [s for _, s in model.outputs]
    if task == "classify":
        return int(np.prod(shapes[0][1:])) if len(shapes) == 1 else None
    if len(shapes) == 1 and len(shapes[0]) == 3:
        if model.metadata.end2end or shapes[0][2] == 6:
            return len(model.metadata.labels) if model.metadata.labels else None
        return min(shapes[0][1:]) - 4    # [1, 4 + nc, N]: N is the larger axis
    return None


def _images(spec: md.InputSpec, calib, calib_size, held_out, recipe: Recipe, keep: bool):
    if recipe.needs_calibration and not keep and not calib:
        raise UsageError("int8 conversion of a foreign model needs calibration images",
                         "pass --calib DIR (images) or --calib data.yaml (a dataset)")
    if not calib:
        return None
    probe = RunInfo(task=Task.CLASSIFY, arch="", labels=["?"], imgsz=(spec.height, spec.width),
                    channels=spec.channels, color=spec.color, data=calib)
    return cal.load_calibration_images(probe, calib, calib_size, held_out)


def _yolo_layout(model: SourceModel) -> bool:
    shapes = [s for _, s in model.outputs]
    return len(shapes) == 1 and len(shapes[0]) == 3 and not model.metadata.end2end \
        and shapes[0][2] != 6 and shapes[0][2] > shapes[0][1]


def _route(path: Path, fmt, model: SourceModel, recipe: Recipe, keep: bool,
           calib_x: np.ndarray | None, verbose: bool, notes: list[str],
           boxes: tuple[int, int] | None = None) -> bytes:
    """The route for ``fmt``: flatbuffer bytes of the converted model (no metadata).

    ``boxes = (h, w)``: a YOLO head whose box channels get divided by the input size.
    """
    from converters.sources import torch_route

    if fmt.name == "tflite":
        from converters.sources import tflite

        flat = tflite.flatbuffer(path)
        if keep or recipe.quant is Quant.FLOAT32:
            if not keep:
                notes.append("float32 of a .tflite: the model is kept as it is")
            return flat
        if not tflite.is_float(_load(flat)):
            raise UsageError(f"{path.name} is already quantized; edgecnn re-quantizes only "
                             "float models", "pass --quant keep, or convert the float source")
        return torch_route.apply_recipe(flat, recipe, calib_x, verbose)
    if fmt.name == "onnx":
        from converters.sources import onnx as onnx_source

        with tempfile.TemporaryDirectory(prefix="edgecnn-onnx-") as tmp:
            source = path
            if boxes is not None:
                source = Path(tmp) / path.name
                if not onnx_source.normalize_yolo_boxes(path, source, *boxes):
                    raise UsageError(f"{path.name} has a YOLO-shaped output but no Concat(boxes, "
                                     "scores) at its end to normalize",
                                     "export it with Ultralytics, or convert with --task "
                                     "classify to get the raw output")
            flat = onnx_source.float_tflite(source, verbose)
        try:
            _load(flat)
        except UsageError as err:
            raise onnx_source.unresolved_op_error(path, err.message) or err from None
        return torch_route.apply_recipe(flat, recipe, calib_x, verbose)
    if fmt.name == "pt2":
        from converters.sources import pt2

        module = pt2.load_program(path).module()
        if boxes is not None:
            module = torch_route.normalized_boxes(module, *boxes)
        flat = torch_route.float_tflite(module, model.input, verbose)
        return torch_route.apply_recipe(flat, recipe, calib_x, verbose)
    from converters.sources import keras as keras_source

    representative = (cal.representative_dataset(calib_x)
                      if recipe.needs_calibration and calib_x is not None else None)
    return keras_source.to_tflite(path, fmt, recipe, representative, verbose)


def _load(data: bytes) -> TFLiteModel:
    try:
        return TFLiteModel(data, threads=1)
    except UsageError as err:
        raise UsageError(f"the converted model does not load in the runtime: {err.message}",
                         "rerun with --verbose and report the model") from None


def _check_layout(converted: TFLiteModel, model: SourceModel, spec: md.InputSpec) -> Layout:
    """The converted model's input must be the source's image, NHWC (or NCHW kept as is)."""
    shape = converted.input.shape
    if shape == (1, spec.height, spec.width, spec.channels):
        return Layout.NHWC
    if shape == (1, spec.channels, spec.height, spec.width):
        return Layout.NCHW
    raise UsageError(f"the converted input has shape {list(shape)}, expected "
                     f"{[1, spec.height, spec.width, spec.channels]} (NHWC) for the source's "
                     f"{model.input.layout.value} input {list(model.input.shape)}",
                     "pass --layout to say which axis holds the channels")


def _decoder(model: SourceModel, converted: TFLiteModel, task: str, labels,
             options: MetadataOptions, rewritten: bool = False) -> md.DecoderSpec | None:
    """The decoder the options name, or the one the converted outputs point to (the runtime's
    own guess, :func:`edgecnn.runtime.describe.guess_decoder`).

    ``rewritten``: the route divided the YOLO box channels by the input size.
    """
    if task != "detect":
        return None
    shapes = [tuple(o.shape) for o in converted.outputs]
    section = dict(options.decoder) if options.decoder else \
        guess_decoder(shapes, labels, model.metadata)
    if section is None:
        raise UsageError(f"no known detection layout for outputs {[list(s) for s in shapes]}: "
                         f"expected [1, 4+{len(labels)}, N] (Ultralytics YOLO), [1, N, 6] "
                         "(end-to-end YOLO) or the 4 outputs of TFLite_Detection_PostProcess",
                         "pass --decoder TYPE[:key=value,...], or convert with --task classify")
    if not options.decoder and section["type"].startswith("ultralytics"):
        section.update(ULTRALYTICS_THRESHOLDS)
    if section["type"] == "ultralytics_yolo" and "normalized" not in section:
        section["normalized"] = rewritten or _boxes_normalized(model)
    return md.DecoderSpec.from_dict(section)


def _boxes_normalized(model: SourceModel) -> bool:
    """Whether a YOLO head the route did not rewrite gives boxes in 0..1 of the input (as
    Ultralytics' own ``.tflite`` exports do) rather than in pixels: measured on one random
    image, since the anchors of a pixel-box head reach far past 2 (True without a reference)."""
    if model.reference is None:
        return True
    from edgecnn.runtime.decoders.ultralytics_yolo import channels_first

    rng = np.random.default_rng(2)
    y = np.asarray(model.reference(rng.uniform(0, 1, model.input.shape).astype(np.float32))[0])
    first = channels_first(y.shape, min(y.shape[1:]))
    if first is None:
        return True
    boxes = y[0, :4, :] if first else y[0, :, :4]
    return float(np.abs(boxes).max()) <= 2.0


def _activation(model: SourceModel, task: str) -> str:
    """Classifier outputs: probabilities when they sum to 1 on a sample, logits otherwise."""
    if task != "classify" or model.reference is None:
        return "none"
    rng = np.random.default_rng(1)
    y = model.reference(rng.uniform(0, 1, model.input.shape).astype(np.float32))[0]
    row = np.asarray(y, np.float64).reshape(-1)
    return "softmax" if row.min() >= 0 and abs(row.sum() - 1.0) < 1e-3 else "none"


def _output_path(output, source: Path, name: str, recipe_name: str) -> Path:
    import re

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    default = f"{safe}_{recipe_name}.tflite"
    if output is None:
        return source.parent / default if source.is_file() else source / default
    out = Path(output)
    if out.is_dir():
        return out / default
    if out.resolve() == source.resolve():
        raise UsageError(f"-o {out} would overwrite the source model", "choose another path")
    return out
