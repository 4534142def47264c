"""``edgecnn train``: options -> ``TrainConfig`` -> ``edgecnn.train.api.train``."""

from __future__ import annotations

import click


def _list_archs(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from edgecnn.models.registry import list_models

    task = ctx.params.get("task")
    for entry in sorted(list_models(task), key=lambda e: (e.task, e.name)):
        click.echo(f"{entry.name:<16} {entry.task:<9} {entry.description}")
    ctx.exit(0)


@click.command(short_help="Train a classifier or detector from a dataset.")
@click.option("--task", type=click.Choice(["classify", "detect"]), default=None,
              is_eager=True, help="What to train (default: the task of --arch).")
@click.option("--list-archs", is_flag=True, expose_value=False, is_eager=True,
              callback=_list_archs, help="List the registered architectures and exit.")
@click.option("--data", "data", required=True,
              help="Dataset SPEC: digits, fashion-mnist, mnist, an idx folder, an image folder "
                   "(one sub-folder per class), or for detect a YOLO data.yaml / VOC / COCO.")
@click.option("--arch", required=True, help="Architecture name (see --list-archs).")
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--imgsz", type=int, default=None, help="Square input size (default: native).")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=None, help="Peak learning rate (default per optimizer).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam",
              show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine",
              show_default=True, help="Learning-rate schedule.")
@click.option("--label-smoothing", type=float, default=0.0, show_default=True,
              help="classify: cross-entropy label smoothing.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True,
              help="Decoupled weight decay (adamw).")
@click.option("--no-augment", is_flag=True, help="Turn off random shifts/flips.")
@click.option("--mosaic", type=float, default=0.0, show_default=True,
              help="detect: probability that a training image is a 2x2 mosaic of four "
                   "(off for the last tenth of the epochs).")
@click.option("--mixup", type=float, default=0.0, show_default=True,
              help="detect: probability that a training image is blended with another.")
@click.option("--integral-boxes/--dense-boxes", default=None,
              help="detect: predict each box side as a distribution over 17 bins, trained "
                   "with distribution focal loss, or as one value (same outputs and "
                   "decoder). Default: integral for det_lite0 / det_lite0_slim, dense for the "
                   "others; a --weights run's own head.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder holding the fashion-mnist / mnist idx files.")
@click.option("--val-split", type=float, default=0.1, show_default=True)
@click.option("--width", type=float, default=1.0, show_default=True,
              help="Width multiplier (dsnet family).")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multi-worker"]),
              default="none", show_default=True, help="classify: tf.distribute strategy.")
@click.option("--patience", type=int, default=None, help="Early stopping patience (epochs).")
@click.option("--max-train", type=int, default=None, help="Use at most N training samples.")
@click.option("--weights", default=None, metavar="imagenet|RUN_DIR|FILE",
              help="Initial weights: 'imagenet' (architectures on a pretrained backbone, see "
                   "--list-archs), an earlier run directory, or a .keras / .weights.h5 / .pth "
                   "file. Fine-tunes in two phases (backbone frozen, then all layers).")
@click.option("--freeze-epochs", type=int, default=None,
              help="With --weights: epochs with the backbone frozen (default: a tenth).")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (only same-named "
                   "entries are replaced; nothing else is deleted).")
@click.option("--deterministic", is_flag=True,
              help="Force deterministic TensorFlow ops: the same seed gives the same weights "
                   "bit for bit (training is slower).")
@click.option("--threads", type=int, default=None,
              help="CPU cores to train on (default: all this process may use).")
@click.option("--keep", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Weights to save: the epoch with the best val score, or the last epoch's "
                   "(report on val only with 'last': 'best' selects on it).")
@click.option("--teacher", default=None,
              help="Distil from this trained model (run directory or .keras, same classes and "
                   "input): its predictions on each augmented batch become soft targets.")
@click.option("--distill-weight", type=float, default=None,
              help="Weight of the teacher's soft targets (classify: their share of the loss, "
                   "default 0.5; detect: added to the detection loss, default 1.0).")
@click.option("--distill-temperature", type=float, default=None,
              help="classify: softmax temperature of the soft targets (default 4).")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def train(task, data, arch, out, imgsz, epochs, batch, lr, optimizer, schedule, label_smoothing,
          weight_decay, no_augment, mosaic, mixup, integral_boxes, seed, data_dir, val_split,
          width, distribute, patience, max_train, weights, freeze_epochs, overwrite,
          deterministic, threads, keep, teacher, distill_weight, distill_temperature,
          quiet) -> None:
    """Train a classifier or detector; writes model.keras, run.json, labels.txt,
    history.csv and curves.png into --out (atomically).

    \b
    Examples:
      edgecnn train --task classify --data fashion-mnist --arch dsnet_s --epochs 15 --out runs/fm
      edgecnn train --data photos/ --arch efficientnet_lite0 --weights imagenet \\
          --imgsz 160 --epochs 10 --out runs/photos
      edgecnn train --task detect --data kangaroo/ --arch det_lite0 --weights imagenet \\
          --imgsz 256 --epochs 30 --batch 16 --out runs/kangaroo
      edgecnn train --task detect --data more/ --arch det_lite0 --weights runs/kangaroo \\
          --out runs/more          # start from a run (new head if the classes differ)
    """
    from edgecnn.models.registry import get_entry
    from edgecnn.train.api import train as train_model
    from edgecnn.train.config import TrainConfig

    task = get_entry(arch, task).task   # an unknown name or a detector with --task classify: error

    config = TrainConfig(task=task, data=data, arch=arch, out=out, imgsz=imgsz, epochs=epochs,
                         batch=batch, lr=lr, optimizer=optimizer, seed=seed, data_dir=data_dir,
                         val_split=val_split, width=width, augment=not no_augment,
                         distribute=distribute, patience=patience, max_train=max_train,
                         verbose=0 if quiet else 1, schedule=schedule,
                         label_smoothing=label_smoothing, weight_decay=weight_decay,
                         weights=weights, freeze_epochs=freeze_epochs,
                         overwrite=overwrite, deterministic=deterministic, threads=threads,
                         keep=keep, teacher=teacher, distill_weight=distill_weight,
                         distill_temperature=distill_temperature, mosaic=mosaic, mixup=mixup,
                         integral_boxes=integral_boxes)
    train_model(config)
