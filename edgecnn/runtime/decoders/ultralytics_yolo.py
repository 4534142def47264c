"""``ultralytics_yolo``: one output of box centres, sizes and class scores per anchor (YOLO
v5/v8/11).

docs/FORMAT.md ("Foreign detection layouts") is the contract. The output is ``[1, K, N]`` (what
Ultralytics exports: channels first) or ``[1, N, K]`` (transposed) with, per anchor, ``cx, cy,
w, h`` then the class probabilities: ``K = 4 + C``; with ``objectness`` (YOLOv5) ``K = 5 + C``,
the fifth value is the objectness and a class scores ``objectness * probability``. Boxes are in
0..1 of the input (``normalized``, what ``edgecnn convert`` and Ultralytics' LiteRT export
write, so int8 keeps the scores) or in input pixels. When ``N == K`` the channels-first reading
wins. Every value shares the output's one quantization.

Decoding: best class per anchor (ties to the lower id), keep ``score >= score_threshold``,
``x1 = cx - w/2`` ... in float32, class-aware NMS, at most ``max_detections``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.decoders import register_decoder
from edgecnn.runtime.decoders.base import Decoder, DecoderParams
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import (
    RawDetections,
    as_float,
    best_class_candidates,
    nms_class_aware,
    nms_reference,
)

TYPE = "ultralytics_yolo"


@dataclass(frozen=True)
class UltralyticsYoloParams(DecoderParams):
    """The ``decoder`` fields of this layout (docs/FORMAT.md)."""

    output: int = 0
    normalized: bool = True
    objectness: bool = False


def channels_first(shape: Sequence[int], channels: int) -> bool | None:
    """True for ``[1, K, N]``, False for ``[1, N, K]``, None when neither fits
    (``K = channels``)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or shape[0] != 1:
        return None
    if shape[1] == channels:
        return True
    return False if shape[2] == channels else None


def xywh_to_xyxy(xywh: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """``(K, 4)`` centre boxes -> corners in float32; ``scale`` (w, h, w, h) first if given.

    The operations and their order are the contract the Kotlin core repeats bit for bit.
    """
    b = np.asarray(xywh, np.float32)
    if scale is not None:
        b = b * scale
    half = b[:, 2:] * np.float32(0.5)
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


@register_decoder
class UltralyticsYolo(Decoder):
    """Decoder of Ultralytics' YOLO head output (one tensor, see the module docstring)."""

    type = TYPE
    Params = UltralyticsYoloParams
    params: UltralyticsYoloParams

    @property
    def channels(self) -> int:
        return 4 + int(self.params.objectness) + len(self.labels)

    def check(self, outputs: Sequence[TensorInfo], input_hw: tuple[int, int],
              labels: Sequence[str]) -> None:
        k = self.channels
        shape = tuple(outputs[0].shape)
        self._first = channels_first(shape, k)
        if self._first is None:
            what = "4 box values, objectness" if self.params.objectness else "4 box values"
            raise UsageError(
                f"output {self.params.output} has shape {list(shape)}, expected [1, {k}, N] or "
                f"[1, N, {k}] ({what} and {len(labels)} class scores per anchor, YOLO layout "
                f"{TYPE}{' with objectness' if self.params.objectness else ''}) for "
                f"{len(labels)} labels", "check --labels (their number sets the output width) "
                "or the decoder")
        h, w = input_hw
        self._scale = np.array([w, h, w, h], np.float32) if self.params.normalized else None

    def _rows(self, raw: np.ndarray) -> np.ndarray:
        """The output as ``(N, K)`` (a view: no copy of the whole tensor)."""
        y = raw.reshape(raw.shape[-2:])
        return y.T if self._first else y

    def decode(self, raw: Sequence[np.ndarray], nms: str = "cv2") -> RawDetections:
        rows = self._rows(np.asarray(raw[0]))
        quant = self.quant[0]
        first = 5 if self.params.objectness else 4
        if self.params.objectness:
            obj = as_float(rows[:, 4], quant)
            scores = obj[:, None] * as_float(rows[:, first:], quant)
            idx, cls, sc = best_class_candidates(scores, self.score_threshold,
                                                 classes=self.classes)
        else:
            idx, cls, sc = best_class_candidates(rows[:, first:], self.score_threshold, quant,
                                                 self.classes)
        xyxy = xywh_to_xyxy(as_float(rows[idx, :4], quant), self._scale)
        run = nms_reference if nms == "reference" else nms_class_aware
        keep = run(xyxy, sc, cls, self.iou_threshold, self.max_detections)
        return RawDetections(xyxy[keep], sc[keep], cls[keep], idx[keep])
