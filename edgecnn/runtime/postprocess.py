"""Detection post-processing shared by every decoder: quantization, thresholds, NMS, letterbox.

Pure numpy (plus OpenCV's batched NMS). The rules are those of docs/FORMAT.md ("Rules the
vectors pin down"); the output layouts themselves live in :mod:`edgecnn.runtime.decoders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class Quant:
    """Affine quantization of a tensor: ``real = (q - zero_point) * scale``; scale 0 = float."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


FLOAT = Quant()


@dataclass(frozen=True)
class RawDetections:
    """Detections in model-input pixels, sorted by score (ties: lower anchor index first).

    Attributes:
        boxes: ``(K, 4)`` float32 ``x1, y1, x2, y2`` in model-input pixels (not clipped).
        scores: ``(K,)`` float32 dequantized scores.
        classes: ``(K,)`` int32 class ids.
        anchors: ``(K,)`` int64 rows of the head the detections came from (anchor indices).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    anchors: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def dequantize(q: np.ndarray, quant: Quant) -> np.ndarray:
    """float32 values of a raw output, computed exactly as the runtime does everywhere."""
    if not quant.quantized:
        return np.asarray(q, dtype=np.float32)
    return (np.asarray(q).astype(np.float32) - np.float32(quant.zero_point)) \
        * np.float32(quant.scale)


def as_float(values: np.ndarray, quant: Quant) -> np.ndarray:
    """float32 values of an output given raw (integers: dequantized) or already as floats."""
    values = np.asarray(values)
    return dequantize(values, quant) if values.dtype.kind in "iu" else \
        values.astype(np.float32, copy=False)


@lru_cache(maxsize=64)
def quantized_threshold(threshold: float, quant: Quant, dtype) -> int | None:
    """Smallest raw value whose dequantized float32 is ``>= threshold``; None if none is.

    Comparing raw scores against this value selects exactly the anchors the float comparison
    selects (it is derived from the same float32 dequantization, not from a rounded formula).
    """
    info = np.iinfo(dtype)
    values = dequantize(np.arange(info.min, info.max + 1, dtype=np.int64), quant)
    passing = np.flatnonzero(values >= np.float32(threshold))
    return int(info.min + passing[0]) if passing.size else None


def best_class_candidates(scores: np.ndarray, threshold: float, quant: Quant = FLOAT,
                          classes: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best class of every anchor whose best score passes the threshold.

    Args:
        scores: ``(N, C)`` raw scores, float or integer (quantized with ``quant``).
        threshold: score threshold in probability units; kept if ``score >= threshold``.
        quant: quantization of ``scores`` when they are integers.
        classes: optional allowed class ids; the best class is taken among them only.

    Returns:
        ``(anchor_idx, class_ids, scores)`` of the candidates, scores as float32, in anchor
        order. Ties between classes of one anchor go to the lower class id.
    """
    if classes is not None:
        scores = scores[:, classes]
    quantized = scores.dtype.kind in "iu" and quant.quantized
    if quantized:
        qthr = quantized_threshold(threshold, quant, scores.dtype)
        if qthr is None:
            return _empty_candidates()
        hits = scores >= qthr
    else:
        hits = scores >= np.float32(threshold)
    # An anchor passes iff any class passes. Flat hit positions are few and sorted, so this is
    # ~5x faster than a max over the short class axis of the whole [N, C] tensor.
    anchor = np.flatnonzero(hits) // scores.shape[1]
    if anchor.size > 1:  # drop repeats (anchors with several passing classes); sorted already
        first = np.empty(anchor.size, dtype=bool)
        first[0] = True
        np.not_equal(anchor[1:], anchor[:-1], out=first[1:])
        anchor = anchor[first]
    rows = scores[anchor]
    cls = rows.argmax(axis=1).astype(np.int32)
    best = rows.max(axis=1)
    best = dequantize(best, quant) if quantized else best.astype(np.float32, copy=False)
    if classes is not None:
        cls = np.asarray(classes, dtype=np.int32)[cls]
    return anchor, cls, best


def _empty_candidates():
    return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)


def score_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score; equal scores keep their input (anchor) order."""
    return np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with many (no +1 pixel convention; zero-area union -> 0)."""
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64), where=union > 0)


def nms_reference(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                  iou_threshold: float, max_detections: int) -> np.ndarray:
    """Greedy class-aware NMS written plainly; the definition the fast path is tested against.

    Visits boxes by descending score (ties: lower index first); a box is dropped if a kept box of
    the same class overlaps it with IoU ``> iou_threshold``. Stops after ``max_detections``.

    Returns:
        Indices of the kept boxes, in the order they were kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    classes = np.asarray(classes)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in score_order(scores):
        if len(keep) >= max_detections:
            break
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= (box_iou(boxes[i], boxes) > iou_threshold) & (classes == classes[i])
    return np.asarray(keep, dtype=np.int64)


def nms_class_aware(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                    iou_threshold: float, max_detections: int) -> np.ndarray:
    """Class-aware NMS with OpenCV; same result as :func:`nms_reference`.

    ``cv2.dnn.NMSBoxesBatched`` needs three corrections to match the contract, all handled here:
    it takes ``x, y, w, h``; its ``top_k`` truncates the candidates *before* suppression (so
    ``max_detections`` is applied afterwards); and its per-class offset assumes non-negative
    coordinates (boxes reaching left of 0 could suppress boxes of another class), so boxes are
    first shifted to start at 0, which leaves every IoU unchanged. Its score threshold is strict
    (``>``), so it is set to -1, below every score: thresholding is done by the caller.

    Returns:
        Kept indices by descending score (ties: lower index first), at most ``max_detections``.
    """
    n = len(scores)
    if n == 0 or max_detections <= 0:
        return np.zeros(0, dtype=np.int64)
    xywh = np.array(boxes, dtype=np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    xywh[:, :2] -= xywh[:, :2].min()
    nms: Any = cv2.dnn.NMSBoxesBatched   # its stubs say Sequence; it takes numpy arrays
    keep = nms(xywh, np.asarray(scores, dtype=np.float32), np.asarray(classes, dtype=np.int32),
               -1.0, float(iou_threshold))
    return np.asarray(keep, dtype=np.int64).reshape(-1)[:max_detections]


def select_rows(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, num_classes: int,
                score_threshold: float, max_detections: int,
                allowed: np.ndarray | None = None) -> RawDetections:
    """Detections a model selected itself: threshold, class range and filter, order, cap.

    Shared by the layouts whose model does its own NMS (end-to-end YOLO, the SSD op).

    Args:
        boxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in model-input pixels.
        scores: ``(N,)`` float32.
        classes: ``(N,)`` float class numbers (rounded to the nearest integer here).
        num_classes: rows whose class is outside ``0..num_classes - 1`` are dropped.
        score_threshold, max_detections: as in the decoder metadata.
        allowed: optional allowed class ids.
    """
    cls = np.rint(np.nan_to_num(np.asarray(classes, np.float64), nan=-1.0,
                                posinf=-1.0, neginf=-1.0)).astype(np.int64)
    ok = (scores >= np.float32(score_threshold)) & (cls >= 0) & (cls < num_classes)
    if allowed is not None:
        ok &= np.isin(cls, allowed)
    idx = np.flatnonzero(ok)
    idx = idx[score_order(scores[idx])][:max_detections]
    return RawDetections(np.asarray(boxes, np.float32)[idx].reshape(-1, 4),
                         np.asarray(scores, np.float32)[idx], cls[idx].astype(np.int32),
                         idx.astype(np.int64))


def to_image(boxes: np.ndarray, scale_x: float, scale_y: float, pad_x: float, pad_y: float,
             src_width: int, src_height: int) -> np.ndarray:
    """Model-input ``xyxy`` -> original-image pixels through the letterbox, clipped to the image.

    ``x_img = (x - pad_x) / scale_x``, then clipped to ``[0, src_width]`` (likewise for y).
    Computed in float64 from float32 inputs.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = (b - (pad_x, pad_y, pad_x, pad_y)) / (scale_x, scale_y, scale_x, scale_y)
    np.maximum(out, 0.0, out=out)  # np.clip costs ~3x more on tiny arrays
    return np.minimum(out, (float(src_width), float(src_height)) * 2, out=out)

