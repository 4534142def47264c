"""The detector engine: the epoch loop around :func:`~edgecnn.train.engine.detector_step.
make_train_step`, with val mAP, the best weights and the history.

``train`` (from scratch), prune fine-tuning and ``qat`` (through the simulated-int8 graph) all
run this loop; they differ only in the :class:`DetectorRecipe` they pass and in the forward
they train through.

Example:
    engine = DetectorEngine(model, data, DetectorRecipe(epochs=3, batch=16, lr=1e-3))
    fit = engine.fit(print)
    fit.best_map50, fit.history["loss"]
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgecnn.data.detect_pipeline import AugmentConfig
from edgecnn.errors import UsageError
from edgecnn.train.engine.detector_data import DetectionData, detection_map
from edgecnn.train.engine.ema import EmaOptions
from edgecnn.train.engine.usage import Usage, UsageClock

HISTORY_KEYS = ("loss", "box_loss", "cls_loss", "l1_loss", "val_map50", "val_map", "lr",
                "seconds", "samples_per_second", "cpu_cores")
# History entries that measure the machine, not the model (left out of the curves).
USAGE_KEYS = ("lr", "seconds", "samples_per_second", "cpu_cores")


@dataclass(frozen=True)
class DetectorRecipe:
    """How the engine trains (the defaults are fine-tuning's: no warm-up, no static phase).

    Attributes:
        lr: peak learning rate of ``schedule`` (``cosine``: linear warm-up, then cosine decay).
        warmup_epochs: warm-up length, capped at a tenth of the run (none for 2 epochs or less).
        ema: evaluate and keep an average of the weights (None: the live weights).
        static_epochs: epochs of static (prior-box) assignment before task-aligned assignment,
            capped at a quarter of the run (at least one). From scratch the predictions are
            noise and ranking anchors by them makes the positives jump from step to step; a
            trained model's predictions rank anchors well, so fine-tuning passes 0.
        eval_every: evaluate val mAP every this many epochs; the last epoch and the last 20%
            of the run are always evaluated.
        keep_best: end with the (averaged) weights of the best val mAP@0.5 evaluation, not the
            last ones.
        patience: stop after this many evaluations without improvement (None: never).
        purpose: "training" or "fine-tuning", for messages.
        augmentation: the augmentation ranges when ``augment`` (None: ``AugmentConfig()``).
        lr_floor: the cosine schedule ends at this fraction of ``lr``.
        assign: target assignment settings (None: ``AssignConfig()``).
        fused_bn: train batch norm through TensorFlow's fused kernel (the same function,
            ~25% less CPU per detector step; :mod:`~edgecnn.train.engine.fused_bn`).
        backbone_lr_scale: learning rate of a pretrained backbone's trainable variables
            relative to ``lr`` (the new pyramid and head train at ``lr``).
    """

    epochs: int
    batch: int
    lr: float
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    ema: EmaOptions | None = None
    static_epochs: int = 0
    augment: bool = True
    seed: int = 0
    eval_every: int = 1
    keep_best: bool = True
    patience: int | None = None
    purpose: str = "training"
    augmentation: AugmentConfig | None = None
    lr_floor: float = 0.01
    assign: object = None
    fused_bn: bool = True
    backbone_lr_scale: float = 1.0

    def static_steps(self, steps_per_epoch: int) -> float:
        if self.static_epochs <= 0:
            return 0.0
        return float(min(self.static_epochs, max(1, self.epochs // 4)) * steps_per_epoch)

    def evaluates(self, epoch: int) -> bool:
        return (epoch % self.eval_every == 0 or epoch == self.epochs
                or epoch >= int(0.8 * self.epochs))


@dataclass
class DetectorFit:
    """What a run of the engine measured; ``history`` has one entry per epoch run.

    ``kept_*`` describe the weights the model ends with: the best evaluation's with
    ``keep_best``, else the last epoch's. ``usage`` covers the training steps only (not
    evaluation); ``input_wait`` is the part of its wall time spent waiting for the next batch.
    """

    history: dict[str, list[float]]
    best_epoch: int = 0
    best_map50: float = -1.0
    best_map: float = 0.0
    seconds: float = 0.0
    stopped_early: bool = False
    usage: Usage = Usage(0.0, 0.0, 0)
    input_wait: float = 0.0
    kept_epoch: int = 0
    kept_map50: float = math.nan
    kept_map: float = math.nan

    def metrics(self) -> dict[str, float]:
        """Throughput entries for run.json: samples/s, cores used, input wait fraction."""
        wait = self.input_wait / self.usage.seconds if self.usage.seconds > 0 else 0.0
        return {**self.usage.metrics(), "input_wait_fraction": round(wait, 4)}


@dataclass
class _Best:
    fit: DetectorFit
    weights: list | None = None
    bad_evals: int = 0
    keep: bool = True

    def offer(self, epoch: int, scores: dict, model) -> None:
        if scores["map50"] > self.fit.best_map50:
            self.fit.best_epoch, self.fit.best_map50, self.fit.best_map = (
                epoch, scores["map50"], scores["map"])
            if self.keep:
                self.weights = model.get_weights()
            self.bad_evals = 0
        else:
            self.bad_evals += 1


class DetectorEngine:
    """Trains ``model`` (in place) on ``data`` as ``recipe`` says.

    Args:
        model: the detector whose weights are evaluated, averaged and kept.
        heads: the forward to train, images -> ``(ltrb, logits)``, sharing ``model``'s weights
            (default :func:`~edgecnn.train.engine.detector_step.detector_heads` of ``model``;
            ``qat`` passes the simulated-int8 graph's).
        callbacks: objects with ``on_train_begin()`` and ``on_train_batch_end(step)`` (the
            magnitude pruner's masks), run around the steps.
        teacher: a detector :class:`edgecnn.train.distill.Teacher` on the same anchor grid,
            whose predictions on each batch are soft targets (weight ``distill_weight``).
    """

    def __init__(self, model, data: DetectionData, recipe: DetectorRecipe, *, heads=None,
                 callbacks=(), teacher=None, distill_weight: float = 1.0):
        from edgecnn.data.detect_pipeline import batches
        from edgecnn.lazy import tensorflow
        from edgecnn.train import common
        from edgecnn.train.engine.backbone import normalized
        from edgecnn.train.engine.detector_step import AnchorGrid, detector_heads, make_train_step
        from edgecnn.train.engine.ema import WeightAverage, averaged_variables

        tf = tensorflow()
        self.model, self.data, self.recipe = model, data, recipe
        self.callbacks = list(callbacks)
        self.heads = normalized(heads if heads is not None else detector_heads(model),
                                data.mean, data.std)
        self.grid = AnchorGrid.of(data.imgsz, data.strides)
        anchors = int(self.heads.outputs[0].shape[1])
        if anchors != self.grid.count:
            raise UsageError(f"model {model.name} has {anchors} anchors, the decoder expects "
                             f"{self.grid.count}", "the architecture's strides are misconfigured")
        augment = (recipe.augmentation or AugmentConfig()) if recipe.augment else None
        self.dataset, self.steps = batches(data.train, recipe.batch, recipe.seed, augment,
                                           run_epochs=recipe.epochs)
        self.batch = max(1, min(recipe.batch, len(data.train)))   # what batches() draws
        total = self.steps * recipe.epochs
        lr = common.learning_rate(recipe.schedule, recipe.lr, total,
                                  common.warmup_steps(recipe.warmup_epochs, self.steps,
                                                      recipe.epochs), recipe.lr_floor)
        self.optimizer = _optimizer(model, recipe, lr)
        self.optimizer.build(self.heads.trainable_variables)
        self.average = (WeightAverage(averaged_variables(model), recipe.ema)
                        if recipe.ema is not None else None)
        step = make_train_step(self.heads, self.optimizer, self.grid, len(data.names),
                               static_steps=recipe.static_steps(self.steps),
                               average=self.average, fused_bn=recipe.fused_bn,
                               teacher=teacher, distill_weight=distill_weight,
                               assign_config=recipe.assign)
        self.train_step = tf.function(step, reduce_retracing=True, autograph=False)

    def fit(self, say: Callable[[str], None] = lambda line: None) -> DetectorFit:
        """Run the epochs; ``say`` gets one progress line per epoch."""
        from edgecnn.train.common import current_lr

        recipe = self.recipe
        fit = DetectorFit({key: [] for key in HISTORY_KEYS})
        best = _Best(fit, keep=recipe.keep_best)
        for cb in self.callbacks:
            cb.on_train_begin()
        start = time.perf_counter()
        batches = iter(self.dataset)
        for epoch in range(1, recipe.epochs + 1):
            t_epoch = time.perf_counter()
            clock = UsageClock()
            means, wait = self._run_epoch(batches, epoch)
            usage = clock.lap(self.steps * self.batch)
            fit.usage, fit.input_wait = fit.usage + usage, fit.input_wait + wait
            scores = {"map50": math.nan, "map": math.nan}
            if recipe.evaluates(epoch):
                with self._averaged():
                    scores = detection_map(self.model, self.data)
                    best.offer(epoch, scores, self.model)
            seconds = time.perf_counter() - t_epoch
            for key, value in zip(HISTORY_KEYS, (*means, scores["map50"], scores["map"],
                                                 current_lr(self.optimizer), seconds,
                                                 usage.samples_per_second, usage.cores)):
                fit.history[key].append(float(value))
            say(_epoch_line(epoch, recipe.epochs, means, scores, seconds, usage)
                + _eta(fit.history["seconds"], recipe.epochs))
            if recipe.patience and best.bad_evals >= recipe.patience:
                say(f"early stop: no mAP improvement in {best.bad_evals} evaluations")
                fit.stopped_early = True
                break
        fit.seconds = time.perf_counter() - start
        self._finish(best)
        if best.weights is not None:
            fit.kept_epoch, fit.kept_map50, fit.kept_map = (fit.best_epoch, fit.best_map50,
                                                            fit.best_map)
        else:
            fit.kept_epoch = len(fit.history["loss"])
            fit.kept_map50, fit.kept_map = scores["map50"], scores["map"]
        return fit

    def evaluate(self) -> dict[str, float]:
        """Val ``{"map50", "map"}`` of the weights the engine keeps (the average, if any)."""
        with self._averaged():
            return detection_map(self.model, self.data)

    @contextlib.contextmanager
    def _averaged(self):
        """The model holds the averaged weights inside the block (the live ones after it)."""
        if self.average is None:
            yield
            return
        self.average.swap()
        try:
            yield
        finally:
            self.average.swap()

    def _run_epoch(self, batches, epoch: int) -> tuple[np.ndarray, float]:
        """Mean losses of the epoch's steps, and the seconds spent waiting for batches."""
        sums, wait = np.zeros(4), 0.0
        for step in range(self.steps):
            t = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - t
            parts = self.train_step(*batch)
            sums += [float(p) for p in parts]
            for cb in self.callbacks:
                cb.on_train_batch_end(step)
        if not np.isfinite(sums).all():
            raise UsageError(f"{self.recipe.purpose} diverged at epoch {epoch} "
                             f"(loss {sums[0] / self.steps})",
                             "lower --lr or check the labels with 'edgecnn data check'")
        return sums / self.steps, wait

    def _finish(self, best: _Best) -> None:
        """Leave the model holding what the recipe keeps: the best or the last (average)."""
        if self.average is not None:
            self.average.swap()
        if best.weights is not None:
            self.model.set_weights(best.weights)


def _optimizer(model, recipe: DetectorRecipe, lr):
    """The recipe's optimizer; a pretrained backbone's variables at ``backbone_lr_scale``."""
    from edgecnn.train import common
    from edgecnn.train.engine.backbone import backbone_layers, scale_learning_rate

    optimizer = common.make_optimizer(recipe.optimizer, lr, recipe.weight_decay)
    if recipe.backbone_lr_scale != 1.0:
        variables = [v for layer in backbone_layers(model) for v in layer.trainable_weights]
        scale_learning_rate(optimizer, variables, recipe.backbone_lr_scale)
    return optimizer


def _eta(seconds: list[float], epochs: int) -> str:
    from edgecnn.progress import epochs_eta

    eta = epochs_eta(seconds, epochs)
    return f"  {eta}" if eta else ""


def _epoch_line(epoch: int, epochs: int, means, scores: dict, seconds: float,
                usage: Usage) -> str:
    score = ("" if math.isnan(scores["map50"])
             else f"  val mAP50 {scores['map50']:.4f} mAP {scores['map']:.4f}")
    return (f"epoch {epoch}/{epochs}  loss {means[0]:.4f} (box {means[1]:.3f} cls "
            f"{means[2]:.3f} l1 {means[3]:.3f}){score}  {seconds:.1f}s ({usage.summary()})")
