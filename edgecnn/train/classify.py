"""``train_classifier``: dataset SPEC + architecture name -> a run directory.

The run directory (see ``edgecnn.rundir``) is written atomically: a failed or interrupted run
leaves the previous one (or nothing) in place, never a half-written directory.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_dir
from edgecnn.rundir import MODEL_FILE, Provenance, RunInfo, Split, dataset_reference
from edgecnn.runtime.task import Task
from edgecnn.train import common
from edgecnn.train.common import arch_kwargs, check_numbers, say
from edgecnn.train.config import TrainConfig

DEFAULT_LR = {"adam": 1e-3, "adamw": 2e-3, "sgd": 0.05}
MEAN, STD = (0.0,), (255.0,)


def train_classifier(config: TrainConfig, stream=None) -> Path:
    """Train ``config.arch`` on ``config.data``; return the run directory written.

    Prints one line per epoch (to ``stream``, default stdout). The best checkpoint by
    validation accuracy is kept; ``run.json`` records data, labels, input size, colour,
    normalization and the final val/test accuracy.

    Example:
        run = train_classifier(TrainConfig(task="classify", data="digits", arch="dsnet_test",
                                           out="runs/digits", epochs=3))
    """
    out = stream or sys.stdout
    if config.task != "classify":
        raise UsageError(f"train_classifier got task {config.task!r}", "use --task classify")
    check_numbers(config)
    common.check_out_dir(config.out, config.overwrite)  # before any slow work
    from edgecnn.data import load_classification
    from edgecnn.models.registry import get_entry

    entry = get_entry(config.arch, task="classify")   # fail fast on a bad name, before data
    imgsz = config.imgsz or None
    data = load_classification(config.data, data_dir=config.data_dir, imgsz=imgsz,
                               val_split=config.val_split, seed=config.seed,
                               max_train=config.max_train)
    say(config, out, f"data  {data.summary()}")
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    from edgecnn.lazy import keras
    from edgecnn.train.callbacks import progress_callback
    from edgecnn.train.distribute import make_strategy, replica_count
    from edgecnn.data.classify_pipeline import eval_dataset, train_dataset

    k = keras()
    common.seed_everything(config.seed, config.deterministic)
    strategy = make_strategy(config.distribute)
    input_shape = (data.imgsz, data.imgsz, data.channels)
    train_ds, steps = train_dataset(data.x_train, data.y_train, data.num_classes, config.batch,
                                    MEAN, STD, config.augment, data.hflip, config.seed)
    replicas = replica_count(strategy)
    n_val, val_batch = _even_val_split(len(data.x_val), replicas)
    val_ds = eval_dataset(data.x_val[:n_val], data.y_val[:n_val], data.num_classes, val_batch,
                          MEAN, STD)
    peak = config.lr if config.lr is not None else DEFAULT_LR.get(config.optimizer.lower(), 1e-3)
    total = steps * config.epochs
    with strategy.scope():
        model = entry.builder(input_shape=input_shape, num_classes=data.num_classes,
                              **arch_kwargs(entry.builder, config))
        lr = common.learning_rate(config.schedule, peak, total,
                                  warmup_steps=min(steps, total // 10) if config.epochs > 2 else 0)
        model.compile(optimizer=common.make_optimizer(config.optimizer, lr, config.weight_decay),
                      loss=k.losses.CategoricalCrossentropy(
                          label_smoothing=config.label_smoothing),
                      metrics=["accuracy"])
    say(config, out, f"model {config.arch}: {model.count_params():,} parameters, input "
         f"{input_shape}, {replicas} replica(s), {steps} steps/epoch, "
         f"{config.optimizer} lr {peak:g} {config.schedule}")

    run_dir = common.check_out_dir(config.out, config.overwrite)
    with atomic_dir(run_dir, config.overwrite) as tmp:
        best_path = tmp / MODEL_FILE
        progress = progress_callback(config.epochs, stream=out)
        callbacks = [k.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy",
                                                 mode="max", save_best_only=True)]
        if config.verbose:
            callbacks.append(progress)
        if config.patience:
            callbacks.append(k.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                       patience=int(config.patience)))
        start = time.perf_counter()
        history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps,
                            validation_data=val_ds, callbacks=callbacks, verbose=0,
                            shuffle=False)
        train_seconds = time.perf_counter() - start
        hist = {key: [float(v) for v in values] for key, values in history.history.items()
                if key not in ("learning_rate", "lr")}

        best = k.saving.load_model(best_path, compile=False, safe_mode=True)
        metrics = {"val_accuracy": _accuracy(best, data.x_val, data.y_val),
                   "train_seconds": round(train_seconds, 2),
                   "epochs_run": len(hist.get("loss", [])),
                   "best_epoch": int(max(range(len(hist["val_accuracy"])),
                                         key=hist["val_accuracy"].__getitem__)) + 1,
                   "params": int(model.count_params())}
        if data.has_test:
            metrics["test_accuracy"] = _accuracy(best, data.x_test, data.y_test)
        info = RunInfo(task=Task.CLASSIFY, arch=config.arch, labels=list(data.labels),
                       imgsz=(data.imgsz, data.imgsz), channels=data.channels, color=data.color,
                       resize="stretch", mean=list(MEAN), std=list(STD),
                       data=dataset_reference(config.data),
                       data_dir=dataset_reference(config.data_dir),
                       split=Split(config.val_split, config.seed),
                       output_activation="softmax", seed=config.seed, metrics=metrics,
                       config=asdict(config),
                       reports={"data": {"warnings": list(data.warnings)}},
                       provenance=Provenance.now("train"))
        info.save(tmp)
        common.write_history_csv(tmp / "history.csv", hist)
        from edgecnn.report.plots import plot_curves

        plot_curves(hist, tmp / "curves.png", title=f"{config.arch} on {config.data}")
    test = f", test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else ""
    say(config, out, f"done  best epoch {metrics['best_epoch']}: val accuracy "
         f"{metrics['val_accuracy']:.4f}{test}; {train_seconds:.1f}s training -> {run_dir}")
    return run_dir


def _even_val_split(n: int, replicas: int, cap: int = 256) -> tuple[int, int]:
    """(samples, batch) for validation inside ``fit`` so every batch splits evenly over replicas.

    Keras' mirrored evaluation fails on a last batch that does not split evenly, so with
    several replicas up to ``replicas - 1`` samples are left out of the per-epoch validation
    (the final accuracies in run.json are measured on the whole split, outside ``fit``).
    """
    if replicas <= 1:
        return n, min(cap, max(1, n))
    n -= n % replicas
    per = n // replicas
    per_batch = max(d for d in range(1, max(1, cap // replicas) + 1) if per % d == 0)
    return n, per_batch * replicas


def _accuracy(model, x, y, batch: int = 512) -> float:
    """Top-1 accuracy of a Keras model on uint8 images (normalized as in training)."""
    import numpy as np

    correct = 0
    for i in range(0, len(x), batch):
        xb = (x[i:i + batch].astype(np.float32) - np.float32(MEAN[0])) / np.float32(STD[0])
        pred = np.asarray(model(xb, training=False)).argmax(axis=1)
        correct += int((pred == y[i:i + batch]).sum())
    return round(correct / max(1, len(x)), 6)
