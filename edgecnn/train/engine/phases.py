"""Two-phase fine-tuning of a model on a pretrained backbone, for both engines.

Phase 1 trains only the new layers (the detector's pyramid and head, a classifier's dense
head) with the backbone frozen, so their first, large gradients from random initialization
do not reach the pretrained features. Phase 2 trains every layer, the backbone at
``backbone_lr_scale`` times the learning rate. Throughout, the backbone's batch-norm layers
keep their ImageNet statistics and run in inference mode (``freeze_bn``): batch statistics of
the small batches small datasets train with are noisy. (Not yet measured against the
alternatives on the kangaroo set: ``benchmarks/transfer.py kangaroo`` is the measurement.)

Example:
    plan = TransferPlan(frozen_epochs=3)
    fit = fit_detector_in_phases(model, data, recipe, plan, say=print)
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from edgecnn.errors import UsageError

BACKBONE_LR_SCALE = 0.1
_EPOCH = re.compile(r"^epoch( *)(\d+)/\d+")


@dataclass(frozen=True)
class TransferPlan:
    """Attributes:
        frozen_epochs: epochs of phase 1 (0: every layer trains from the first step).
        backbone_lr_scale: the backbone's learning rate in phase 2, relative to the recipe's.
        freeze_bn: keep the backbone's batch-norm statistics (and scale/shift) as loaded.
    """

    frozen_epochs: int
    backbone_lr_scale: float = BACKBONE_LR_SCALE
    freeze_bn: bool = True

    def __post_init__(self) -> None:
        if self.frozen_epochs < 0:
            raise UsageError(f"--freeze-epochs must be >= 0, got {self.frozen_epochs}")
        if not 0.0 <= self.backbone_lr_scale <= 1.0:
            raise UsageError(f"backbone learning-rate scale must be in [0, 1], got "
                             f"{self.backbone_lr_scale}")

    @classmethod
    def default_for(cls, epochs: int, frozen_epochs: int | None = None) -> TransferPlan:
        """A tenth of the run frozen (at least one epoch, none for a one-epoch run) unless
        ``frozen_epochs`` says otherwise."""
        if frozen_epochs is None:
            frozen_epochs = 0 if epochs < 2 else max(1, round(epochs / 10))
        if frozen_epochs >= epochs:
            raise UsageError(f"--freeze-epochs {frozen_epochs} leaves no epoch to fine-tune "
                             f"the backbone in ({epochs} epochs)",
                             f"use --freeze-epochs {max(0, epochs - 1)} or fewer")
        return cls(frozen_epochs)


def prepare_backbone(model, plan: TransferPlan, frozen: bool) -> list:
    """Freeze (or release) the backbone of ``model`` for a phase; returns its layers."""
    from edgecnn.train.engine.backbone import backbone_layers, freeze, freeze_batch_norm

    layers = backbone_layers(model)
    freeze(layers, frozen)
    if plan.freeze_bn:
        freeze_batch_norm(layers)
    return layers


def fit_detector_in_phases(model, data, recipe, plan: TransferPlan,
                           say: Callable[[str], None] = lambda line: None, **engine_options):
    """Train ``model`` (in place) as ``recipe`` says, in the two phases of ``plan``.

    Phase 1 uses the recipe's learning rate, held constant, and its static assignment
    epochs (the new head's first predictions are noise); phase 2 runs the recipe's schedule
    over the remaining epochs with task-aligned assignment. Only phase 2 is evaluated every
    ``eval_every`` epochs and can provide the best weights. ``engine_options`` go to both
    phases' :class:`~edgecnn.train.engine.detector.DetectorEngine` (a distillation teacher).
    Returns one :class:`~edgecnn.train.engine.detector.DetectorFit` over both phases.
    """
    from edgecnn.train.engine.detector import DetectorEngine

    fits, offset = [], 0
    if plan.frozen_epochs:
        prepare_backbone(model, plan, frozen=True)
        first = replace(recipe, epochs=plan.frozen_epochs, schedule="constant",
                        warmup_epochs=0, eval_every=plan.frozen_epochs, keep_best=False,
                        patience=None, backbone_lr_scale=1.0)
        say(_phase_line(1, first.epochs, plan))
        fits.append(DetectorEngine(model, data, first, **engine_options).fit(
            lambda line: say(renumber(line, 0, recipe.epochs))))
        offset = plan.frozen_epochs
    prepare_backbone(model, plan, frozen=False)
    second = replace(recipe, epochs=recipe.epochs - offset, static_epochs=0,
                     warmup_epochs=min(recipe.warmup_epochs, 1),
                     backbone_lr_scale=plan.backbone_lr_scale)
    say(_phase_line(2, second.epochs, plan))
    fits.append(DetectorEngine(model, data, second, **engine_options).fit(
        lambda line: say(renumber(line, offset, recipe.epochs))))
    return merge_fits(fits, offset)


def renumber(line: str, offset: int, total: int) -> str:
    """An engine's ``epoch i/n`` line of one phase as epoch ``offset + i`` of the whole run's
    ``total``: phase 2's epochs count on from phase 1's, as run.json's kept epoch does."""
    return _EPOCH.sub(lambda m: f"epoch{m.group(1)}{int(m.group(2)) + offset}/{total}", line)


class _Renumbered(io.TextIOBase):
    """A text stream that writes :func:`renumber`'s lines to ``target``."""

    def __init__(self, target, offset: int, total: int):
        self.target, self.offset, self.total = target, offset, total

    def write(self, text: str) -> int:
        self.target.write("".join(renumber(line, self.offset, self.total)
                                  for line in text.splitlines(keepends=True)))
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def _phase_line(phase: int, epochs: int, plan: TransferPlan) -> str:
    if phase == 1:
        return f"phase 1: {epochs} epochs, backbone frozen"
    return (f"phase 2: {epochs} epochs, every layer (backbone lr x{plan.backbone_lr_scale:g}"
            f"{', batch norm frozen' if plan.freeze_bn else ''})")


def merge_fits(fits: list, offset: int):
    """One fit of consecutive phases: histories joined, the best taken from the last phase
    (its epochs counted after the ``offset`` epochs before it)."""
    last = fits[-1]
    history = {key: [v for fit in fits for v in fit.history[key]] for key in last.history}
    merged = replace(last, history=history, seconds=sum(f.seconds for f in fits),
                     usage=_total_usage(fits), input_wait=sum(f.input_wait for f in fits))
    if last.best_epoch:
        merged.best_epoch = last.best_epoch + offset
    if last.kept_epoch:
        merged.kept_epoch = last.kept_epoch + offset
    return merged


def _total_usage(fits: list):
    usage = fits[0].usage
    for fit in fits[1:]:
        usage = usage + fit.usage
    return usage


def fit_classifier_in_phases(model, batches, recipe, plan: TransferPlan, strategy, *,
                             checkpoint=None, stream=None):
    """Compile and fit ``model`` (in place) as ``recipe`` says, in the two phases of ``plan``.

    Phase 1 holds the recipe's learning rate constant; phase 2 runs its schedule over the
    remaining epochs. ``checkpoint`` (if given) ends up holding the best val accuracy of
    either phase, saved with every layer trainable. Returns one
    :class:`~edgecnn.train.engine.classifier.ClassifierFit` over both phases.
    """
    from edgecnn.train.engine import classifier as engine

    def say(line: str) -> None:
        if stream is not None:
            print(line, file=stream, flush=True)

    fits = []
    if plan.frozen_epochs:
        prepare_backbone(model, plan, frozen=True)
        first = replace(recipe, epochs=plan.frozen_epochs, schedule="constant",
                        warmup_epochs=0, patience=None, backbone_lr_scale=1.0)
        say(_phase_line(1, first.epochs, plan))
        with strategy.scope():
            engine.compile_classifier(model, first, batches.steps)
        fits.append(engine.fit_classifier(
            model, batches, first, checkpoint=checkpoint,
            stream=None if stream is None else _Renumbered(stream, 0, recipe.epochs)))
    prepare_backbone(model, plan, frozen=False)
    second = replace(recipe, epochs=recipe.epochs - plan.frozen_epochs,
                     warmup_epochs=min(recipe.warmup_epochs, 1),
                     backbone_lr_scale=plan.backbone_lr_scale)
    say(_phase_line(2, second.epochs, plan))
    with strategy.scope():
        engine.compile_classifier(model, second, batches.steps)
    best = max(fits[0].history.get("val_accuracy", [0.0])) if fits else None
    shifted = (None if stream is None
               else _Renumbered(stream, plan.frozen_epochs, recipe.epochs))
    fits.append(engine.fit_classifier(model, batches, second, checkpoint=checkpoint,
                                      stream=shifted, best_so_far=best))
    if checkpoint is not None and checkpoint.exists():
        _release_saved(checkpoint)
    history = {key: [v for fit in fits for v in fit.history.get(key, [])]
               for key in fits[-1].history}
    return engine.ClassifierFit(history, sum(f.seconds for f in fits), _total_usage(fits))


def _release_saved(path) -> None:
    """Re-save the model at ``path`` with every layer trainable (a checkpoint taken in
    phase 1 records the frozen backbone)."""
    from edgecnn.fsutil import atomic_output
    from edgecnn.lazy import keras
    from edgecnn.train.engine.backbone import release

    model = keras().saving.load_model(path, compile=False, safe_mode=True)
    release(model)
    with atomic_output(path) as tmp:
        model.save(tmp)
