"""``convert_model``: a trained Keras model -> a checked ``.tflite`` with edgecnn metadata.

Steps: load the model (safe mode) and its run description; read calibration and held-out
images; export a batch-1 SavedModel; convert with the recipe; load the result in the runtime
interpreter (a file that does not load is never written); attach the metadata; measure
agreement with the Keras model on held-out images through the device's own preprocessing;
write the file atomically (and the per-layer error report with ``debug_quant``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters import calibration as cal
from converters.outliers import robust_detector_calibration
from converters.agreement import Agreement, classification_agreement, output_agreement
from converters.keras_tflite import (
    convert_saved_model,
    exported_saved_model,
    model_input_shape,
)
from converters.metadata import build_metadata, match_outputs
from converters.recipes import IOType, Quant, Recipe, output_name
from edgecnn.errors import UsageError
from edgecnn.fsutil import check_output_file, ensure_writable_dir, write_atomic
from edgecnn.quiet import captured_output
from edgecnn.rundir import RunInfo
from edgecnn.runtime import metadata as md
from edgecnn.runtime.classifier import Classifier
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.modelcheck import Probe
from edgecnn.runtime.preprocess import Preprocessor
from edgecnn.runtime.task import Task


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_model` wrote and measured."""

    path: Path
    recipe: str
    size_bytes: int
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    agreement: Agreement | None
    agreement_source: str
    calib_samples: int
    calib_source: str
    seconds: float
    debug_csv: Path | None = None
    debug_markdown: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    float_tensors: tuple[str, ...] = ()     # ops left in float (--float-layers/--float-worst)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "recipe": self.recipe, "size_bytes": self.size_bytes,
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "agreement_source": self.agreement_source,
            "calib_samples": self.calib_samples, "calib_source": self.calib_source,
            "seconds": round(self.seconds, 2),
            "debug_csv": str(self.debug_csv) if self.debug_csv else None,
            "debug_markdown": str(self.debug_markdown) if self.debug_markdown else None,
            "notes": list(self.notes), "float_tensors": list(self.float_tensors),
        }


def convert_model(model: str | os.PathLike, output: str | os.PathLike | None = None,
                  quant: str | Quant = "int8", *, io: str | IOType | None = None,
                  calib: str | None = None, calib_size: int = cal.DEFAULT_CALIB_SIZE,
                  held_out: int = cal.DEFAULT_HELD_OUT, data_dir: str | None = None,
                  debug_quant: bool = False, keep_names: bool = False,
                  float_layers: tuple[str, ...] = (), float_worst: int = 0,
                  verbose: bool = False, overwrite: bool = False) -> ConversionResult:
    """Convert a run directory or ``.keras`` file to a ``.tflite`` with metadata.

    Args:
        model: run directory written by ``edgecnn train``/``prune``, or a ``.keras`` file.
        output: ``.tflite`` path, or a folder; None writes ``<model>_<recipe>.tflite`` into the
            run directory.
        quant: ``float32``, ``dynamic``, ``float16`` or ``int8``.
        io: ``int8`` or ``float`` I/O tensors for int8 (default int8); float recipes: float.
        calib: calibration dataset SPEC or folder of images; None uses the run's training data.
        calib_size: calibration images (int8) and the cap on images read for agreement.
        held_out: images for the float-vs-converted agreement check (0 skips it).
        data_dir: where built-in datasets live.
        debug_quant: also write the per-layer quantization error report (int8 only).
        keep_names: keep the converter's long intermediate tensor names (for reading the model
            in a viewer); by default they become ``t<index>``, 3-6 KB less per model.
        float_layers: int8 only: Keras layers to leave in float (:mod:`converters.selective`).
        float_worst: int8 only: also leave the N ops of the highest per-layer int8 error
            (the ``debug_quant`` report's ``rmse/scale``) in float.
        verbose: show converter output instead of capturing it.
        overwrite: replace an existing output that edgecnn did not write (a ``.tflite`` without
            edgecnn metadata, say); without it that is an error, before any work.

    Example:
        result = convert_model("runs/digits", "digits_int8.tflite", "int8")
        print(result.size_bytes, result.agreement.summary())
    """
    recipe = Recipe.parse(quant, io)
    # TensorFlow prints start-up and converter chatter from C++ at every stage (import, model
    # load, export, conversion, interpreter creation): capture all of it unless verbose.
    with captured_output(enabled=not verbose):
        return _convert(Path(model), output, recipe, calib, calib_size, held_out, data_dir,
                        debug_quant, keep_names, verbose, (tuple(float_layers), float_worst),
                        overwrite)


def _convert(source: Path, output, recipe: Recipe, calib, calib_size: int, held_out: int,
             data_dir, debug_quant: bool, keep_names: bool, verbose: bool,
             selective: tuple[tuple[str, ...], int] = ((), 0),
             overwrite: bool = False) -> ConversionResult:
    start = time.perf_counter()
    _check_options(recipe, selective, debug_quant, held_out)
    from edgecnn.rundir import load_keras_model

    kmodel, info = load_keras_model(source)
    name = _model_name(source)
    notes: list[str] = []
    images = None
    if info is None:
        images = _images_for_bare_model(kmodel, calib, calib_size, held_out, data_dir,
                                        recipe, notes)
        info = default_run_info(kmodel, images.labels if images else None, calib or "")
        notes.append(_bare_model_note(info, kmodel, images))
    _check_model_matches_run(kmodel, info)
    path = resolve_output(output, source, name, recipe)
    _check_writable(path, overwrite, debug_quant)

    if images is None:
        images = _run_images(info, recipe, calib, calib_size, held_out, data_dir, notes)
    spec = info.input_spec()
    calib_x = None
    representative = None
    if recipe.needs_calibration:
        if images is None or not len(images.calib):
            raise UsageError("int8 quantization needs calibration images",
                             "pass --calib SPEC (a dataset or a folder of images)")
        calib_x = cal.to_model_inputs(images.calib, spec, images.color)
        if info.task == Task.DETECT:
            calib_x, note = robust_detector_calibration(kmodel, calib_x)
            notes.extend([note] if note else [])
        calib_x = cal.full_range_inputs(calib_x, spec)
        representative = cal.representative_dataset(calib_x)

    flatbuffer, float_tensors, debug_layers = _flatbuffer(kmodel, recipe, representative,
                                                          selective, debug_quant, verbose, notes)

    if not keep_names:
        from converters.flatbuffer import shorten_tensor_names

        flatbuffer = shorten_tensor_names(flatbuffer)
    plain = _load_converted(flatbuffer)
    positions = None
    probe = _probe_images(images, spec)
    if info.task == "detect":
        positions = _detection_positions(kmodel, plain, probe, spec)
    meta = build_metadata(info, plain, recipe, name, positions)
    meta = meta.replace(flatbuffer_sha256=md.flatbuffer_sha256(flatbuffer))  # as attach records
    data = md.attach(flatbuffer, meta)
    final = _load_converted(data)
    if final.metadata is None or final.metadata.to_dict() != meta.to_dict():
        raise UsageError("the metadata bundle did not read back intact (internal error)")

    agreement, agreement_source = _agreement(kmodel, final, meta, images, held_out, spec)

    write_atomic(path, data)
    debug_csv = debug_md = None
    if debug_layers is not None:
        from converters.debug import write_debug_report

        report = write_debug_report(debug_layers, path)
        debug_csv, debug_md = report.csv_path, report.markdown_path
    return ConversionResult(
        path=path, recipe=recipe.name, size_bytes=len(data),
        inputs=tuple(t.to_dict() for t in final.inputs),
        outputs=tuple(t.to_dict() for t in final.outputs), agreement=agreement,
        agreement_source=agreement_source,
        calib_samples=0 if calib_x is None else len(calib_x),
        calib_source=images.source if (images is not None and calib_x is not None) else "",
        seconds=time.perf_counter() - start, debug_csv=debug_csv, debug_markdown=debug_md,
        notes=tuple(notes), float_tensors=float_tensors)


def _check_options(recipe: Recipe, selective: tuple[tuple[str, ...], int], debug_quant: bool,
                   held_out: int) -> None:
    if (selective[0] or selective[1]) and not recipe.needs_calibration:
        raise UsageError("--float-layers / --float-worst need --quant int8",
                         "float recipes keep every layer in float already")
    if debug_quant and not recipe.needs_calibration:
        raise UsageError("--debug-quant needs --quant int8",
                         "per-layer errors exist only for fully quantized models")
    if held_out < 0:
        raise UsageError(f"held-out samples must be >= 0, got {held_out}")


def _run_images(info: RunInfo, recipe: Recipe, calib, calib_size: int, held_out: int, data_dir,
                notes: list[str]):
    """Calibration and held-out images of a run: required for int8, optional otherwise."""
    if recipe.needs_calibration:
        return cal.load_calibration_images(info, calib, calib_size, held_out, data_dir)
    if held_out > 0 and (calib or info.data):
        try:
            return cal.load_calibration_images(info, calib, calib_size, held_out, data_dir)
        except UsageError as err:
            if calib:   # data the user named explicitly must load
                raise
            # A float recipe needs data only for the agreement figure: say why it is missing.
            notes.append(f"agreement measured on random pixels: {err.message}")
    return None


def _flatbuffer(kmodel, recipe: Recipe, representative, selective: tuple[tuple[str, ...], int],
                debug_quant: bool, verbose: bool, notes: list[str]):
    """``(flatbuffer, float tensors, per-layer errors or None)`` of the Keras model."""
    debug_layers = None
    float_tensors: tuple[str, ...] = ()
    with exported_saved_model(kmodel, verbose) as saved:
        if selective[0] or selective[1]:
            from converters.selective import convert_selective

            chosen = convert_selective(saved, recipe, representative, *selective,
                                       verbose=verbose)
            flatbuffer, float_tensors = chosen.flatbuffer, chosen.float_tensors
            notes.append(f"{len(float_tensors)} ops left in float ("
                         f"{', '.join(selective[0]) or 'none named'}"
                         f"{f', the {selective[1]} worst' if selective[1] else ''})")
        else:
            flatbuffer = convert_saved_model(saved, recipe, representative, verbose)
        if debug_quant and representative is not None:   # checked to come with int8
            from converters.debug import run_quantization_debugger

            debug_layers = run_quantization_debugger(saved, recipe, representative, verbose)
    return flatbuffer, float_tensors, debug_layers


def _agreement(kmodel, final: TFLiteModel, meta: md.Metadata, images, held_out: int,
               spec) -> tuple[Agreement | None, str]:
    """The converted model against Keras on held-out images (random pixels without data)."""
    if held_out <= 0:
        return None, "skipped"
    if images is not None and len(images.held_out):
        held, color = list(images.held_out), images.color
        source = f"{min(len(images.held_out), held_out)} held-out images of {images.source}"
    else:
        held, color = _random_images(spec, min(held_out, 32)), _channels_color(spec)
        source = f"{len(held)} random-pixel images (no data given)"
    return measure_agreement(kmodel, final, meta, held[:held_out], color), source


def measure_agreement(kmodel, converted: TFLiteModel, meta: md.Metadata,
                      images: list[np.ndarray], color: str) -> Agreement:
    """Keras model vs converted model on the same uint8 images.

    The converted model is fed exactly as on the device (runtime Preprocessor: resize, colour,
    one look-up table to the input dtype); the Keras model gets the float equivalent.
    """
    spec = meta.input
    x = cal.to_model_inputs(images, spec, color)
    ref = _keras_outputs(kmodel, x)
    if meta.task == "classify":
        clf = Classifier(converted, metadata=meta)
        ref_probs = np.stack([clf.scores(r) for r in next(iter(ref.values()))])
        got = np.stack([clf.scores(clf.infer(clf.preprocess(im, color)[0])) for im in images])
        return classification_agreement(ref_probs, got)
    pre = Preprocessor(spec, converted.input)
    outs: list[list[np.ndarray]] = [[] for _ in converted.outputs]
    for im in images:
        tensor, _ = pre(im, color)
        converted.set_input(tensor)
        converted.invoke()
        for i in range(len(converted.outputs)):
            outs[i].append(converted.get_output(i)[0])
    dec = meta.decoder
    if dec is None:
        raise UsageError("the converted detector has no decoder section (internal error)")
    reference = [ref["boxes"], ref["scores"]]
    candidate = [np.stack(outs[dec.box_output]), np.stack(outs[dec.score_output])]
    return output_agreement(reference, candidate)


def default_run_info(kmodel, labels: tuple[str, ...] | None, data: str = "") -> RunInfo:
    """A RunInfo for a bare ``.keras`` classifier: pixel/255 inputs, GRAY or RGB by channels."""
    h, w, c = model_input_shape(kmodel)
    shape = tuple(kmodel.outputs[0].shape)
    if len(kmodel.outputs) != 1 or len(shape) != 2:
        raise UsageError("a .keras file without run.json must be a classifier with one "
                         f"(batch, classes) output; this one has outputs "
                         f"{[tuple(o.shape) for o in kmodel.outputs]}",
                         "convert the run directory 'edgecnn train' wrote")
    classes = int(shape[1])
    arch = str(getattr(kmodel, "name", "") or "")
    # A pretrained architecture built by edgecnn carries its name: its weights fix the input
    # normalization, and a 1000-class head means ImageNet's labels, whatever the --calib data.
    from edgecnn.models.backbones import pretrained_defaults

    norm, known_labels = pretrained_defaults(arch, classes)
    if known_labels is not None:
        labels = known_labels
    if labels is not None and len(labels) != classes:
        raise UsageError(f"the --calib dataset has {len(labels)} classes but the model has "
                         f"{classes} outputs", "pass the dataset the model was trained on")
    mean, std = (list(norm.mean), list(norm.std)) if norm is not None else ([0.0], [255.0])
    return RunInfo(task=Task.CLASSIFY, arch=arch,
                   labels=list(labels or [str(i) for i in range(classes)]), imgsz=(h, w),
                   channels=c, color="GRAY" if c == 1 else "RGB", data=data, mean=mean, std=std)


def _bare_model_note(info: RunInfo, kmodel, images) -> str:
    from edgecnn.models.backbones import pretrained_defaults

    norm, known_labels = pretrained_defaults(info.arch, len(info.labels))
    if norm is None:
        return ("no run.json beside the model: assumed pixel/255 inputs"
                + ("" if images and images.labels else " and numeric labels"))
    return (f"no run.json beside the model: {info.arch} inputs normalized as "
            f"(pixel - {norm.mean[0]:g}) / {norm.std[0]:g}, as its pretrained weights expect"
            + (", ImageNet labels" if known_labels else ""))


def resolve_output(output, source: Path, name: str, recipe: Recipe) -> Path:
    """The output file: ``output``, or ``<name>_<recipe>.tflite`` in a folder / the run dir."""
    default = output_name(name, recipe)
    if output is None:
        folder = source if source.is_dir() else source.parent
        return folder / default
    out = Path(output)
    if out.is_dir():
        return out / default
    return out


def _model_name(source: Path) -> str:
    if source.is_dir():
        return source.resolve().name
    return source.resolve().parent.name if source.stem == "model" else source.stem


def _check_writable(path: Path, overwrite: bool, debug_quant: bool) -> None:
    """Fail before the (slow) conversion, not after it, when the output cannot be written or
    would replace a file edgecnn did not write."""
    from converters.debug import report_paths

    ensure_writable_dir(path.parent, "choose a writable -o path")
    for target in (path, *(report_paths(path) if debug_quant else ())):
        check_output_file(target, overwrite, "-o")


def _check_model_matches_run(kmodel, info: RunInfo) -> None:
    h, w, c = model_input_shape(kmodel)
    if (h, w, c) != (info.imgsz[0], info.imgsz[1], info.channels):
        raise UsageError(f"the model input {h}x{w}x{c} does not match run.json "
                         f"({info.imgsz[0]}x{info.imgsz[1]}x{info.channels})",
                         "the run directory is inconsistent; retrain or fix run.json")
    if info.task not in md.TASKS:
        raise UsageError(f"run task {info.task!r} is not one of {', '.join(md.TASKS)}")


def _images_for_bare_model(kmodel, calib, calib_size, held_out, data_dir, recipe, notes):
    if not calib:
        if recipe.needs_calibration:
            raise UsageError("int8 conversion of a .keras file without run.json needs "
                             "calibration data", "pass --calib SPEC (the training dataset)")
        return None
    h, w, c = model_input_shape(kmodel)
    probe = RunInfo(task=Task.CLASSIFY, arch="", labels=["?"], imgsz=(h, w), channels=c,
                    color="GRAY" if c == 1 else "RGB", data=calib)
    return cal.load_calibration_images(probe, calib, calib_size, held_out, data_dir)


def _load_converted(data: bytes) -> TFLiteModel:
    try:
        return TFLiteModel(data, probe=Probe.NEVER)  # straight from the converter, here
    except UsageError as err:
        raise UsageError(f"the converted model does not load in the runtime: {err.message}",
                         "rerun with --verbose and report it") from None


def _probe_images(images, spec) -> list[np.ndarray]:
    if images is not None:
        pool = list(images.held_out[:2]) or list(images.calib[:2])
        if pool:
            return pool
    return _random_images(spec, 2)


def _random_images(spec, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (spec.height, spec.width, spec.channels), dtype=np.uint8)
            for _ in range(n)]


def _channels_color(spec) -> str:
    return "GRAY" if spec.channels == 1 else "RGB"


def _keras_outputs(kmodel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Output name -> numpy array for a batch, whatever structure the model returns."""
    # Eager calls in fixed-size chunks: predict() would retrace (and warn) for every new size.
    chunks = [kmodel(x[i:i + 32], training=False) for i in range(0, len(x), 32)]
    out = _concat_outputs(chunks)
    names = list(getattr(kmodel, "output_names", None) or [])
    if isinstance(out, dict):
        return {str(k): np.asarray(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        if len(names) != len(out):
            names = [f"output_{i}" for i in range(len(out))]
        return {n: np.asarray(v) for n, v in zip(names, out)}
    return {names[0] if names else "output_0": np.asarray(out)}


def _concat_outputs(chunks: list):
    first = chunks[0]
    if isinstance(first, dict):
        return {k: np.concatenate([np.asarray(c[k]) for c in chunks]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([np.asarray(c[i]) for c in chunks]) for i in range(len(first))]
    return np.concatenate([np.asarray(c) for c in chunks])


def _detection_positions(kmodel, converted: TFLiteModel, probe: list[np.ndarray], spec
                         ) -> dict[str, int]:
    color = _channels_color(spec)
    x = cal.to_model_inputs(probe[:1], spec, color)
    ref = _keras_outputs(kmodel, x)
    pre = Preprocessor(spec, converted.input)
    tensor, _ = pre(probe[0], color)
    converted.set_input(tensor)
    converted.invoke()
    got = [converted.get_output(i) for i in range(len(converted.outputs))]
    return match_outputs(ref, got)
