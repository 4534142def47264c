"""Fine-tuning a trained model on its task: the engines with the fine-tuning recipe.

Prune and ``qat`` call :func:`finetune`; the training code is the engines'
(:mod:`edgecnn.train.engine`), so fine-tuning uses the same input pipelines, assignment,
losses and loop as ``edgecnn train``. What differs is the recipe, on purpose:

- detection: AdamW (weight decay 5e-4), cosine decay from ``lr`` without warm-up, val mAP
  every epoch, and task-aligned assignment from the first step (no static warm-up: a trained
  model's predictions already rank anchors well, and prior boxes would pull it to other
  positives for the first epochs).
- the weight average, when on, warms up over 100 steps instead of training's 300: the starting
  weights are already good, so averaging them early costs nothing (the QAT results in
  docs/BENCHMARKS.md were measured so).
- classification: Adam with cosine decay, the last epoch's weights.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from edgecnn.errors import UsageError
from edgecnn.rundir import RunInfo
from edgecnn.runtime.task import Task
from edgecnn.train.task_data import TaskData

FINETUNE_EMA_TAU = 100.0
DETECT_WEIGHT_DECAY = 5e-4


@dataclass(frozen=True)
class FinetuneOptions:
    """Attributes:
        lr: peak of a cosine decay; lower than training's, the weights are good already.
        ema_decay: detection: evaluate and keep an average of the weights (0: off).
        keep_best: detection: end with the weights of the best val mAP@0.5 epoch.
    """

    epochs: int = 2
    batch: int = 64
    lr: float = 5e-4
    seed: int = 0
    augment: bool = True
    verbose: int = 1
    ema_decay: float = 0.0
    keep_best: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise UsageError(f"--epochs must be >= 0, got {self.epochs}")
        if self.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {self.batch}")
        if self.lr <= 0:
            raise UsageError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"--ema must be in [0, 1), got {self.ema_decay}",
                             "use e.g. --ema 0.999")


def finetune(info: RunInfo, model, data: TaskData, options: FinetuneOptions,
             callbacks: Sequence = (), stream=None, heads=None) -> dict[str, list[float]]:
    """Train ``model`` in place for ``options.epochs``; returns the per-epoch history.

    Args:
        callbacks: run after every batch (the magnitude pruner's masks are among them).
        heads: detection: a model from images to ``(ltrb, logits)`` to train through instead
            of ``model``'s own layers (the int8 simulation's).
    """
    if options.epochs <= 0:
        return {}
    from edgecnn.train import common

    stream = stream or sys.stdout
    # Fine-tuning has never forced op determinism (it can only be switched on per process).
    common.seed_everything(options.seed, deterministic=False)
    if data.task is Task.DETECT:
        return _finetune_detector(model, data, options, list(callbacks), stream, heads)
    return _finetune_classifier(info, model, data, options, list(callbacks), stream)


def steps_for(data: TaskData, options: FinetuneOptions) -> int:
    """Optimizer steps a fine-tuning run of ``options`` takes (for the pruning schedule)."""
    if data.task is Task.CLASSIFY:
        n = len(data.classification.x_train)
        return max(1, n // max(1, min(options.batch, n))) * max(0, options.epochs)
    return data.steps_per_epoch * max(0, options.epochs)


def detector_recipe(options: FinetuneOptions):
    """The detector engine's fine-tuning recipe for ``options`` (see the module docstring)."""
    from edgecnn.train.engine.detector import DetectorRecipe
    from edgecnn.train.engine.ema import EmaOptions

    ema = (EmaOptions(decay=options.ema_decay, tau=FINETUNE_EMA_TAU)
           if options.ema_decay > 0 else None)
    return DetectorRecipe(epochs=options.epochs, batch=options.batch, lr=options.lr,
                          optimizer="adamw", weight_decay=DETECT_WEIGHT_DECAY,
                          schedule="cosine", warmup_epochs=0, ema=ema, static_epochs=0,
                          augment=options.augment, seed=options.seed, eval_every=1,
                          keep_best=options.keep_best, patience=None, purpose="fine-tuning")


def _finetune_detector(model, data: TaskData, options: FinetuneOptions, callbacks: list,
                       stream, heads) -> dict[str, list[float]]:
    from edgecnn.train.engine.detector import DetectorEngine

    say = (lambda line: print(line, file=stream, flush=True)) if options.verbose else None
    engine = DetectorEngine(model, data.detection, detector_recipe(options), heads=heads,
                            callbacks=callbacks)
    fit = engine.fit(say or (lambda line: None))
    history = dict(fit.history)
    if options.keep_best and fit.best_epoch:
        # one column per epoch (history.csv): 1 on the epoch whose weights are kept
        history["kept"] = [float(e == fit.best_epoch)
                           for e in range(1, len(history["loss"]) + 1)]
        if say:
            say(f"kept epoch {fit.best_epoch} (val mAP50 {fit.best_map50:.4f})")
    return history


def _finetune_classifier(info: RunInfo, model, data: TaskData, options: FinetuneOptions,
                         callbacks: list, stream) -> dict[str, list[float]]:
    from edgecnn.train.engine import classifier as engine

    recipe = engine.ClassifierRecipe(
        epochs=options.epochs, batch=options.batch, lr=options.lr, optimizer="adam",
        schedule="cosine", warmup_epochs=0, augment=options.augment, seed=options.seed,
        from_logits=info.output_activation not in ("softmax", "sigmoid"))
    batches = engine.classifier_batches(data.classification, recipe, info.mean, info.std)
    engine.compile_classifier(model, recipe, batches.steps)
    fit = engine.fit_classifier(model, batches, recipe, callbacks=callbacks,
                                stream=stream if options.verbose else None)
    return fit.history
