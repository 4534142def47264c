"""``train_detector``: YOLO / VOC / COCO dataset + detector architecture -> a run directory.

From scratch, through the detector engine (:mod:`edgecnn.train.engine.detector`): static then
task-aligned assignment, BCE on IoU-aware soft targets + CIoU + L1 box losses, batch
augmentation, AdamW / Adam with linear warm-up and cosine decay, and an exponential moving
average (EMA) of the weights, which is what gets evaluated and saved. Validation mAP@0.5
(pycocotools, through the runtime's own decoding and NMS) picks the best checkpoint.

The run directory is written atomically (see :mod:`edgecnn.rundir`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_dir
from edgecnn.rundir import MODEL_FILE, Provenance, RunInfo, Split, dataset_reference
from edgecnn.runtime.metadata import DecoderSpec
from edgecnn.runtime.task import Task
from edgecnn.train import common
from edgecnn.train.common import arch_kwargs, say
from edgecnn.train.config import TrainConfig
from edgecnn.train.engine.ema import EmaOptions

# Adam at 1e-2: the tiny BN detector is step-starved at 2e-3 (synthetic shapes, 128 px, 740 steps:
# val mAP50 0.02 at 2e-3, 0.08 at 5e-3, 0.12 at 1e-2, 0.14 at 2e-2).
DEFAULT_LR = {"adam": 1e-2, "adamw": 2e-3, "sgd": 0.02}
DEFAULT_WEIGHT_DECAY = 5e-4
# Deployment defaults written into the decoder metadata (mAP is measured at 0.001 instead).
SCORE_THRESHOLD, IOU_THRESHOLD, MAX_DETECTIONS = 0.25, 0.45, 100
# From scratch the weights move fast for the first few hundred steps: the average warms up
# over 300 of them.
SCRATCH_EMA = EmaOptions(decay=0.999, tau=300.0)
STATIC_EPOCHS = 3
WARMUP_EPOCHS = 3
# From --weights: the pretrained backbone is good already (its learning rate is a tenth of
# this in phase 2, edgecnn.train.engine.phases), and the average warms up over 100 steps.
# Adam at 1e-3 left the new head underfitting (kangaroo, 40 epochs: val mAP@0.5 0.47 at 1e-3,
# 0.67 at 3e-3, 0.69 at 6e-3, 0.53 at 1e-2; docs/DECISIONS.md).
TRANSFER_LR = {"adam": 3e-3, "adamw": 1e-3, "sgd": 0.01}
TRANSFER_EMA = EmaOptions(decay=0.999, tau=100.0)


def train_detector(config: TrainConfig, stream=None) -> Path:
    """Train ``config.arch`` on the detection dataset ``config.data``; return the run directory.

    Prints one line per epoch (losses, and val mAP when evaluated). ``run.json`` records the
    decoder (strides, thresholds), letterbox input, labels, and the best val mAP@0.5 /
    mAP@0.5:0.95.

    Example:
        run = train_detector(TrainConfig(task="detect", data="synth/data.yaml", arch="det_s",
                                         out="runs/det", epochs=60, batch=32))
    """
    out = stream or sys.stdout
    if config.task is not Task.DETECT:
        raise UsageError(f"train_detector got task {config.task.value!r}", "use --task detect")
    run_dir = common.check_out_dir(config.out, config.overwrite)  # before any slow work
    from edgecnn.models.detect import anchor_count
    from edgecnn.models.registry import Normalization, get_entry
    from edgecnn.train.engine.detector_data import decode, read_detection_samples
    from edgecnn.train.initial_weights import (
        build_with_weights,
        check_weights_for,
        parse_weights,
    )

    entry = get_entry(config.arch, task="detect")  # fail fast on a bad name, before data
    source = parse_weights(config.weights)
    check_weights_for(source, config.arch, Task.DETECT)
    config = replace(config, integral_boxes=box_head(config, source))   # run.json records it
    imgsz, strides = _input_geometry(config, entry)
    samples = read_detection_samples(config.data, config.val_split, config.seed,
                                     config.max_train)
    teacher = common.teacher_for(config, samples.names, (imgsz, imgsz, 3),
                                 anchors=anchor_count(imgsz, strides))
    common.configure_threads(config.threads)
    common.seed_everything(config.seed, config.deterministic)
    # Built before the images are decoded, so weights that do not fit fail in seconds.
    model, weights = build_with_weights(entry, source, (imgsz, imgsz, 3), samples.names,
                                        **arch_kwargs(entry.builder, config))
    norm = entry.normalization or Normalization()
    t0 = time.perf_counter()
    data = decode(samples, imgsz, strides, norm.mean, norm.std)
    say(config, out, f"data  {len(data.train)} train / {len(data.val)} val images, "
         f"{len(data.names)} classes, decoded to {imgsz}x{imgsz} in "
         f"{time.perf_counter() - t0:.1f}s")

    pretrained = source is not None
    recipe = transfer_recipe(config) if pretrained else scratch_recipe(config)
    say(config, out, f"model {config.arch}: {model.count_params():,} parameters, input "
         f"{imgsz}x{imgsz}, strides {list(strides)}, {anchor_count(imgsz, strides)} anchors, "
         f"{'integral' if config.integral_boxes else 'dense'} boxes, "
         f"{data.steps_per_epoch(recipe.batch)} steps/epoch, {recipe.optimizer} lr "
         f"{recipe.lr:g} {recipe.schedule}; {weights.summary()}")
    if teacher is not None:
        say(config, out, f"teacher {teacher.source}: soft scores and boxes, weight "
             f"{config.distill_options().weight:g}")
    fit = _fit(config, model, data, recipe, pretrained, teacher,
               lambda line: say(config, out, line))
    _write_run(run_dir, config, model, data, fit, weights)
    say(config, out, f"done  kept epoch {fit.kept_epoch} ({config.keep}): val mAP50 "
         f"{fit.kept_map50:.4f} mAP {fit.kept_map:.4f}; {fit.seconds:.1f}s training "
         f"({fit.usage.summary()}) -> {run_dir}")
    return run_dir


def box_head(config: TrainConfig, source) -> bool:
    """True for the integral box head: ``--integral-boxes`` / ``--dense-boxes`` when given,
    else the head of the ``--weights`` detector run (its weights fit no other), else the
    architecture's default (:func:`~edgecnn.models.backbones.detectors.default_integral_boxes`).
    """
    from edgecnn.models.backbones.detectors import default_integral_boxes
    from edgecnn.train.initial_weights import source_box_head

    if config.integral_boxes is not None:
        return config.integral_boxes
    followed = source_box_head(source)
    return default_integral_boxes(config.arch) if followed is None else followed


def _fit(config: TrainConfig, model, data, recipe, pretrained: bool, teacher, say):
    """From scratch: one engine run. From --weights: the two phases of fine-tuning."""
    from edgecnn.train.engine.detector import DetectorEngine
    from edgecnn.train.engine.phases import TransferPlan, fit_detector_in_phases

    distill = config.distill_options()
    options = {"teacher": teacher, "distill_weight": distill.weight if distill else 0.0}
    if not pretrained:
        return DetectorEngine(model, data, recipe, **options).fit(say)
    plan = TransferPlan.default_for(config.epochs, config.freeze_epochs)
    return fit_detector_in_phases(model, data, recipe, plan, say, **options)


def transfer_recipe(config: TrainConfig):
    """The engine recipe of a run that starts from ``--weights``: a lower learning rate than
    from scratch, a short warm-up, an average of the weights over ~100 steps."""
    from edgecnn.train.engine.detector import DetectorRecipe

    optimizer = config.optimizer.lower()
    return DetectorRecipe(
        epochs=config.epochs, batch=config.batch,
        lr=config.lr if config.lr is not None else TRANSFER_LR.get(optimizer, 1e-3),
        optimizer=optimizer, weight_decay=config.weight_decay or DEFAULT_WEIGHT_DECAY,
        schedule=config.schedule, warmup_epochs=1, ema=TRANSFER_EMA,
        static_epochs=STATIC_EPOCHS, augment=config.augment, seed=config.seed,
        eval_every=max(1, config.epochs // 10), keep_best=config.keep == "best",
        patience=config.patience, purpose="fine-tuning", augmentation=augmentation(config))


def scratch_recipe(config: TrainConfig):
    """The engine recipe of a from-scratch run of ``config``."""
    from edgecnn.train.engine.detector import DetectorRecipe

    optimizer = config.optimizer.lower()
    return DetectorRecipe(
        epochs=config.epochs, batch=config.batch,
        lr=config.lr if config.lr is not None else DEFAULT_LR.get(optimizer, 2e-3),
        optimizer=optimizer, weight_decay=config.weight_decay or DEFAULT_WEIGHT_DECAY,
        schedule=config.schedule, warmup_epochs=WARMUP_EPOCHS, ema=SCRATCH_EMA,
        static_epochs=STATIC_EPOCHS, augment=config.augment, seed=config.seed,
        eval_every=max(1, config.epochs // 10), keep_best=config.keep == "best",
        patience=config.patience,
        purpose="training", augmentation=augmentation(config))


def augmentation(config: TrainConfig):
    """The augmentation ranges of ``config``: the defaults, plus ``--mosaic`` / ``--mixup``.

    Mosaic stops for the last tenth of the run (at least one epoch), as YOLOv8 closes it: the
    model ends on whole images like the ones it will see.
    """
    from edgecnn.data.detect_pipeline import AugmentConfig

    if not config.augment:
        return None
    off = max(1, config.epochs // 10) if config.mosaic > 0 else 0
    return AugmentConfig(mosaic=config.mosaic, mosaic_off_epochs=off, mixup=config.mixup)


def _input_geometry(config: TrainConfig, entry) -> tuple[int, tuple[int, ...]]:
    from edgecnn.models.detect import detector_strides

    imgsz = int(config.imgsz or entry.default_imgsz or 256)
    strides = tuple(int(s) for s in detector_strides(config.arch))
    if imgsz % max(strides) or imgsz < 2 * max(strides):
        raise UsageError(f"--imgsz {imgsz} must be a multiple of {max(strides)} and at least "
                         f"{2 * max(strides)}", "use e.g. --imgsz 256 or 320")
    return imgsz, strides


def _write_run(run_dir: Path, config: TrainConfig, model, data, fit, weights) -> None:
    """model.keras (the kept weights), run.json, labels.txt, history.csv, curves.png."""
    from edgecnn.train.engine.backbone import release
    from edgecnn.train.engine.detector import USAGE_KEYS

    release(model)   # frozen layers were a training device: the saved model trains whole
    metrics = {"val_map50": round(fit.kept_map50, 6), "val_map": round(fit.kept_map, 6),
               "kept_epoch": fit.kept_epoch, "best_epoch": fit.best_epoch,
               "best_val_map50": round(fit.best_map50, 6),
               "epochs_run": len(fit.history["loss"]),
               "train_seconds": round(fit.seconds, 2), "params": int(model.count_params()),
               "skipped_images": data.skipped, **fit.metrics()}
    info = RunInfo(task=Task.DETECT, arch=config.arch, labels=list(data.names),
                   imgsz=(data.imgsz, data.imgsz), channels=3, color="RGB", resize="letterbox",
                   mean=list(data.mean), std=list(data.std),
                   data=dataset_reference(config.data),
                   data_dir=dataset_reference(config.data_dir),
                   split=Split(config.val_split, config.seed),
                   output_activation="sigmoid", seed=config.seed,
                   decoder=DecoderSpec(type="anchor_free_ltrb", strides=data.strides,
                                       box_output=0, score_output=1,
                                       score_threshold=SCORE_THRESHOLD,
                                       iou_threshold=IOU_THRESHOLD,
                                       max_detections=MAX_DETECTIONS),
                   metrics=metrics, config=asdict(config),
                   reports={"weights": weights.to_dict()},
                   provenance=Provenance.now("train", parent=weights.parent,
                                             weights=weights.source))
    with atomic_dir(run_dir, config.overwrite) as tmp:
        model.save(tmp / MODEL_FILE)
        info.save(tmp)
        common.write_history_csv(tmp / "history.csv", fit.history)
        try:
            from edgecnn.train.curves import dataset_label, plot_curves

            plot_curves({k: v for k, v in fit.history.items() if k not in USAGE_KEYS},
                        tmp / "curves.png", title=f"{config.arch} on {dataset_label(config.data)}")
        except ImportError:
            pass

