"""COCO mAP of a detector: a Keras model (run directory / ``.keras``) or a ``.tflite``.

The metric itself is pycocotools' ``COCOeval`` (bbox), fed with in-memory ground truth and
detections; nothing here re-implements AP. Predictions of both model kinds go through the
runtime's own decoder and class-aware NMS (:mod:`edgecnn.runtime.decoders`), so the mAP
measured here is the mAP of the boxes a device produces. Evaluating a ``.tflite`` never imports
TensorFlow (it uses :func:`edgecnn.runtime.load`).

As is standard for mAP, detections are kept down to a score of 0.001 and up to 100 per image;
the model's own deployment thresholds (metadata) are for display, not for measuring.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.progress import Progress
from edgecnn.runtime.task import Task

MAP_SCORE_THRESHOLD = 0.001
MAP_IOU_THRESHOLD = 0.6
MAP_MAX_DETECTIONS = 100


@dataclass(frozen=True)
class ImageDetections:
    """Detections of one image in original-image pixels."""

    boxes: np.ndarray      # (K, 4) xyxy
    scores: np.ndarray     # (K,)
    classes: np.ndarray    # (K,)


def coco_map(ground_truth, detections, names) -> dict:
    """COCO bbox mAP with pycocotools.

    Args:
        ground_truth: per image ``(boxes (K, 4) xyxy, classes (K,), width, height)``.
        detections: per image :class:`ImageDetections` (same order).
        names: class names (index = class id).

    Returns:
        ``{"map50", "map", "per_class": {name: ap50}, "per_class_map": {name: ap},
        "images", "instances"}``. Classes without ground truth are left out of the per-class
        tables (COCO reports them as -1 and excludes them from the mean).
    """
    require_coco_eval()
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(detections):
        raise ValueError("ground truth and detections must cover the same images")
    images, annotations, results = [], [], []
    ann_id = 1
    for img_id, ((boxes, classes, width, height), det) in enumerate(
            zip(ground_truth, detections), start=1):
        images.append({"id": img_id, "width": int(width), "height": int(height)})
        for box, cls in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes)):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append({"id": ann_id, "image_id": img_id, "category_id": int(cls) + 1,
                                "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h,
                                "iscrowd": 0})
            ann_id += 1
        for box, score, cls in zip(np.asarray(det.boxes, np.float64).reshape(-1, 4),
                                   np.asarray(det.scores), np.asarray(det.classes)):
            results.append({"image_id": img_id, "category_id": int(cls) + 1,
                            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]),
                                     float(box[3] - box[1])], "score": float(score)})
    out: dict[str, Any] = {"map50": 0.0, "map": 0.0, "per_class": {}, "per_class_map": {},
           "images": len(images), "instances": len(annotations), "detections": len(results)}
    if not annotations:
        return out
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        if not results:
            return out
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, MAP_MAX_DETECTIONS]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out["map"] = max(0.0, float(ev.stats[0]))
    out["map50"] = max(0.0, float(ev.stats[1]))
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    for k, name in enumerate(names):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            valid50 = p[0][p[0] > -1]
            out["per_class"][name] = float(valid50.mean()) if valid50.size else 0.0
            out["per_class_map"][name] = float(p[p > -1].mean())
    return out


def ground_truth_of(samples) -> list:
    return [(s.boxes, s.classes, s.width, s.height) for s in samples]


def keras_predict(model, arrays, strides, batch: int = 32,
                  score_threshold: float = MAP_SCORE_THRESHOLD,
                  iou_threshold: float = MAP_IOU_THRESHOLD,
                  max_detections: int = MAP_MAX_DETECTIONS, mean=(0.0,),
                  std=(255.0,), progress: Progress | None = None) -> list[ImageDetections]:
    """Run a Keras detector on letterboxed arrays; decode with the runtime's post-processing.

    Args:
        model: Keras model with outputs ``[boxes, scores]``.
        arrays: :class:`edgecnn.data.detect_pipeline.DetectionArrays`.
        strides: decoder strides.
        mean, std: the model's input contract ``x = (pixel - mean) / std`` (run.json's).
        progress: told the count of images done after every batch.
    """
    from edgecnn.runtime import postprocess as pp
    from edgecnn.runtime.decoders.anchor_free_ltrb import decode_head

    imgsz = arrays.images.shape[1:3]
    out = []
    fn = _compiled_forward(model)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for start in range(0, len(arrays), batch):
        x = (arrays.images[start:start + batch].astype(np.float32) - mean) / std
        boxes, scores = (np.asarray(t) for t in fn(x))
        for j in range(boxes.shape[0]):
            i = start + j
            raw = decode_head(boxes[j], scores[j], tuple(imgsz), tuple(strides),
                                 score_threshold, iou_threshold, max_detections)
            sx, sy, px, py = (float(v) for v in arrays.letterboxes[i])
            w, h = (int(v) for v in arrays.sizes[i])
            out.append(ImageDetections(pp.to_image(raw.boxes, sx, sy, px, py, w, h),
                                       raw.scores, raw.classes))
        if progress is not None:
            progress.update(len(out))
    if progress is not None:
        progress.finish()
    return out


def _compiled_forward(model):
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    cached = getattr(model, "_edgecnn_forward", None)
    if cached is None:
        cached = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                             autograph=False)
        try:
            model._edgecnn_forward = cached
        except AttributeError:
            pass
    return cached


def tflite_predict(detector, samples, progress: Progress | None = None
                   ) -> tuple[list[ImageDetections], list[str]]:
    """Run a runtime detector (the runner protocol) over ``samples``' images.

    Returns:
        ``(detections, skipped)``: detections of the images that decoded, in order, and the
        paths of those that did not (a header can be intact while the pixels are not, which
        ``data check`` without ``--decode`` does not see).
    """
    from edgecnn.data.detection import ImageDecodeError, read_image

    out, skipped = [], []
    for i, s in enumerate(samples):
        if progress is not None:
            progress.update(i)
        try:
            image = read_image(s.image_path)
        except ImageDecodeError:
            skipped.append(str(s.image_path))
            continue
        found = detector(image, "BGR" if image.ndim == 3 else "GRAY")
        boxes = np.array([[d.box.left, d.box.top, d.box.right, d.box.bottom] for d in found],
                         np.float64).reshape(-1, 4)
        out.append(ImageDetections(boxes, np.array([d.category.score for d in found],
                                                   np.float32),
                                   np.array([d.category.index for d in found], np.int32)))
    if progress is not None:
        progress.update(len(samples))
        progress.finish()
    return out, skipped


def require_coco_eval() -> None:
    """Fail in a second, before any inference, when the COCO evaluator is missing."""
    from edgecnn.lazy import require

    require("pycocotools", purpose="COCO mAP")


def evaluate_detection(model_path: str | os.PathLike, data_spec: str | None = None,
                       split: str | None = None, threads: int | None = None,
                       max_images: int | None = None, verify: bool = True,
                       described=None, iou_threshold: float | None = None,
                       progress: Callable[[str], None] | None = None) -> dict:
    """COCO mAP of a detector on a dataset split.

    Args:
        model_path: a ``.tflite`` (runtime, no TensorFlow), a run directory or a ``.keras``.
        data_spec: dataset SPEC; defaults to the one recorded in the model's run.json.
        split: ``val``, ``train`` or ``all``; None: ``val`` when the dataset has its own val
            split or is the model's training data, else ``all``.
        threads: interpreter threads for ``.tflite``.
        max_images: evaluate only the first N images (quick checks).
        verify: refuse a ``.tflite`` whose flatbuffer does not match its metadata's SHA-256.
        described: options describing a ``.tflite`` without edgecnn metadata.
        iou_threshold: NMS IoU for a ``.tflite`` (default 0.6; Ultralytics' val uses 0.7).
        progress: gets a line with the count and an ETA every few seconds of inference.

    Returns:
        :func:`coco_map`'s dict plus ``"model"``, ``"data"``, ``"split"`` and ``"seconds"``.
    """
    from edgecnn.data.detection import load_detection_dataset

    require_coco_eval()
    path = Path(model_path)
    if not path.exists():
        raise UsageError(f"model not found: {path}", "check the path")
    t0 = time.perf_counter()
    if path.suffix == ".tflite":
        from edgecnn.evaluate import model_task
        from edgecnn.runtime import load

        if model_task(path, described) != Task.DETECT:
            raise UsageError(f"{path} is not a detection model", "use it with a classify dataset")
        detector = load(path, threads=threads, verify=verify, described=described,
                        score_threshold=MAP_SCORE_THRESHOLD, max_detections=MAP_MAX_DETECTIONS,
                        iou_threshold=iou_threshold or MAP_IOU_THRESHOLD)
        if data_spec is None:
            raise UsageError("a .tflite needs --data", "pass the dataset SPEC to evaluate on")
        names = tuple(detector.labels)
        ds = load_detection_dataset(data_spec)
        split = split or ("val" if ds.own_val else "all")
        samples = _split(ds, split, max_images)
        _check_names(ds.names, names)
        detections, skipped = tflite_predict(detector, samples,
                                             Progress(len(samples), f"eval {path.name}", progress))
        if not detections:
            raise UsageError(f"none of the {len(samples)} {split} images could be decoded, "
                             f"e.g. {skipped[0]}", "run 'edgecnn data check --decode' on it")
    else:
        spec, split, samples, names, detections, skipped = _keras_detections(
            path, data_spec, split, max_images, progress)
    # Ground truth of the images that were scored: a skipped image is neither hit nor missed.
    failed = set(skipped)
    scored = [s for s in samples if str(s.image_path) not in failed]
    result = coco_map(ground_truth_of(scored), detections, names)
    result.update({"model": str(path), "data": str(data_spec or spec), "split": split,
                   "seconds": round(time.perf_counter() - t0, 3),
                   "skipped_images": len(skipped), "warnings": _skip_warnings(skipped)})
    return result


def _keras_detections(path: Path, data_spec, split, max_images, progress):
    """A run directory or ``.keras`` detector on its dataset (the run's own split by default)."""
    from edgecnn.data.detect_pipeline import load_arrays
    from edgecnn.data.detection import load_detection_dataset
    from edgecnn.rundir import dataset_reference, load_keras_model

    model, info = load_keras_model(path)
    if info is not None and info.task != Task.DETECT:
        raise UsageError(f"{path} is a {info.task.value} model, not a detector")
    spec = data_spec or (info.data if info is not None else None)
    if not spec:
        raise UsageError(f"{path} has no run.json naming its dataset", "pass --data SPEC")
    ds = load_detection_dataset(spec, split_val=info.val_split if info else 0.1,
                                seed=info.split.seed if info else 0)
    trained_on = info is not None and dataset_reference(spec) == info.data
    split = split or ("val" if ds.own_val or trained_on else "all")
    samples = _split(ds, split, max_images)
    names = tuple(info.labels) if info is not None else ds.names
    _check_names(ds.names, names)
    strides = tuple(info.decoder.strides) if info and info.decoder else (8, 16, 32)
    imgsz = int(model.inputs[0].shape[1])
    arrays = load_arrays(samples, imgsz)
    skipped = list(arrays.skipped)
    norm = {"mean": info.mean, "std": info.std} if info is not None else {}
    detections = keras_predict(model, arrays, strides, **norm, progress=Progress(
        len(samples), f"eval {path.name}", progress))
    return spec, split, samples, names, detections, skipped


def _skip_warnings(skipped: list[str]) -> list[str]:
    if not skipped:
        return []
    shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    return [(f"skipped {len(skipped)} image(s) that failed to decode ({shown}); "
             "'edgecnn data check --decode' lists them all")]


def _split(ds, split: str, max_images: int | None):
    if split not in ("val", "train", "all"):
        raise UsageError(f"unknown split {split!r}", "use val, train or all")
    samples = {"val": ds.val, "train": ds.train, "all": ds.train + ds.val}[split]
    if not samples:
        raise UsageError(f"the dataset has no {split} images")
    return samples[:max_images] if max_images else samples


def _check_names(data_names, model_names) -> None:
    if tuple(data_names) != tuple(model_names):
        raise UsageError(f"the model's classes {list(model_names)[:5]}... differ from the "
                         f"dataset's {list(data_names)[:5]}...",
                         "evaluate on the dataset the model was trained on")
