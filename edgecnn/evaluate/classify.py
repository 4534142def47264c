"""Classification accuracy of a ``.tflite`` (device runtime) or a Keras model on a dataset.

The ``.tflite`` path runs each uint8 image through the runtime :class:`Classifier` (resize,
colour, look-up-table quantization, invoke, scores), one image at a time exactly as on the
device, and imports no TensorFlow. The Keras path feeds the float equivalent of the same
preprocessing in batches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.progress import Progress
from edgecnn.runtime.task import Task

SPLITS = ("test", "val", "train", "all")


@dataclass(frozen=True)
class ClassificationReport:
    """Accuracy overall and per class (per-class accuracy is that class's recall)."""

    accuracy: float
    samples: int
    per_class: dict
    confusion: tuple[tuple[int, ...], ...]
    labels: tuple[str, ...]
    model: str
    backend: str              # "tflite" or "keras"
    data: str
    split: str
    seconds: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    skipped_images: int = 0   # image files of the dataset that failed to decode

    def to_dict(self) -> dict:
        return {"accuracy": round(self.accuracy, 6), "samples": self.samples,
                "per_class": self.per_class, "confusion": [list(r) for r in self.confusion],
                "labels": list(self.labels), "model": self.model, "backend": self.backend,
                "data": self.data, "split": self.split, "seconds": round(self.seconds, 3),
                "skipped_images": self.skipped_images, "warnings": list(self.warnings)}


def accuracy_report(predictions: np.ndarray, targets: np.ndarray, labels: tuple[str, ...],
                    **info) -> ClassificationReport:
    """Accuracy, per-class accuracy and confusion matrix (rows: truth, columns: prediction)."""
    predictions = np.asarray(predictions, np.int64)
    targets = np.asarray(targets, np.int64)
    n = len(labels)
    confusion = np.zeros((n, n), np.int64)
    np.add.at(confusion, (targets, predictions), 1)
    per_class = {}
    for i, name in enumerate(labels):
        count = int(confusion[i].sum())
        per_class[name] = {"accuracy": round(float(confusion[i, i] / count), 6) if count else None,
                           "samples": count}
    accuracy = float(np.mean(predictions == targets)) if len(targets) else 0.0
    return ClassificationReport(accuracy=accuracy, samples=int(len(targets)), per_class=per_class,
                                confusion=tuple(tuple(int(v) for v in row) for row in confusion),
                                labels=tuple(labels), **info)


def evaluate_classifier(model: str | os.PathLike, data: str | None = None, *,
                        split: str | None = None, threads: int | None = None,
                        data_dir: str | None = None, max_samples: int | None = None,
                        verify: bool = True, described=None,
                        progress: Callable[[str], None] | None = None) -> ClassificationReport:
    """Accuracy of a ``.tflite`` (runtime) or run directory / ``.keras`` (Keras) classifier.

    ``split`` None picks the held-out images: the dataset's test split, else the validation
    split of the run's own training data (or of a built-in dataset), else every image: a folder
    that is not the model's training data counts whole. ``progress`` gets a line with the
    count and an ETA every few seconds of inference.

    Raises:
        UsageError: unknown split, missing data, or a dataset that does not fit the model
            (other channels, other classes).
    """
    if split is not None and split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    path = Path(model)
    start = time.perf_counter()
    if path.is_file() and path.suffix.lower() != ".keras":
        return _evaluate_tflite(path, data, split, threads, data_dir, max_samples, start,
                                verify, described, progress)
    return _evaluate_keras(path, data, split, data_dir, max_samples, start, progress)


def _evaluate_tflite(path: Path, data, split, threads, data_dir, max_samples, start,
                     verify: bool = True, described=None, progress=None) -> ClassificationReport:
    from edgecnn.runtime import load

    clf = load(path, threads=threads, verify=verify, described=described)
    if clf.task != Task.CLASSIFY:
        raise UsageError(f"{path} is a {clf.task.value} model, not a classifier")
    if not data:
        raise UsageError("no dataset given", "pass --data SPEC (e.g. --data digits)")
    spec = clf.metadata.input
    dataset = _load_dataset(data, spec, data_dir, seed=0)
    _check_fit(dataset, spec, clf.labels)
    split = _resolve_split(split, dataset, _is_builtin(data))
    x, y = _pick(dataset, split, max_samples)
    predictions = np.empty(len(x), np.int64)
    counter = Progress(len(x), f"eval {path.name}", progress)
    for i, image in enumerate(x):
        counter.update(i)
        # The runner's own top-1 (ties to the lower class id, as on the device).
        predictions[i] = clf(image, dataset.color)[0].index
    counter.finish()
    return accuracy_report(predictions, y, dataset.labels, model=str(path), backend="tflite",
                           data=str(data), split=split, seconds=time.perf_counter() - start,
                           warnings=tuple(dataset.warnings),
                           skipped_images=dataset.skipped_images)


def _evaluate_keras(path: Path, data, split, data_dir, max_samples, start, progress=None
                    ) -> ClassificationReport:
    from converters.calibration import to_model_inputs
    from edgecnn.rundir import load_keras_model

    kmodel, info = load_keras_model(path)
    if info is not None and info.task != Task.CLASSIFY:
        raise UsageError(f"{path} is a {info.task.value} model, not a classifier")
    data = data or (info.data if info is not None else None)
    if not data:
        raise UsageError("no dataset given", "pass --data SPEC (e.g. --data digits)")
    if info is None:
        from converters.convert import default_run_info
        dataset = _load_dataset(data, None, data_dir, seed=0)
        info = default_run_info(kmodel, tuple(dataset.labels), data)
    else:
        dataset = _load_dataset(data, info.input_spec(), data_dir or info.data_dir,
                                seed=info.seed)
    spec = info.input_spec()
    _check_fit(dataset, spec, tuple(info.labels))
    from edgecnn.rundir import dataset_reference

    trained_on = info.data if info.data else None
    split = _resolve_split(split, dataset, _is_builtin(data)
                           or dataset_reference(data) == trained_on)
    x, y = _pick(dataset, split, max_samples)
    parts = []
    counter = Progress(len(x), f"eval {path.name}", progress)
    for i in range(0, len(x), 256):
        counter.update(i)
        batch = to_model_inputs(x[i:i + 256], spec, dataset.color)
        out = kmodel(batch, training=False)
        parts.append(np.asarray(out).reshape(len(batch), -1).argmax(1))
    counter.finish()
    predictions = np.concatenate(parts)
    return accuracy_report(predictions, y, dataset.labels, model=str(path), backend="keras",
                           data=str(data), split=split, seconds=time.perf_counter() - start,
                           warnings=tuple(dataset.warnings),
                           skipped_images=dataset.skipped_images)


def _load_dataset(data: str, spec, data_dir, seed: int):
    """The dataset. Image folders are read at the model's size; other datasets keep their own
    size and colour so that a mismatch is reported, not hidden (the runtime resizes anyway)."""
    from edgecnn.data import idx, load_classification

    path = Path(str(data)).expanduser()
    folder = path.is_dir() and not idx.has_idx(path)
    size = spec.height if (folder and spec is not None and spec.height == spec.width) else None
    dataset = load_classification(str(data), data_dir=data_dir, imgsz=size, seed=seed)
    if folder and spec is not None and spec.channels == 1 and dataset.channels == 3:
        # Files on disk are often grey pictures stored as RGB: accept those, refuse colour.
        if _is_colourful(dataset.x_train):
            raise UsageError(
                f"the model takes {spec.height}x{spec.width}x1 GRAY images but {data} holds "
                f"colour (RGB) images", "evaluate on the kind of data the model was trained on")
        dataset = _to_gray(dataset)
    return dataset


def _is_colourful(images: np.ndarray) -> bool:
    sample = images[:64].astype(np.int16)
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(spread.mean()) > 6.0


def _to_gray(dataset):
    import dataclasses

    import cv2

    def gray(x):
        return np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in x])[..., None] \
            if len(x) else x[..., :1]

    return dataclasses.replace(dataset, x_train=gray(dataset.x_train), x_val=gray(dataset.x_val),
                               x_test=gray(dataset.x_test), color="GRAY")


def _check_fit(dataset, spec, model_labels) -> None:
    """UsageError when the dataset cannot be what the model was trained on."""
    if dataset.channels != spec.channels:
        raise UsageError(
            f"the model takes {spec.height}x{spec.width}x{spec.channels} {spec.color} images but "
            f"dataset {dataset.spec} has {dataset.imgsz}x{dataset.imgsz}x{dataset.channels} "
            f"{dataset.color} images", "evaluate on the kind of data the model was trained on")
    if tuple(dataset.labels) != tuple(model_labels):
        raise UsageError(
            f"dataset {dataset.spec} has classes {_short(dataset.labels)} but the model's labels "
            f"are {_short(model_labels)}", "evaluate on the dataset the model was trained on")


def _is_builtin(data) -> bool:
    from edgecnn.data.classification import _ALIASES, BUILTINS

    name = str(data).lower()
    return _ALIASES.get(name, name) in BUILTINS and not Path(str(data)).exists()


def _resolve_split(split: str | None, dataset, training_data: bool) -> str:
    if split is not None:
        return split
    if dataset.has_test:
        return "test"
    return "val" if training_data else "all"


def _pick(dataset, split: str, max_samples):
    if split == "all":
        x = np.concatenate([dataset.x_train, dataset.x_val])
        y = np.concatenate([dataset.y_train, dataset.y_val])
    else:
        x, y = {"test": (dataset.x_test, dataset.y_test), "val": (dataset.x_val, dataset.y_val),
                "train": (dataset.x_train, dataset.y_train)}[split]
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    if len(x) == 0:
        raise UsageError(f"the {split} split of {dataset.spec} is empty")
    return x, y


def _short(labels) -> str:
    labels = list(labels)
    text = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
    return f"[{text}] ({len(labels)})"
