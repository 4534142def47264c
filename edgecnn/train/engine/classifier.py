"""The classifier engine: seeded input pipelines, compile and Keras ``fit`` with progress lines
and the best checkpoint, and top-1 accuracy, for ``train``, prune fine-tuning and ``qat``.

Example:
    recipe = ClassifierRecipe(epochs=3, batch=64, lr=1e-3)
    batches = classifier_batches(data, recipe, mean=(0.0,), std=(255.0,))
    compile_classifier(model, recipe, batches.steps)
    fit = fit_classifier(model, batches, recipe, stream=sys.stdout)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.train.distill import DistillOptions
from edgecnn.train.engine.usage import Usage, UsageClock


@dataclass(frozen=True)
class ClassifierRecipe:
    """How the engine trains (the defaults are fine-tuning's).

    Attributes:
        lr: peak learning rate of ``schedule`` (``cosine``: linear warm-up, then cosine decay).
        warmup_epochs: warm-up length, capped at a tenth of the run (none for 2 epochs or less).
        weight_decay: decoupled weight decay (optimizer ``adamw``).
        patience: early stopping on val accuracy (None: never).
        from_logits: the model ends without softmax / sigmoid.
        fused_bn: train batch norm through TensorFlow's fused kernel
            (:mod:`~edgecnn.train.engine.fused_bn`).
        distill: soft targets from a teacher (:mod:`edgecnn.train.distill`): the batches carry
            them and the loss weighs them in (None: labels only).
        backbone_lr_scale: learning rate of a pretrained backbone's trainable variables
            relative to ``lr`` (the new head trains at ``lr``).
    """

    epochs: int
    batch: int
    lr: float
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    patience: int | None = None
    from_logits: bool = False
    fused_bn: bool = True
    distill: DistillOptions | None = None
    jit_compile: bool = False     # XLA: only to measure the decision (benchmarks/train_speed.py)
    backbone_lr_scale: float = 1.0


@dataclass(frozen=True)
class ClassifierBatches:
    """``tf.data`` pipelines of one run: seeded, augmented training batches (``steps`` of
    ``batch`` samples per epoch) and val batches that split evenly over ``replicas``."""

    train: object
    steps: int
    val: object
    batch: int = 0


@dataclass(frozen=True)
class ClassifierFit:
    """What Keras logged per epoch (no learning rate), and the run's wall time and usage
    (training and the per-epoch validation together)."""

    history: dict[str, list[float]]
    seconds: float
    usage: Usage = Usage(0.0, 0.0, 0)

    @property
    def best_epoch(self) -> int:
        acc = self.history.get("val_accuracy", [])
        return int(max(range(len(acc)), key=acc.__getitem__)) + 1 if acc else 0


def classifier_batches(data, recipe: ClassifierRecipe, mean, std, replicas: int = 1,
                       teacher=None) -> ClassifierBatches:
    """Pipelines for ``data`` (:class:`edgecnn.data.ClassificationData`), normalized as
    ``(x - mean) / std``; with a ``teacher`` (:class:`edgecnn.train.distill.Teacher`) every
    batch's targets also carry its predictions on that (augmented) batch."""
    from edgecnn.data.classify_pipeline import eval_dataset, train_dataset

    train, steps = train_dataset(data.x_train, data.y_train, data.num_classes, recipe.batch,
                                 mean, std, recipe.augment, data.hflip, recipe.seed)
    n_val, val_batch = even_val_split(len(data.x_val), replicas)
    val = eval_dataset(data.x_val[:n_val], data.y_val[:n_val], data.num_classes, val_batch,
                       mean, std)
    if teacher is not None:
        from edgecnn.train.distill import with_teacher_targets

        train = with_teacher_targets(train, teacher, mean, std)
        val = with_teacher_targets(val, teacher, mean, std)
    return ClassifierBatches(train, steps, val, max(1, min(int(recipe.batch), len(data.x_train))))


def compile_classifier(model, recipe: ClassifierRecipe, steps: int) -> None:
    """Optimizer, learning-rate schedule and cross-entropy loss (call inside the strategy's
    scope when training with ``tf.distribute``).

    The step runs as a TensorFlow graph, never XLA: Keras' ``jit_compile="auto"`` picks XLA
    whenever op determinism is off, and on CPU an XLA step of ``dsnet_sf`` (batch 256) took 2.6x
    the CPU time of the graph step (docs/DECISIONS.md).
    """
    from edgecnn.lazy import keras
    from edgecnn.train import common
    from edgecnn.train.engine.backbone import backbone_layers, scale_learning_rate

    k = keras()
    lr = common.learning_rate(recipe.schedule, recipe.lr, steps * recipe.epochs,
                              common.warmup_steps(recipe.warmup_epochs, steps, recipe.epochs))
    if recipe.distill is not None:
        from edgecnn.train.distill import classifier_loss, packed_accuracy

        classes = int(model.outputs[-1].shape[-1])
        loss = classifier_loss(classes, recipe.distill, recipe.label_smoothing,
                               recipe.from_logits)
        metrics = [packed_accuracy(classes)]
    else:
        loss = k.losses.CategoricalCrossentropy(from_logits=recipe.from_logits,
                                                label_smoothing=recipe.label_smoothing)
        metrics = ["accuracy"]
    optimizer = common.make_optimizer(recipe.optimizer, lr, recipe.weight_decay)
    if recipe.backbone_lr_scale != 1.0:
        scale_learning_rate(optimizer, [v for layer in backbone_layers(model)
                                        for v in layer.trainable_weights],
                            recipe.backbone_lr_scale)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                  jit_compile=recipe.jit_compile)


def fit_classifier(model, batches: ClassifierBatches, recipe: ClassifierRecipe, *,
                   checkpoint: Path | None = None, callbacks=(),
                   stream=None, best_so_far: float | None = None) -> ClassifierFit:
    """Train a compiled ``model`` for ``recipe.epochs``.

    Args:
        checkpoint: where to save the model of the best val accuracy (None: keep the last
            weights only, in ``model``).
        best_so_far: the val accuracy ``checkpoint`` holds already (an earlier phase's);
            it is replaced only by a better one.
        callbacks: Keras callbacks run before the engine's own (the magnitude pruner's masks).
        stream: where to print one progress line per epoch (None: silent).
    """
    from edgecnn.lazy import keras
    from edgecnn.train.callbacks import progress_callback

    k = keras()
    callbacks = list(callbacks)
    if checkpoint is not None:
        callbacks.append(k.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_accuracy",
                                                     mode="max", save_best_only=True,
                                                     initial_value_threshold=best_so_far))
    if stream is not None:
        callbacks.append(progress_callback(recipe.epochs, stream=stream))
    if recipe.patience:
        callbacks.append(k.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                   patience=int(recipe.patience)))
    from edgecnn.train.engine.fused_bn import fused_batch_norm

    clock = UsageClock()
    with fused_batch_norm(recipe.fused_bn):     # Keras traces the step inside fit
        history = model.fit(batches.train, epochs=recipe.epochs, steps_per_epoch=batches.steps,
                            validation_data=batches.val, callbacks=callbacks, verbose=0,
                            shuffle=False)
    logged = {key: [float(v) for v in values] for key, values in history.history.items()
              if key not in ("learning_rate", "lr")}
    epochs_run = len(logged.get("loss", []))
    usage = clock.lap(epochs_run * batches.steps * batches.batch)
    return ClassifierFit(logged, usage.seconds, usage)


def even_val_split(n: int, replicas: int, cap: int = 256) -> tuple[int, int]:
    """(samples, batch) for validation inside ``fit`` so every batch splits evenly over replicas.

    Keras' mirrored evaluation fails on a last batch that does not split evenly, so with
    several replicas up to ``replicas - 1`` samples are left out of the per-epoch validation
    (final accuracies are measured on the whole split, outside ``fit``).
    """
    if replicas <= 1:
        return n, min(cap, max(1, n))
    n -= n % replicas
    per = n // replicas
    per_batch = max(d for d in range(1, max(1, cap // replicas) + 1) if per % d == 0)
    return n, per_batch * replicas


def accuracy(model, x: np.ndarray, y: np.ndarray, mean, std, batch: int = 512) -> float:
    """Top-1 accuracy of a Keras classifier on uint8 images normalized as ``(x - mean) / std``,
    rounded to 6 digits."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    correct = 0
    for i in range(0, len(x), batch):
        xb = (x[i:i + batch].astype(np.float32) - mean) / std
        pred = np.asarray(model(xb, training=False)).argmax(axis=-1)
        correct += int((pred == y[i:i + batch]).sum())
    return round(correct / max(1, len(x)), 6)
