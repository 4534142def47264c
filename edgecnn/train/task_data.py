"""The data a trained model was made for, loaded as the model expects it, and the model's task
metric on it (prune and ``qat`` measure before and after with these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecnn.errors import UsageError
from edgecnn.rundir import RunInfo
from edgecnn.runtime.task import Task

if TYPE_CHECKING:  # loading either needs TensorFlow: imported when used
    from edgecnn.data import ClassificationData
    from edgecnn.train.engine.detector_data import DetectionData


@dataclass(frozen=True)
class TaskData:
    """Data for fine-tuning a model and for measuring it.

    Attributes:
        classify: :class:`edgecnn.data.ClassificationData` (classifiers).
        detect: :class:`edgecnn.train.engine.detector_data.DetectionData` (detectors).
        steps_per_epoch: optimizer steps per epoch at the batch size it was loaded for.
    """

    task: Task
    classify: ClassificationData | None = None
    detect: DetectionData | None = None
    steps_per_epoch: int = 0

    @property
    def classification(self) -> ClassificationData:
        """``classify``, which a classifier's data always has."""
        if self.classify is None:
            raise UsageError(f"this is {self.task.value} data, not classification data")
        return self.classify

    @property
    def detection(self) -> DetectionData:
        """``detect``, which a detector's data always has."""
        if self.detect is None:
            raise UsageError(f"this is {self.task.value} data, not detection data")
        return self.detect


def load_task_data(info: RunInfo, model, spec: str, data_dir: str | None = None,
                   max_train: int | None = None, batch: int = 64) -> TaskData:
    """Load dataset ``spec`` as ``model`` expects it, with the val split of ``info``.

    Raises:
        UsageError: the dataset's classes or image shape do not match the model.
    """
    if info.task is Task.CLASSIFY:
        return _load_classification(info, model, spec, data_dir, max_train, batch)
    return _load_detection(info, model, spec, max_train, batch)


def evaluate_task(info: RunInfo, model, data: TaskData, split: str = "val") -> dict[str, float]:
    """Task metric of a Keras model: ``{"accuracy"}`` (classifiers, ``val`` or ``test``
    split) or ``{"map50", "map"}`` (detectors, val), rounded to 6 digits."""
    if data.task is Task.CLASSIFY:
        from edgecnn.train.engine.classifier import accuracy

        cd = data.classification
        x, y = (cd.x_val, cd.y_val) if split == "val" else (cd.x_test, cd.y_test)
        return {"accuracy": accuracy(model, x, y, info.mean, info.std)}
    from edgecnn.train.engine.detector_data import detection_map

    return {k: round(v, 6) for k, v in detection_map(model, data.detection).items()}


def _load_classification(info: RunInfo, model, spec: str, data_dir: str | None,
                         max_train: int | None, batch: int) -> TaskData:
    from edgecnn.data import load_classification

    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    data = load_classification(spec, data_dir=data_dir, imgsz=height,
                               color="GRAY" if channels == 1 else "RGB",
                               val_split=info.split.val_split, seed=info.split.seed,
                               max_train=max_train)
    outputs = int(model.outputs[0].shape[-1])
    if data.num_classes != outputs:
        raise UsageError(f"dataset {spec!r} has {data.num_classes} classes but the model "
                         f"predicts {outputs}", "pass the dataset the model was trained on")
    if tuple(data.x_train.shape[1:]) != (height, width, channels):
        raise UsageError(f"dataset {spec!r} gives {data.x_train.shape[1:]} images but the "
                         f"model takes {(height, width, channels)}",
                         "pass the dataset the model was trained on")
    if info.labels and list(data.labels) != list(info.labels):
        raise UsageError(f"dataset {spec!r} labels {list(data.labels)[:4]}... differ from "
                         f"the model's {list(info.labels)[:4]}...",
                         "pass the dataset the model was trained on")
    steps = max(1, len(data.x_train) // max(1, min(batch, len(data.x_train))))
    return TaskData(Task.CLASSIFY, classify=data, steps_per_epoch=steps)


def _load_detection(info: RunInfo, model, spec: str, max_train: int | None,
                    batch: int) -> TaskData:
    from edgecnn.train.engine.detector_data import decode, read_detection_samples

    if info.decoder is None or not info.decoder.strides:
        raise UsageError("run.json of this detector has no decoder strides",
                         "pass a run directory written by 'edgecnn train --task detect'")
    samples = read_detection_samples(spec, info.split.val_split, info.split.seed, max_train)
    names = samples.names
    classes = int(model.outputs[1].shape[-1])
    if len(names) != classes or (info.labels and list(names) != list(info.labels)):
        raise UsageError(f"dataset {spec!r} has classes {list(names)[:4]} ({len(names)}) but "
                         f"the model predicts {classes}: {list(info.labels)[:4]}",
                         "pass the dataset the model was trained on")
    data = decode(samples, int(info.imgsz[0]), tuple(info.decoder.strides), info.mean, info.std)
    return TaskData(Task.DETECT, detect=data, steps_per_epoch=data.steps_per_epoch(batch))
