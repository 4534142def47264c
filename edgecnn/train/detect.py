"""``train_detector``: YOLO / VOC / COCO dataset + detector architecture -> a run directory.

From scratch, in one custom loop: task-aligned assignment (:mod:`edgecnn.train.assign`), BCE on
IoU-aware soft targets + CIoU + L1 box losses (:mod:`edgecnn.train.losses`), batch
augmentation in the graph (:mod:`edgecnn.data.detect_pipeline`), AdamW with linear warm-up and
cosine decay, and an exponential moving average (EMA) of the weights, which is what gets
evaluated and saved. Validation mAP@0.5 (pycocotools, through the runtime's own decoding and
NMS) picks the best checkpoint.

The run directory is written atomically (see :mod:`edgecnn.rundir`).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_dir
from edgecnn.rundir import MODEL_FILE, Provenance, RunInfo, Split, dataset_reference
from edgecnn.runtime.metadata import DecoderSpec
from edgecnn.runtime.task import Task
from edgecnn.train import common
from edgecnn.train.common import arch_kwargs, check_numbers, say
from edgecnn.train.config import TrainConfig

# Adam at 1e-2: the tiny BN detector is step-starved at 2e-3 (synthetic shapes, 128 px, 740 steps:
# val mAP50 0.02 at 2e-3, 0.08 at 5e-3, 0.12 at 1e-2, 0.14 at 2e-2).
DEFAULT_LR = {"adam": 1e-2, "adamw": 2e-3, "sgd": 0.02}
DEFAULT_WEIGHT_DECAY = 5e-4
MEAN, STD = (0.0,), (255.0,)
MAX_BOXES = 100
# Deployment defaults written into the decoder metadata (mAP is measured at 0.001 instead).
SCORE_THRESHOLD, IOU_THRESHOLD, MAX_DETECTIONS = 0.25, 0.45, 100
EMA_DECAY, EMA_TAU = 0.999, 300.0
STATIC_EPOCHS = 3


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
    if config.task != "detect":
        raise UsageError(f"train_detector got task {config.task!r}", "use --task detect")
    check_numbers(config)
    common.check_out_dir(config.out, config.overwrite)  # before any slow work
    from edgecnn.data.detection import load_detection_dataset
    from edgecnn.models.registry import get_entry

    entry = get_entry(config.arch, task="detect")  # fail fast on a bad name, before data
    imgsz = int(config.imgsz or entry.default_imgsz or 256)
    strides = _strides(config.arch)
    if imgsz % max(strides) or imgsz < 2 * max(strides):
        raise UsageError(f"--imgsz {imgsz} must be a multiple of {max(strides)} and at least "
                         f"{2 * max(strides)}", "use e.g. --imgsz 256 or 320")
    ds = load_detection_dataset(config.data, split_val=config.val_split, seed=config.seed)
    names = tuple(ds.names)
    train_samples = list(ds.train)
    if config.max_train:
        rng = np.random.default_rng(config.seed)
        pick = sorted(rng.permutation(len(train_samples))[:config.max_train].tolist())
        train_samples = [train_samples[i] for i in pick]
    if not train_samples or not ds.val:
        raise UsageError(f"{config.data} needs both training and validation images "
                         f"(found {len(train_samples)} / {len(ds.val)})",
                         "add a val split to data.yaml or use --val-split")
    from edgecnn.data.detect_pipeline import AugmentConfig, batches, load_arrays

    t0 = time.perf_counter()
    train_arrays = load_arrays(train_samples, imgsz, MAX_BOXES)
    val_arrays = load_arrays(ds.val, imgsz, MAX_BOXES)
    for label, arr in (("train", train_arrays), ("val", val_arrays)):
        if arr.skipped:
            print(f"warning: {len(arr.skipped)} {label} images failed to decode and were "
                  f"skipped, e.g. {arr.skipped[0]}", file=sys.stderr, flush=True)
    val_samples = [s for s in ds.val if str(s.image_path) not in set(val_arrays.skipped)]
    say(config, out, f"data  {len(train_arrays)} train / {len(val_arrays)} val images, "
         f"{len(names)} classes, decoded to {imgsz}x{imgsz} in {time.perf_counter() - t0:.1f}s")

    from edgecnn.lazy import keras, tensorflow
    from edgecnn.runtime import postprocess as pp
    from edgecnn.train.assign import AssignConfig, assign
    from edgecnn.train.losses import LossWeights, detection_loss

    tf = tensorflow()
    k = keras()
    common.seed_everything(config.seed, config.deterministic)
    kwargs = arch_kwargs(entry.builder, config)
    input_shape = (imgsz, imgsz, 3)
    model = entry.builder(input_shape=input_shape, num_classes=len(names), **kwargs)
    ema = entry.builder(input_shape=input_shape, num_classes=len(names), **kwargs)
    ema.set_weights(model.get_weights())
    train_model = k.Model(model.inputs, [model.get_layer("boxes").output,
                                         model.get_layer(_logits_layer(model)).output])

    centers, stride_pa = pp.anchor_points((imgsz, imgsz), strides)
    anchors = tf.constant(centers)
    stride_t = tf.constant(stride_pa)
    n_anchor = int(model.outputs[0].shape[1])
    if n_anchor != centers.shape[0]:
        raise UsageError(f"{config.arch} has {n_anchor} anchors, the decoder expects "
                         f"{centers.shape[0]}", "the architecture's strides are misconfigured")

    augment = AugmentConfig() if config.augment else None
    train_ds, steps = batches(train_arrays, config.batch, config.seed, augment)
    total = steps * config.epochs
    opt_name = config.optimizer.lower()
    peak = config.lr if config.lr is not None else DEFAULT_LR.get(opt_name, 2e-3)
    lr = common.learning_rate(config.schedule, peak, total,
                              warmup_steps=min(3 * steps, total // 10) if config.epochs > 2 else 0)
    wd = config.weight_decay or DEFAULT_WEIGHT_DECAY
    optimizer = common.make_optimizer(opt_name, lr, wd)
    optimizer.build(train_model.trainable_variables)
    assign_cfg, weights = AssignConfig(), LossWeights()
    num_classes = len(names)
    ema_pairs = list(zip(ema.weights, model.weights))
    step_var = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    # static (prior-box) assignment for the first epochs, then task-aligned (YOLOv6 style)
    static_steps = float(min(STATIC_EPOCHS, max(1, config.epochs // 4)) * steps)

    # autograph off: plain graph code, no Python control flow on tensors
    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(images, gt_boxes, gt_classes):
        x = images / 255.0
        with tf.GradientTape() as tape:
            ltrb, logits = train_model(x, training=True)
            d = ltrb * stride_t[None, :, None]
            boxes = tf.concat([anchors[None] - d[..., :2], anchors[None] + d[..., 2:]], -1)
            targets = assign(tf.sigmoid(logits), boxes, anchors, gt_boxes, gt_classes,
                             num_classes, assign_cfg, stride_t, step_var < static_steps)
            loss, lbox, lcls, l1 = detection_loss(logits, ltrb, boxes, targets, anchors,
                                                  stride_t, weights)
        grads = tape.gradient(loss, train_model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 10.0)
        optimizer.apply_gradients(zip(grads, train_model.trainable_variables))
        step_var.assign_add(1.0)
        decay = EMA_DECAY * (1.0 - tf.exp(-step_var / EMA_TAU))
        for e, w in ema_pairs:
            e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))
        return loss, lbox, lcls, l1

    say(config, out, f"model {config.arch}: {model.count_params():,} parameters, input "
         f"{imgsz}x{imgsz}, strides {list(strides)}, {n_anchor} anchors, {steps} steps/epoch, "
         f"{opt_name} lr {peak:g} {config.schedule}")
    eval_every = max(1, config.epochs // 10)
    run_dir = common.check_out_dir(config.out, config.overwrite)
    history: dict[str, list[float]] = {k_: [] for k_ in
                                       ("loss", "box_loss", "cls_loss", "l1_loss", "val_map50",
                                        "val_map", "lr", "seconds")}
    from edgecnn.evaluate.detect import coco_map, ground_truth_of, keras_predict

    val_gt = ground_truth_of(val_samples)
    best = {"map50": -1.0, "map": 0.0, "epoch": 0}
    bad_evals = 0
    with atomic_dir(run_dir, config.overwrite) as tmp:
        best_path = tmp / MODEL_FILE
        start = time.perf_counter()
        it = iter(train_ds)
        for epoch in range(1, config.epochs + 1):
            t_epoch = time.perf_counter()
            sums = np.zeros(4)
            for _ in range(steps):
                images, boxes, classes = next(it)
                parts = train_step(images, boxes, classes)
                sums += [float(p) for p in parts]
            if not np.isfinite(sums).all():
                raise UsageError(f"training diverged at epoch {epoch} (loss {sums[0] / steps})",
                                 "lower --lr or check the labels with 'edgecnn data check'")
            means = sums / steps
            evaluate = (epoch % eval_every == 0 or epoch == config.epochs
                        or epoch >= int(0.8 * config.epochs))
            m50 = mapv = math.nan
            if evaluate:
                det = keras_predict(ema, val_arrays, strides)
                res = coco_map(val_gt, det, names)
                m50, mapv = res["map50"], res["map"]
                if m50 > best["map50"]:
                    best = {"map50": m50, "map": mapv, "epoch": epoch}
                    ema.save(best_path)
                    bad_evals = 0
                else:
                    bad_evals += 1
            seconds = time.perf_counter() - t_epoch
            for key, val in zip(("loss", "box_loss", "cls_loss", "l1_loss", "val_map50",
                                 "val_map", "lr", "seconds"),
                                (*means, m50, mapv, common.current_lr(optimizer), seconds)):
                history[key].append(float(val))
            score = f"  val mAP50 {m50:.4f} mAP {mapv:.4f}" if evaluate else ""
            say(config, out, f"epoch {epoch}/{config.epochs}  loss {means[0]:.4f} (box "
                 f"{means[1]:.3f} cls {means[2]:.3f} l1 {means[3]:.3f}){score}  {seconds:.1f}s")
            if config.patience and bad_evals >= config.patience:
                say(config, out, f"early stop: no mAP improvement in {bad_evals} evaluations")
                break
        train_seconds = time.perf_counter() - start
        metrics = {"val_map50": round(best["map50"], 6), "val_map": round(best["map"], 6),
                   "best_epoch": best["epoch"], "epochs_run": len(history["loss"]),
                   "train_seconds": round(train_seconds, 2),
                   "params": int(model.count_params()),
                   "skipped_images": len(train_arrays.skipped) + len(val_arrays.skipped)}
        info = RunInfo(task=Task.DETECT, arch=config.arch, labels=list(names),
                       imgsz=(imgsz, imgsz), channels=3, color="RGB", resize="letterbox",
                       mean=list(MEAN), std=list(STD), data=dataset_reference(config.data),
                       data_dir=dataset_reference(config.data_dir),
                       split=Split(config.val_split, config.seed),
                       output_activation="sigmoid", seed=config.seed,
                       decoder=DecoderSpec(type="anchor_free_ltrb", strides=tuple(strides),
                                           box_output=0, score_output=1,
                                           score_threshold=SCORE_THRESHOLD,
                                           iou_threshold=IOU_THRESHOLD,
                                           max_detections=MAX_DETECTIONS),
                       metrics=metrics, config=asdict(config),
                       provenance=Provenance.now("train"))
        info.save(tmp)
        common.write_history_csv(tmp / "history.csv", history)
        try:
            from edgecnn.report.plots import plot_curves

            plot_curves({k_: v for k_, v in history.items() if k_ not in ("lr", "seconds")},
                        tmp / "curves.png", title=f"{config.arch} on {config.data}")
        except ImportError:
            pass
    say(config, out, f"done  best epoch {best['epoch']}: val mAP50 {best['map50']:.4f} "
         f"mAP {best['map']:.4f}; {train_seconds:.1f}s training -> {run_dir}")
    return run_dir


def _strides(arch: str) -> tuple[int, ...]:
    from edgecnn.models.detect import detector_strides

    return tuple(int(s) for s in detector_strides(arch))


def _logits_layer(model) -> str:
    names = {layer.name for layer in model.layers}
    if "scores_logits" in names:
        return "scores_logits"
    raise UsageError(f"model {model.name} has no 'scores_logits' layer",
                     "detector builders must expose pre-sigmoid scores for training")
