"""Models edgecnn did not train (ONNX, ``.pt2``, Keras, SavedModel, ``.tflite``) -> ``.tflite``.

Steps: recognize the format (:mod:`converters.formats`); describe the source (input layout,
outputs, the metadata it carries); take calibration and held-out images through the runtime's
own preprocessing; run the route chosen by measurement (docs/DECISIONS.md, "Foreign models");
check the result loads and takes an NHWC image; attach metadata (task, labels, input
normalization, layout, decoder); compare with the source framework on held-out images; write
atomically. Nothing is written when any step fails.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters import calibration as cal
from converters import formats
from converters.agreement import Agreement, classification_agreement, output_agreement
from converters.recipes import IOType, Quant, Recipe
from converters.sources.base import Layout, SourceModel
from edgecnn.errors import UsageError
from edgecnn.fsutil import check_output_file, ensure_writable_dir, write_atomic
from edgecnn.rundir import RunInfo
from edgecnn.runtime import metadata as md
from edgecnn.runtime.model import TFLiteModel

# [1, 4 + nc, N]: cx, cy, w, h divided by the input size (0..1), then class probabilities
YOLO_DECODER = "ultralytics_yolo"
YOLO_END2END_DECODER = "ultralytics_end2end"   # [1, N, 6]: x1 y1 x2 y2 score class


@dataclass(frozen=True)
class ForeignOptions:
    """What the source may not say about itself (``None``: read from the source or default)."""

    task: str | None = None
    labels: tuple[str, ...] | None = None
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str | None = None
    color: str = "RGB"


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
    agreement: Agreement | None
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


def parse_labels(value: str | None) -> tuple[str, ...] | None:
    """``--labels``: a file with one name per line, or ``a,b,c``."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    else:
        names = [n.strip() for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"--labels {value!r} names no class", "pass a file or a,b,c")
    return tuple(names)


def parse_floats(value: str | None, option: str) -> tuple[float, ...] | None:
    """``--mean``/``--std``: one number or one per channel (``r,g,b``)."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a number or r,g,b numbers",
                         f"e.g. {option} 127.5 or {option} 123.7,116.3,103.5") from None
    if len(numbers) not in (1, 3) or (option == "--std" and min(numbers) <= 0):
        raise UsageError(f"{option} {value!r} needs 1 or 3 values"
                         + (" above 0" if option == "--std" else ""))
    return numbers


def load_source(path: Path, fmt: formats.SourceFormat, layout: str | None) -> SourceModel:
    if fmt.name == "onnx":
        from converters.sources import onnx as src
    elif fmt.name == "pt2":
        from converters.sources import pt2 as src
    elif fmt.name == "tflite":
        from converters.sources import tflite as src
    else:
        from converters.sources import keras as src
    return src.load(path, layout)


def convert_foreign(source: str | Path, output: str | Path | None = None,
                    quant: str | Quant | None = "int8", *, io: str | IOType | None = None,
                    options: ForeignOptions = ForeignOptions(), calib: str | None = None,
                    calib_size: int = cal.DEFAULT_CALIB_SIZE,
                    held_out: int = cal.DEFAULT_HELD_OUT, verbose: bool = False,
                    overwrite: bool = False) -> ForeignResult:
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
        overwrite: replace an existing output that edgecnn did not write; without it that is
            an error, before any work.

    Example:
        convert_foreign("yolo11n.onnx", "yolo11n_int8.tflite", "int8", calib="data.yaml")
    """
    start = time.perf_counter()
    path = Path(source)
    fmt = formats.detect(path)
    if fmt.name == "edgecnn":
        raise UsageError(f"{path} was trained by edgecnn", "convert it with convert_model")
    keep = quant is None
    if keep and fmt.name != "tflite":
        raise UsageError("--quant keep only applies to a .tflite source",
                         "choose float32, dynamic, float16 or int8")
    recipe = Recipe.parse(quant or "float32", io)
    model = load_source(path, fmt, options.layout)
    task = _task(model, options)
    labels = _labels(model, options, task)
    h, w, c = model.input.hwc
    if c not in (1, 3):
        raise UsageError(f"the model input has {c} channels; edgecnn feeds 1 (GRAY) or 3 (RGB)")
    color = "GRAY" if c == 1 else options.color
    spec = md.InputSpec(height=h, width=w, channels=c, layout=Layout.NHWC.value, color=color,
                        resize=options.resize or ("letterbox" if task == "detect" else "stretch"),
                        mean=tuple(options.mean or (0.0,)), std=tuple(options.std or (255.0,)))
    out_path = _output_path(output, path, model.name, "keep" if keep else recipe.name)
    ensure_writable_dir(out_path.parent, "choose a writable -o path")
    check_output_file(out_path, overwrite, "-o")
    images = _images(spec, calib, calib_size, held_out, recipe, keep)
    calib_x = None
    if images is not None and len(images.calib):
        calib_x = cal.full_range_inputs(cal.to_model_inputs(images.calib, spec, images.color),
                                        spec)
    notes: list[str] = []
    boxes = (h, w) if task == "detect" and _yolo_layout(model) and fmt.name in ("onnx", "pt2") \
        else None
    flat = _route(path, fmt, model, recipe, keep, calib_x, verbose, notes, boxes)
    converted = _load(flat)
    layout = _check_layout(converted, model, spec)
    spec = md.InputSpec(**{**spec.__dict__, "layout": layout.value})
    decoder = _decoder(model, converted, task, labels)
    activation = _activation(model, task)
    meta = md.Metadata(task=task, labels=labels, input=spec, name=model.name, arch=fmt.name,
                       output_activation=activation, decoder=decoder,
                       quantization="keep" if keep else recipe.quant.value,
                       io={"inputs": [t.to_dict() for t in converted.inputs],
                           "outputs": [t.to_dict() for t in converted.outputs]})
    data = md.attach(flat, meta)
    final = _load(data)
    agreement, agreement_source = None, "skipped"
    if held_out > 0 and model.reference is not None:
        held = list(images.held_out)[:held_out] if images is not None else []
        color_in = images.color if images is not None else spec.color
        if not held:
            rng = np.random.default_rng(0)
            held = [rng.integers(0, 256, (h, w, c), dtype=np.uint8) for _ in range(8)]
            color_in = spec.color
            agreement_source = f"{len(held)} random-pixel images (no --calib given)"
        else:
            agreement_source = f"{len(held)} held-out images of {images.source}"
        agreement = parity(model, final, meta, held, color_in, boxes)
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
    probe = RunInfo(task="classify", arch="", labels=["?"], imgsz=(spec.height, spec.width),
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

    representative = cal.representative_dataset(calib_x) if recipe.needs_calibration else None
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


def _decoder(model: SourceModel, converted: TFLiteModel, task: str, labels) -> md.DecoderSpec | None:
    if task != "detect":
        return None
    shapes = [o.shape for o in converted.outputs]
    if len(shapes) == 1 and len(shapes[0]) == 3:
        n_ch = 4 + len(labels)
        if shapes[0][2] == 6 and model.metadata.end2end is not False:
            return md.DecoderSpec(type=YOLO_END2END_DECODER, output=0)
        if n_ch in shapes[0][1:]:
            return md.DecoderSpec(type=YOLO_DECODER, output=0)
    raise UsageError(f"no known detection layout for outputs {[list(s) for s in shapes]}: "
                     f"expected [1, 4+{len(labels)}, N] (Ultralytics YOLO) or [1, N, 6] "
                     "(end-to-end YOLO)", "convert with --task classify, or a YOLO export")


def _activation(model: SourceModel, task: str) -> str:
    """Classifier outputs: probabilities when they sum to 1 on a sample, logits otherwise."""
    if task != "classify" or model.reference is None:
        return "none"
    rng = np.random.default_rng(1)
    y = model.reference(rng.uniform(0, 1, model.input.shape).astype(np.float32))[0]
    row = np.asarray(y, np.float64).reshape(-1)
    return "softmax" if row.min() >= 0 and abs(row.sum() - 1.0) < 1e-3 else "none"


def parity(model: SourceModel, converted: TFLiteModel, meta: md.Metadata,
           images: list[np.ndarray], color: str, boxes: tuple[int, int] | None = None
           ) -> Agreement:
    """The source framework against the ``.tflite`` on the same uint8 images.

    Both get the device's preprocessing; the source gets it in its own layout, float.
    ``boxes = (h, w)``: the converted YOLO head's boxes are normalized; so is the reference.
    """
    from edgecnn.runtime.preprocess import Preprocessor

    x = cal.to_model_inputs(images, meta.input, color)            # NHWC float
    ref_in = x.transpose(0, 3, 1, 2) if model.input.layout is Layout.NCHW else x
    ref = [np.concatenate(parts) for parts in
           zip(*[model.reference(ref_in[i:i + 1]) for i in range(len(x))])]
    if boxes is not None:
        h, w = boxes
        ref[0] = ref[0].copy()
        ref[0][:, :4] /= np.array([w, h, w, h], np.float32).reshape(1, 4, 1)
    pre = Preprocessor(meta.input, converted.input)
    got: list[list[np.ndarray]] = [[] for _ in converted.outputs]
    for im in images:
        tensor, _ = pre(im, color)
        if meta.input.layout == Layout.NCHW.value:
            tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
        converted.set_input(tensor)
        converted.invoke()
        for i in range(len(converted.outputs)):
            got[i].append(converted.get_output(i))
    cand = align_outputs([r.shape for r in ref], [np.concatenate(g) for g in got])
    if meta.task == "classify":
        return classification_agreement(_probs(ref[0], meta), _probs(cand[0], meta))
    return output_agreement(ref, cand)


def _probs(y: np.ndarray, meta: md.Metadata) -> np.ndarray:
    y = y.reshape(len(y), -1).astype(np.float64)
    if meta.output_activation == "softmax":
        return y
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def align_outputs(ref_shapes: list[tuple], outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Converted outputs in the source's order and shapes (routes may reorder or transpose)."""
    left = list(range(len(outputs)))
    aligned = []
    for shape in ref_shapes:
        for j in left:
            y = outputs[j]
            if y.shape == tuple(shape):
                pick = y
            elif y.ndim == 3 and y.shape == (shape[0], shape[2], shape[1]):
                pick = y.transpose(0, 2, 1)
            elif y.size == int(np.prod(shape)) and y.ndim == 2:
                pick = y.reshape(shape)
            else:
                continue
            aligned.append(pick)
            left.remove(j)
            break
        else:
            raise UsageError(f"no converted output matches the source's output of shape "
                             f"{list(shape)} (got {[list(o.shape) for o in outputs]})")
    return aligned


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
