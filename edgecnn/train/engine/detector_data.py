"""Detection data as the detector engine trains and evaluates on it: letterboxed arrays of the
train and val splits, decoded once, and val mAP of a Keras detector on them."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgecnn.errors import UsageError

if TYPE_CHECKING:
    from edgecnn.data.detect_pipeline import DetectionArrays

MAX_BOXES = 100     # boxes per image kept for training (padding rows beyond the real ones)


@dataclass(frozen=True)
class DetectionData:
    """Attributes:
        train, val: :class:`edgecnn.data.detect_pipeline.DetectionArrays` at ``imgsz``.
        val_truth: ground truth of the val images that decoded (for COCO mAP).
        names: class names, in output order.
        strides: the detector's decoder strides.
        imgsz: square model input side.
        mean, std: the model's input contract ``x = (pixel - mean) / std`` (pretrained
            backbones expect their ImageNet normalization; edgecnn's own detectors pixel/255).
    """

    train: DetectionArrays
    val: DetectionArrays
    val_truth: list
    names: tuple[str, ...]
    strides: tuple[int, ...]
    imgsz: int
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)

    def steps_per_epoch(self, batch: int) -> int:
        """Optimizer steps per epoch at ``batch`` (the last partial batch is dropped)."""
        n = len(self.train)
        return max(1, n // max(1, min(batch, n)))

    @property
    def skipped(self) -> int:
        return len(self.train.skipped) + len(self.val.skipped)


@dataclass(frozen=True)
class DetectionSamples:
    """The images and labels of a detection dataset, before decoding."""

    train: list
    val: list
    names: tuple[str, ...]


def read_detection_samples(spec: str, val_split: float, seed: int,
                           max_train: int | None = None) -> DetectionSamples:
    """Read detection dataset ``spec`` (labels only; images are decoded by :func:`decode`).

    Args:
        val_split, seed: the val split drawn from the training images when ``spec`` has none.
        max_train: keep at most this many training images (a seeded draw).

    Raises:
        UsageError: the dataset cannot be read, or lacks training or validation images.
    """
    from edgecnn.data.detection import load_detection_dataset

    ds = load_detection_dataset(spec, split_val=val_split, seed=seed)
    train = list(ds.train)
    if max_train:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.permutation(len(train))[:max_train].tolist())]
    if not train or not ds.val:
        raise UsageError(f"{spec} needs both training and validation images "
                         f"(found {len(train)} / {len(ds.val)})",
                         "add a val split to data.yaml or use --val-split")
    return DetectionSamples(train, list(ds.val), tuple(ds.names))


def decode(samples: DetectionSamples, imgsz: int, strides: tuple[int, ...],
           mean=(0.0,), std=(255.0,)) -> DetectionData:
    """Decode and letterbox every image to ``imgsz`` for a model that takes
    ``(pixel - mean) / std``; images that fail to decode are skipped with a warning on stderr."""
    from edgecnn.data.detect_pipeline import load_arrays
    from edgecnn.evaluate.detect import ground_truth_of

    train = load_arrays(samples.train, imgsz, MAX_BOXES)
    val = load_arrays(samples.val, imgsz, MAX_BOXES)
    for label, arrays in (("train", train), ("val", val)):
        if arrays.skipped:
            print(f"warning: {len(arrays.skipped)} {label} images failed to decode and were "
                  f"skipped, e.g. {arrays.skipped[0]}", file=sys.stderr, flush=True)
    skipped = set(val.skipped)
    val_samples = [s for s in samples.val if str(s.image_path) not in skipped]
    return DetectionData(train, val, ground_truth_of(val_samples), samples.names,
                         tuple(int(s) for s in strides), int(imgsz),
                         tuple(float(m) for m in mean), tuple(float(s) for s in std))


def detection_map(model, data: DetectionData) -> dict[str, float]:
    """COCO ``{"map50", "map"}`` of a Keras detector on the val split (runtime decoding + NMS)."""
    from edgecnn.evaluate.detect import coco_map, keras_predict

    detections = keras_predict(model, data.val, data.strides, mean=data.mean, std=data.std)
    res = coco_map(data.val_truth, detections, data.names)
    return {"map50": float(res["map50"]), "map": float(res["map"])}
