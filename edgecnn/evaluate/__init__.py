"""Accuracy, COCO mAP and float-vs-quantized comparisons.

:func:`evaluate_model` dispatches on the model's task. A ``.tflite`` is evaluated with the
device runtime only (no TensorFlow import: it measures exactly what the device computes); a run
directory or ``.keras`` file is evaluated with Keras.

Example:
    from edgecnn.evaluate import evaluate_model
    report = evaluate_model("digits_int8.tflite", "digits")
    print(report["accuracy"])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task

__all__ = ["evaluate_model", "model_task"]


def model_task(model: str | os.PathLike, described=None) -> Task:
    """The task of a ``.tflite`` (its metadata, Ultralytics' or ``described``: a
    :class:`~edgecnn.runtime.describe.MetadataOptions`) or a run directory (``run.json``)."""
    path = Path(model)
    if path.is_file() and path.suffix.lower() != ".keras":
        from edgecnn.runtime import metadata as md

        if described is not None and described.task is not None:
            return Task.parse(described.task)
        meta = md.read(md.read_model_file(path))
        if meta is not None:
            return meta.task
        from edgecnn.runtime.describe import resolve_metadata
        from edgecnn.runtime.model import TFLiteModel

        return resolve_metadata(TFLiteModel(path, threads=1), described).task
    from edgecnn.rundir import resolve_model_path

    _, info = resolve_model_path(path)
    return info.task if info is not None else Task.CLASSIFY


def evaluate_model(model: str | os.PathLike, data: str | None = None, *, split: str | None = None,
                   threads: int | None = None, data_dir: str | None = None,
                   max_samples: int | None = None, verify: bool = True,
                   described=None, iou_threshold: float | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate a classifier (accuracy) or detector (COCO mAP) on dataset ``data``.

    Args:
        model: ``.tflite`` (device runtime), run directory or ``.keras`` (Keras).
        data: dataset SPEC; None uses the run's training data (run directories only).
        split: ``test``, ``val``, ``train`` or ``all``. None (default) picks held-out images:
            the dataset's own test (classify) / val (detect) split; for the model's own training
            data or a built-in dataset without one, the validation split drawn from it; for any
            other folder, every image in it.
        threads: interpreter threads for a ``.tflite``.
        data_dir: where built-in datasets live.
        max_samples: evaluate at most this many samples (quick checks).
        verify: refuse a ``.tflite`` whose flatbuffer does not match its metadata's SHA-256.
        described: a :class:`~edgecnn.runtime.describe.MetadataOptions` for a ``.tflite``
            without edgecnn metadata (``--task``, ``--labels``, ...).
        iou_threshold: detectors: the NMS IoU while measuring (default 0.6).
        progress: gets a line with the count and an ETA every few seconds of inference
            (``edgecnn eval`` prints them to stderr).

    Returns:
        classify: ``{"accuracy", "samples", "per_class", ...}``;
        detect: ``{"map50", "map", "per_class", ...}``.
    """
    if max_samples is not None and max_samples < 1:
        raise UsageError(f"--max-samples must be >= 1, got {max_samples}")
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}", "use --threads 1 or more")
    if iou_threshold is not None and not 0.0 < iou_threshold <= 1.0:
        raise UsageError(f"--iou-threshold must be within 0..1, got {iou_threshold}")
    if iou_threshold is not None and Path(model).suffix != ".tflite":
        raise UsageError("--iou-threshold applies to .tflite detectors only", "drop it")
    task = model_task(model, described)
    if task == Task.DETECT:
        from edgecnn.evaluate.detect import evaluate_detection

        return evaluate_detection(model, data, split=split, threads=threads,
                                  max_images=max_samples, verify=verify, described=described,
                                  iou_threshold=iou_threshold, progress=progress)
    if iou_threshold is not None:
        raise UsageError("--iou-threshold applies to detectors only", "drop it")
    from edgecnn.evaluate.classify import evaluate_classifier

    return evaluate_classifier(model, data, split=split, threads=threads,
                               data_dir=data_dir, max_samples=max_samples,
                               verify=verify, described=described, progress=progress).to_dict()
