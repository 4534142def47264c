"""Step ``train``: a compact classifier on scikit-learn's digits (offline, always there)."""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.quickstart.core import QuickstartContext, QuickstartOptions, StepResult

DATA = "digits"
RUN = "digits_run"


@dataclass(frozen=True)
class ClassifierRecipe:
    arch: str
    imgsz: int
    epochs: int
    lr: float


def classifier_recipe(options: QuickstartOptions) -> ClassifierRecipe:
    """dsnet_s at 28x28: digits are 8x8, but dsnet_s is built for MNIST-sized inputs (its
    stages halve the side four times), so the images are upsampled as the runtime would a
    camera frame. ``--fast``: the tiny test model at 16x16."""
    if options.fast:
        return ClassifierRecipe("dsnet_test", 16, 10, 0.02)
    return ClassifierRecipe("dsnet_s", 28, 20, 0.005)


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.rundir import RunInfo
    from edgecnn.runtime.task import Task
    from edgecnn.train.classify import train_classifier
    from edgecnn.train.config import TrainConfig

    r = classifier_recipe(ctx.options)
    # op determinism on (opt-in since issue 16): the README shows this run's outputs, and on
    # 8x8 digits it costs a second or two
    config = TrainConfig(task=Task.CLASSIFY, data=DATA, arch=r.arch, out=str(ctx.path(RUN)),
                         imgsz=r.imgsz, epochs=r.epochs, batch=64, lr=r.lr, optimizer="adamw",
                         weight_decay=5e-4, label_smoothing=0.1, seed=ctx.options.seed,
                         deterministic=True)
    train_classifier(config, stream=ctx.stream)
    m = RunInfo.load(ctx.path(RUN)).metrics
    report = (f"## Training\n\n`{r.arch}` on `{DATA}` ({r.imgsz}x{r.imgsz} gray), {r.epochs} "
              f"epochs, {m['params']:,} parameters: best validation accuracy "
              f"**{m['val_accuracy']:.4f}** (epoch {m['best_epoch']}), "
              f"{m['train_seconds']:.1f} s of training. Run directory: `{RUN}/`.\n\n"
              f"![curves]({RUN}/curves.png)\n")
    return StepResult(
        summary=(f"{r.arch}, {r.epochs} epochs, val accuracy {m['val_accuracy']:.4f} "
                 f"({m['params']:,} params)"),
        outputs={"run": RUN},
        metrics={"arch": r.arch, "imgsz": r.imgsz, "epochs": r.epochs, "params": m["params"],
                 "val_accuracy": m["val_accuracy"], "train_seconds": m["train_seconds"]},
        report=report)
