"""Run a ``.tflite`` on image files: top-k classes or detected boxes, optionally drawn.

Device side (no TensorFlow): :func:`predict_images` backs ``edgecnn predict``. Images that
cannot be read are skipped and reported, never fatal, unless none can be read at all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class ImagePrediction:
    """Result for one image: ``categories`` (classify) or ``detections`` (detect)."""

    image: str
    width: int
    height: int
    ms: float
    categories: tuple = ()
    detections: tuple = ()
    saved: str | None = None

    def to_dict(self, task: str) -> dict:
        doc = {"image": self.image, "width": self.width, "height": self.height,
               "ms": round(self.ms, 3)}
        if task == "detect":
            doc["detections"] = [d.to_dict() for d in self.detections]
        else:
            doc["categories"] = [{"index": c.index, "label": c.label, "score": round(c.score, 6)}
                                 for c in self.categories]
        if self.saved:
            doc["saved"] = self.saved
        return doc


@dataclass(frozen=True)
class PredictionReport:
    model: str
    task: str
    results: tuple[ImagePrediction, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)   # (image, reason)

    def to_dict(self) -> dict:
        return {"model": self.model, "task": self.task,
                "results": [r.to_dict(self.task) for r in self.results],
                "skipped": [{"image": i, "reason": r} for i, r in self.skipped],
                "warnings": len(self.skipped)}


def expand_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files inside them (sorted, not recursive)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir()
                              if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def read_bgr(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8; ValueError with the reason when it cannot."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)   # works for non-ASCII paths too
    except OSError as err:
        raise ValueError(err.strerror or "cannot read the file") from None
    if data.size == 0:
        raise ValueError("empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return image


def predict_images(model: str | os.PathLike, images: Iterable[str | os.PathLike], *,
                   top_k: int = 5, score_threshold: float | None = None,
                   iou_threshold: float | None = None, threads: int | None = None,
                   save_dir: str | os.PathLike | None = None, on_skip=None,
                   verify: bool = True) -> PredictionReport:
    """Run ``model`` (a ``.tflite`` with edgecnn metadata) on image files.

    Args:
        model: the ``.tflite``; its metadata decides classifier or detector.
        images: image files or folders of images.
        top_k: classify: categories per image.
        score_threshold: classify: drop categories below; detect: override the model's.
        iou_threshold: detect: override the model's NMS threshold.
        threads: interpreter threads.
        save_dir: write each image with its results drawn on it into this folder.
        on_skip: called as ``on_skip(path, reason)`` for each image that cannot be read or
            run (the batch goes on).
        verify: refuse a model whose flatbuffer does not match its metadata's SHA-256.

    Raises:
        UsageError: bad model or options, or no image could be read.
    """
    from edgecnn.runtime.classifier import Classifier
    from edgecnn.runtime.model import TFLiteModel

    if top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {top_k}")
    files = expand_images(images)
    if not files:
        raise UsageError("no images given", "pass image files or folders of images")
    if save_dir is not None:
        save_dir = Path(save_dir)
        if save_dir.exists() and not save_dir.is_dir():
            raise UsageError(f"--save {save_dir} exists and is not a folder",
                             "choose another --save folder")
    tfl = TFLiteModel(model, threads=threads, verify=verify)
    meta = tfl.require_metadata()
    options: dict = {"top_k": top_k} if meta.task == "classify" else {}
    if score_threshold is not None:
        options["score_threshold"] = score_threshold
    if iou_threshold is not None and meta.task == "detect":
        options["iou_threshold"] = iou_threshold
    runner = _runner(tfl, meta, threads, options)
    results, skipped, used_names = [], [], set()
    for path in files:
        try:
            image = read_bgr(path)
        except ValueError as err:
            skipped.append((str(path), str(err)))
            if on_skip is not None:
                on_skip(str(path), str(err))
            continue
        start = time.perf_counter()
        if isinstance(runner, Classifier):
            cats, dets = tuple(runner.classify(image, "BGR")), ()
        else:
            cats, dets = (), tuple(runner.detect(image, "BGR"))
        ms = (time.perf_counter() - start) * 1000.0
        saved = None
        if save_dir is not None:
            saved = str(_save(image, path, save_dir, cats, dets, meta.labels, used_names))
        results.append(ImagePrediction(str(path), int(image.shape[1]), int(image.shape[0]), ms,
                                       cats, dets, saved))
    if not results:
        raise UsageError(f"none of the {len(files)} image(s) could be read "
                         f"({skipped[0][0]}: {skipped[0][1]})", "pass jpg/png image files")
    return PredictionReport(str(model), meta.task, tuple(results), tuple(skipped))


def _runner(tfl, meta, threads, options):
    if meta.task == "detect":
        from edgecnn.runtime.detector import Detector, DetectorOptions

        return Detector(tfl, DetectorOptions(threads=threads, **options))
    from edgecnn.runtime.classifier import Classifier, ClassifierOptions

    return Classifier(tfl, ClassifierOptions(threads=threads, **options))


def _save(image, path: Path, folder: Path, cats, dets, labels, used: set) -> Path:
    import cv2

    from edgecnn.camera.overlay import draw_categories, draw_detections
    from edgecnn.fsutil import write_atomic

    canvas = image.copy()
    if dets or not cats:
        draw_detections(canvas, dets, labels)
    if cats:
        draw_categories(canvas, cats)
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") \
        else ".png"
    name = path.stem + suffix
    n = 1
    while name in used:   # two inputs with the same name from different folders
        name = f"{path.stem}_{n}{suffix}"
        n += 1
    used.add(name)
    ok, encoded = cv2.imencode(suffix, canvas)
    if not ok:
        raise UsageError(f"cannot encode {name}")
    out = folder / name
    write_atomic(out, encoded.tobytes())
    return out
