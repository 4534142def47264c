"""Fine-tuning a pruned model with its task's loss, on the data it was trained on.

Classification reuses the training pipeline (``edgecnn.data.classify_pipeline``: same
normalization, augmentation and seeded batches as ``edgecnn train``) with cross-entropy;
detection delegates to the detector's own training utilities. Pruning callbacks (the magnitude
masks) ride along in ``callbacks``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.rundir import RunInfo


@dataclass(frozen=True)
class FinetuneOptions:
    epochs: int = 2
    batch: int = 64
    lr: float = 5e-4            # peak of a cosine decay; lower than training: weights are good
    seed: int = 0
    augment: bool = True
    verbose: int = 1


@dataclass(frozen=True)
class TaskData:
    """Data for fine-tuning and for measuring the model before and after pruning."""

    task: str
    classify: object | None = None     # edgecnn.data.ClassificationData
    steps_per_epoch: int = 0


def load_task_data(info: RunInfo, model, spec: str, data_dir: str | None = None,
                   max_train: int | None = None, batch: int = 64) -> TaskData:
    """Load dataset ``spec`` as the model expects it; reject data that does not fit the model.

    Raises:
        UsageError: the dataset's classes or image shape do not match the model.
    """
    if info.task == "classify":
        from edgecnn.data import load_classification

        height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
        val_split = float(info.extra.get("config", {}).get("val_split", 0.1) or 0.1)
        data = load_classification(spec, data_dir=data_dir, imgsz=height,
                                   color="GRAY" if channels == 1 else "RGB",
                                   val_split=val_split, seed=info.seed, max_train=max_train)
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
        return TaskData("classify", data, steps)
    if info.task == "detect":
        raise UsageError("fine-tuning detectors after pruning needs the detector training "
                         "module (edgecnn.train.detect), which this install lacks",
                         "use --epochs 0 to prune without fine-tuning")
    raise UsageError(f"unknown task {info.task!r} in run.json", "use a run from 'edgecnn train'")


def evaluate(info: RunInfo, model, data: TaskData, split: str = "val") -> dict[str, float]:
    """Task metric of a Keras model on a split: ``{"accuracy": ...}`` for classifiers."""
    if data.task == "classify":
        cd = data.classify
        x, y = (cd.x_val, cd.y_val) if split == "val" else (cd.x_test, cd.y_test)
        mean = np.asarray(info.mean, np.float32)
        std = np.asarray(info.std, np.float32)
        correct = 0
        for i in range(0, len(x), 512):
            xb = (x[i:i + 512].astype(np.float32) - mean) / std
            pred = np.asarray(model(xb, training=False)).argmax(axis=-1)
            correct += int((pred == y[i:i + 512]).sum())
        return {"accuracy": round(correct / max(1, len(x)), 6)}
    return {}


def finetune(info: RunInfo, model, data: TaskData, options: FinetuneOptions,
             callbacks: list = (), stream=None) -> dict[str, list[float]]:
    """Train ``model`` in place for ``options.epochs``; returns the Keras history.

    ``callbacks`` run after every batch (the magnitude pruner's masks are among them).
    """
    if options.epochs <= 0:
        return {}
    if data.task != "classify":
        raise UsageError(f"fine-tuning is not available for task {data.task!r}")
    from edgecnn.data.classify_pipeline import eval_dataset, train_dataset
    from edgecnn.lazy import keras
    from edgecnn.train import common

    k = keras()
    cd = data.classify
    common.seed_everything(options.seed, deterministic=False)
    train_ds, steps = train_dataset(cd.x_train, cd.y_train, cd.num_classes, options.batch,
                                    info.mean, info.std, options.augment, cd.hflip, options.seed)
    val_ds = eval_dataset(cd.x_val, cd.y_val, cd.num_classes, 256, info.mean, info.std)
    total = steps * options.epochs
    lr = common.learning_rate("cosine", options.lr, total)
    from_logits = info.output_activation not in ("softmax", "sigmoid")
    model.compile(optimizer=common.make_optimizer("adam", lr),
                  loss=k.losses.CategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
    callbacks = list(callbacks)
    if options.verbose:
        from edgecnn.train.callbacks import progress_callback

        callbacks.append(progress_callback(options.epochs, stream=stream or sys.stdout))
    history = model.fit(train_ds, epochs=options.epochs, steps_per_epoch=steps,
                        validation_data=val_ds, callbacks=callbacks, verbose=0, shuffle=False)
    return {key: [float(v) for v in values] for key, values in history.history.items()
            if key not in ("learning_rate", "lr")}


def steps_for(data: TaskData, options: FinetuneOptions) -> int:
    """Optimizer steps a fine-tuning run of ``options`` takes (for the pruning schedule)."""
    if data.task == "classify":
        n = len(data.classify.x_train)
        return max(1, n // max(1, min(options.batch, n))) * max(0, options.epochs)
    return data.steps_per_epoch * max(0, options.epochs)
