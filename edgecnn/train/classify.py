"""``train_classifier``: dataset SPEC + architecture name -> a run directory.

Training runs through the classifier engine (:mod:`edgecnn.train.engine.classifier`). The run
directory (see ``edgecnn.rundir``) is written atomically: a failed or interrupted run leaves
the previous one (or nothing) in place, never a half-written directory.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_dir
from edgecnn.rundir import MODEL_FILE, Provenance, RunInfo, Split, dataset_reference
from edgecnn.runtime.task import Task
from edgecnn.train import common
from edgecnn.train.common import arch_kwargs, say
from edgecnn.train.config import TrainConfig

DEFAULT_LR = {"adam": 1e-3, "adamw": 2e-3, "sgd": 0.05}
WARMUP_EPOCHS = 1


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
    if config.task is not Task.CLASSIFY:
        raise UsageError(f"train_classifier got task {config.task.value!r}",
                         "use --task classify")
    run_dir = common.check_out_dir(config.out, config.overwrite)  # before any slow work
    from edgecnn.models.registry import Normalization, get_entry
    from edgecnn.train.initial_weights import (
        build_with_weights,
        check_weights_for,
        parse_weights,
    )

    entry = get_entry(config.arch, task="classify")   # fail fast on a bad name, before data
    source = parse_weights(config.weights)
    check_weights_for(source, config.arch, Task.CLASSIFY)
    norm = entry.normalization or Normalization()
    data = _load_data(config, entry)
    say(config, out, f"data  {data.summary()}")
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)

    from edgecnn.train.distribute import make_strategy, replica_count
    from edgecnn.train.engine import classifier as engine

    common.configure_threads(config.threads)
    common.seed_everything(config.seed, config.deterministic)
    input_shape = (data.imgsz, data.imgsz, data.channels)
    teacher = common.teacher_for(config, data.labels, input_shape)
    strategy = make_strategy(config.distribute)
    # From --weights too: the new head trains at the usual rate, the backbone in phase 2 at a
    # tenth of it (edgecnn.train.engine.phases).
    recipe = scratch_recipe(config)
    replicas = replica_count(strategy)
    batches = engine.classifier_batches(data, recipe, norm.mean, norm.std, replicas, teacher)
    with strategy.scope():
        model, weights = build_with_weights(entry, source, input_shape, data.labels,
                                            **arch_kwargs(entry.builder, config))
    say(config, out, f"model {config.arch}: {model.count_params():,} parameters, input "
         f"{input_shape}, {replicas} replica(s), {batches.steps} steps/epoch, "
         f"{config.optimizer} lr {recipe.lr:g} {config.schedule}; {weights.summary()}")
    if teacher is not None:
        say(config, out, f"teacher {teacher.source}: soft targets weight "
             f"{recipe.distill.weight:g}, temperature {recipe.distill.temperature:g}")

    with atomic_dir(run_dir, config.overwrite) as tmp:
        checkpoint = tmp / MODEL_FILE
        best = config.keep == "best"
        fit = _fit(config, model, batches, recipe, strategy, source is not None,
                   checkpoint if best else None, out)
        if not best:
            from edgecnn.train.engine.backbone import release

            release(model)
            model.save(checkpoint)
        metrics = _final_metrics(checkpoint, data, fit, int(model.count_params()), norm)
        metrics["kept_epoch"] = fit.best_epoch if best else metrics["epochs_run"]
        _run_info(config, data, metrics, norm, weights).save(tmp)
        common.write_history_csv(tmp / "history.csv", fit.history)
        from edgecnn.train.curves import dataset_label, plot_curves

        plot_curves(fit.history, tmp / "curves.png",
                    title=f"{config.arch} on {dataset_label(config.data)}")
    test = f", test accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else ""
    say(config, out, f"done  kept epoch {metrics['kept_epoch']} ({config.keep}): val accuracy "
         f"{metrics['val_accuracy']:.4f}{test}; {fit.seconds:.1f}s training "
         f"({fit.usage.summary()}) -> {run_dir}")
    return run_dir


def _load_data(config: TrainConfig, entry):
    """The dataset; architectures with a pretrained input contract take RGB at their own
    default size."""
    from edgecnn.data import load_classification

    pretrained = entry.normalization is not None
    return load_classification(config.data, data_dir=config.data_dir,
                               imgsz=config.imgsz or (entry.default_imgsz if pretrained
                                                      else None),
                               color="RGB" if pretrained else None,
                               val_split=config.val_split, seed=config.seed,
                               max_train=config.max_train)


def _fit(config: TrainConfig, model, batches, recipe, strategy, pretrained: bool,
         checkpoint, out):
    """From scratch: one Keras fit. From --weights: the two phases of fine-tuning."""
    from edgecnn.train.engine import classifier as engine
    from edgecnn.train.engine.phases import TransferPlan, fit_classifier_in_phases

    stream = out if config.verbose else None
    if not pretrained:
        with strategy.scope():
            engine.compile_classifier(model, recipe, batches.steps)
        return engine.fit_classifier(model, batches, recipe, checkpoint=checkpoint,
                                     stream=stream)
    plan = TransferPlan.default_for(config.epochs, config.freeze_epochs)
    return fit_classifier_in_phases(model, batches, recipe, plan, strategy,
                                    checkpoint=checkpoint, stream=stream)


def scratch_recipe(config: TrainConfig):
    """The engine recipe of a from-scratch run of ``config``."""
    from edgecnn.train.engine.classifier import ClassifierRecipe

    return ClassifierRecipe(
        epochs=config.epochs, batch=config.batch,
        lr=config.lr if config.lr is not None else DEFAULT_LR.get(config.optimizer.lower(),
                                                                  1e-3),
        optimizer=config.optimizer, weight_decay=config.weight_decay,
        schedule=config.schedule, warmup_epochs=WARMUP_EPOCHS,
        label_smoothing=config.label_smoothing, augment=config.augment, seed=config.seed,
        patience=config.patience, distill=config.distill_options())


def _final_metrics(checkpoint: Path, data, fit, params: int, norm) -> dict:
    """Accuracies of the kept checkpoint on the whole val (and test) split."""
    from edgecnn.lazy import keras
    from edgecnn.train.engine.classifier import accuracy

    best = keras().saving.load_model(checkpoint, compile=False, safe_mode=True)
    metrics = {"val_accuracy": accuracy(best, data.x_val, data.y_val, norm.mean, norm.std),
               "train_seconds": round(fit.seconds, 2),
               "epochs_run": len(fit.history.get("loss", [])),
               "best_epoch": fit.best_epoch, "params": params, **fit.usage.metrics()}
    if data.has_test:
        metrics["test_accuracy"] = accuracy(best, data.x_test, data.y_test, norm.mean,
                                            norm.std)
    return metrics


def _run_info(config: TrainConfig, data, metrics: dict, norm, weights) -> RunInfo:
    return RunInfo(task=Task.CLASSIFY, arch=config.arch, labels=list(data.labels),
                   imgsz=(data.imgsz, data.imgsz), channels=data.channels, color=data.color,
                   resize="stretch", mean=list(norm.mean), std=list(norm.std),
                   data=dataset_reference(config.data),
                   data_dir=dataset_reference(config.data_dir),
                   split=Split(config.val_split, config.seed),
                   output_activation="softmax", seed=config.seed, metrics=metrics,
                   config=asdict(config),
                   reports={"data": {"warnings": list(data.warnings)},
                            "weights": weights.to_dict()},
                   provenance=Provenance.now("train", parent=weights.parent,
                                             weights=weights.source))
