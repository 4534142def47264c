"""Fine-tuning a pruned model with its task's loss, on the data it was trained on.

Classification reuses the training pipeline (``edgecnn.data.classify_pipeline``: same
normalization, augmentation and seeded batches as ``edgecnn train``) with cross-entropy;
detection delegates to the detector's own training utilities. Pruning callbacks (the magnitude
masks) ride along in ``callbacks``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

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
    ema_decay: float = 0.0      # detection: evaluate / keep an EMA of the weights (0: off)
    keep_best: bool = False     # detection: end with the weights of the best val mAP@0.5 epoch


@dataclass(frozen=True)
class TaskData:
    """Data for fine-tuning and for measuring the model before and after pruning."""

    task: str
    classify: object | None = None     # edgecnn.data.ClassificationData
    steps_per_epoch: int = 0
    detect: dict | None = None         # detection arrays, names, strides (see _load_detection)


@dataclass(frozen=True)
class SourceRun:
    """A trained run opened for fine-tuning into another run directory."""

    model: object                # keras.Model
    info: RunInfo
    spec: str                    # dataset SPEC to fine-tune on
    data_dir: str | None
    out: Path


def open_source_run(model_path, out, data: str | None = None,
                    data_dir: str | None = None, overwrite: bool = False) -> SourceRun:
    """Load ``model_path`` (safe mode) and its run.json, and check ``out`` can receive the
    fine-tuned run; ``data`` / ``data_dir`` default to the ones run.json names.

    Raises:
        UsageError: ``out`` is a file or the source's own directory, the model has no
            run.json, or no dataset is known.
    """
    from edgecnn.rundir import load_keras_model

    out = Path(out)
    src = Path(model_path)
    from edgecnn.fsutil import check_output_dir

    check_output_dir(out, overwrite)
    if out.resolve() == (src if src.is_dir() else src.parent).resolve():
        raise UsageError("--out is the model's own run directory", "choose another --out")
    model, info = load_keras_model(model_path)
    if info is None:
        raise UsageError(f"{model_path} has no run.json beside it",
                         "pass a run directory written by 'edgecnn train'")
    spec = data or info.data
    if not spec:
        raise UsageError("no dataset given and run.json names none", "pass --data SPEC")
    return SourceRun(model, info, spec, data_dir or info.data_dir, out)


def load_task_data(info: RunInfo, model, spec: str, data_dir: str | None = None,
                   max_train: int | None = None, batch: int = 64) -> TaskData:
    """Load dataset ``spec`` as the model expects it; reject data that does not fit the model.

    Raises:
        UsageError: the dataset's classes or image shape do not match the model.
    """
    if info.task == "classify":
        from edgecnn.data import load_classification

        height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
        val_split = info.val_split
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
        return _load_detection(info, model, spec, max_train, batch)
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
    if data.task == "detect" and data.detect is not None:
        from edgecnn.evaluate.detect import coco_map, ground_truth_of, keras_predict

        d = data.detect
        res = coco_map(ground_truth_of(d["val_samples"]),
                       keras_predict(model, d["val"], d["strides"]), d["names"])
        return {"map50": round(float(res["map50"]), 6), "map": round(float(res["map"]), 6)}
    return {}


def finetune(info: RunInfo, model, data: TaskData, options: FinetuneOptions,
             callbacks: list = (), stream=None, heads=None) -> dict[str, list[float]]:
    """Train ``model`` in place for ``options.epochs``; returns the Keras history.

    ``callbacks`` run after every batch (the magnitude pruner's masks are among them).
    ``heads`` (detection): a model from images to ``(ltrb, logits)`` to train instead of the
    one read off ``model``'s ``boxes`` / ``scores_logits`` layers (the int8 simulation's).
    """
    if options.epochs <= 0:
        return {}
    if data.task == "detect":
        return _finetune_detector(model, data, options, list(callbacks), stream or sys.stdout,
                                  heads)
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


# --- detection: the detector's own assignment, losses and input pipeline (edgecnn.train) ----

def _load_detection(info: RunInfo, model, spec: str, max_train: int | None,
                    batch: int) -> TaskData:
    from edgecnn.data.detect_pipeline import load_arrays
    from edgecnn.data.detection import load_detection_dataset
    from edgecnn.train.detect import MAX_BOXES

    val_split = info.val_split
    ds = load_detection_dataset(spec, split_val=val_split, seed=info.seed)
    names = tuple(ds.names)
    classes = int(model.outputs[1].shape[-1])
    if len(names) != classes or (info.labels and list(names) != list(info.labels)):
        raise UsageError(f"dataset {spec!r} has classes {list(names)[:4]} ({len(names)}) but "
                         f"the model predicts {classes}: {list(info.labels)[:4]}",
                         "pass the dataset the model was trained on")
    train = list(ds.train)
    if max_train:
        rng = np.random.default_rng(info.seed)
        train = [train[i] for i in sorted(rng.permutation(len(train))[:max_train].tolist())]
    imgsz = int(info.imgsz[0])
    strides = tuple(int(s) for s in info.decoder.strides) if info.decoder else ()
    if not strides:
        raise UsageError("run.json of this detector has no decoder strides",
                         "pass a run directory written by 'edgecnn train --task detect'")
    train_arrays = load_arrays(train, imgsz, MAX_BOXES)
    val_arrays = load_arrays(ds.val, imgsz, MAX_BOXES)
    skipped = set(val_arrays.skipped)
    val_samples = [s for s in ds.val if str(s.image_path) not in skipped]
    steps = max(1, len(train_arrays) // max(1, min(batch, len(train_arrays))))
    return TaskData("detect", steps_per_epoch=steps,
                    detect={"train": train_arrays, "val": val_arrays, "names": names,
                            "val_samples": val_samples, "strides": strides, "imgsz": imgsz})


def _finetune_detector(model, data: TaskData, options: FinetuneOptions, callbacks: list,
                       stream, heads=None) -> dict[str, list[float]]:
    """A short version of ``train_detector``'s loop (same assignment, losses, augmentation)
    on an existing model; callbacks get ``on_train_begin`` / ``on_train_batch_end``."""
    from edgecnn.data.detect_pipeline import AugmentConfig, batches
    from edgecnn.lazy import keras, tensorflow
    from edgecnn.runtime import postprocess as pp
    from edgecnn.train import common
    from edgecnn.train.assign import AssignConfig, assign
    from edgecnn.train.detect import _logits_layer
    from edgecnn.train.losses import LossWeights, detection_loss

    tf = tensorflow()
    k = keras()
    d = data.detect
    common.seed_everything(options.seed, deterministic=False)
    train_model = heads if heads is not None else k.Model(
        model.inputs, [model.get_layer("boxes").output,
                       model.get_layer(_logits_layer(model)).output])
    centers, stride_pa = pp.anchor_points((d["imgsz"], d["imgsz"]), d["strides"])
    anchors, stride_t = tf.constant(centers), tf.constant(stride_pa)
    ds, steps = batches(d["train"], options.batch, options.seed,
                        AugmentConfig() if options.augment else None)
    total = steps * options.epochs
    optimizer = common.make_optimizer("adamw", common.learning_rate("cosine", options.lr, total),
                                      5e-4)
    optimizer.build(train_model.trainable_variables)
    num_classes, assign_cfg, weights = len(d["names"]), AssignConfig(), LossWeights()
    variables = train_model.trainable_variables
    # Averaged weights smooth out the noise of small-batch steps (train_detector does the same).
    shadow = ([tf.Variable(tf.identity(v), trainable=False) for v in variables]
              if options.ema_decay > 0 else [])
    step_var = tf.Variable(0.0, trainable=False)

    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(images, gt_boxes, gt_classes):
        with tf.GradientTape() as tape:
            ltrb, logits = train_model(images / 255.0, training=True)
            dist = ltrb * stride_t[None, :, None]
            boxes = tf.concat([anchors[None] - dist[..., :2], anchors[None] + dist[..., 2:]], -1)
            targets = assign(tf.sigmoid(logits), boxes, anchors, gt_boxes, gt_classes,
                             num_classes, assign_cfg)
            loss = detection_loss(logits, ltrb, boxes, targets, anchors, stride_t, weights)[0]
        grads = tape.gradient(loss, train_model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 10.0)
        optimizer.apply_gradients(zip(grads, train_model.trainable_variables))
        step_var.assign_add(1.0)
        decay = options.ema_decay * (1.0 - tf.exp(-step_var / 100.0))
        for s_, v in zip(shadow, variables):
            s_.assign(decay * s_ + (1.0 - decay) * v)
        return loss

    def swap():
        for s_, v in zip(shadow, variables):
            held = tf.identity(v)
            v.assign(s_)
            s_.assign(held)

    for cb in callbacks:
        cb.on_train_begin()
    history: dict[str, list[float]] = {"loss": [], "val_map50": []}
    best: tuple[float, int, list | None] = (-1.0, 0, None)
    it = iter(ds)
    for epoch in range(1, options.epochs + 1):
        total_loss = 0.0
        for step in range(steps):
            total_loss += float(train_step(*next(it)))
            for cb in callbacks:
                cb.on_train_batch_end(step)
        if not np.isfinite(total_loss):
            raise UsageError(f"fine-tuning diverged at epoch {epoch}", "lower --lr")
        swap()
        m50 = evaluate(None, model, data)["map50"]
        if options.keep_best and m50 > best[0]:
            best = (m50, epoch, [np.array(v) for v in variables])   # the evaluated weights
        swap()
        history["loss"].append(total_loss / steps)
        history["val_map50"].append(m50)
        if options.verbose:
            print(f"epoch {epoch}/{options.epochs}  loss {total_loss / steps:.4f}  "
                  f"val mAP50 {m50:.4f}", file=stream, flush=True)
    for s_, v in zip(shadow, variables):
        v.assign(s_)
    if best[2] is not None:
        for v, value in zip(variables, best[2]):
            v.assign(value)
        # one column per epoch (history.csv): 1 on the epoch whose weights are kept
        history["kept"] = [float(e == best[1]) for e in range(1, len(history["loss"]) + 1)]
        if options.verbose:
            print(f"kept epoch {best[1]} (val mAP50 {best[0]:.4f})", file=stream, flush=True)
    return history
