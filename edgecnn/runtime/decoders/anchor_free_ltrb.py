"""``anchor_free_ltrb``: edgecnn's own head, ``ltrb`` distances per anchor point plus class scores.

docs/FORMAT.md ("Detection head outputs") is the contract: boxes ``[1, N, 4]`` (distances in
units of the anchor's stride), scores ``[1, N, C]`` (probabilities); anchor points stride by
stride, row-major. The same functions serve the runtime, training-time evaluation and the golden
vector generator, so all three produce the same boxes.

The fast path touches the whole ``[N, C]`` score tensor once, for the threshold test (in the
quantized domain for int8 outputs); the best class, dequantization, decoding and NMS then run on
the few anchors that passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metaschema as schema
from edgecnn.runtime.decoders import register_decoder
from edgecnn.runtime.decoders.base import Decoder, DecoderParams, bounds
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import (FLOAT, Quant, RawDetections, best_class_candidates,
                                         dequantize, nms_class_aware, nms_reference)

TYPE = "anchor_free_ltrb"


def grid_size(size: int, stride: int) -> int:
    """Cells along one side at ``stride``; rounds up like a 'same'-padded stride-2 conv stack."""
    return -(-int(size) // int(stride))


def num_anchors(imgsz_hw: tuple[int, int], strides: Sequence[int]) -> int:
    return sum(grid_size(imgsz_hw[0], s) * grid_size(imgsz_hw[1], s) for s in strides)


@lru_cache(maxsize=32)
def anchor_points(imgsz_hw: tuple[int, int],
                  strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres and strides in the FORMAT.md order (stride ascending, then row-major).

    Args:
        imgsz_hw: model input ``(height, width)``.
        strides: feature strides, e.g. ``(8, 16, 32)``.

    Returns:
        ``centers`` ``(N, 2)`` float32 ``(cx, cy)`` in model-input pixels and ``stride_per_anchor``
        ``(N,)`` float32. Both are cached and read-only.

    Example:
        >>> c, s = anchor_points((64, 64), (8, 16, 32))
        >>> c.shape, c[0].tolist(), s[-1].item()
        ((84, 2), [4.0, 4.0], 32.0)
    """
    h, w = (int(v) for v in imgsz_hw)
    strides = tuple(int(s) for s in strides)
    if h <= 0 or w <= 0 or not strides or min(strides) <= 0:
        raise UsageError(f"invalid anchor grid: input {h}x{w}, strides {list(strides)}")
    if list(strides) != sorted(strides):
        raise UsageError(f"decoder strides must be ascending, got {list(strides)}")
    centers, per_anchor = [], []
    for s in strides:
        gh, gw = grid_size(h, s), grid_size(w, s)
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32),
                             indexing="ij")
        centers.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
        per_anchor.append(np.full(gh * gw, s, dtype=np.float32))
    c, st = np.concatenate(centers), np.concatenate(per_anchor)
    c.flags.writeable = False
    st.flags.writeable = False
    return c, st


@lru_cache(maxsize=32)
def _anchor_table(imgsz_hw: tuple[int, int],
                  strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(cx, cy, cx, cy)`` and ``(-s, -s, s, s)`` per anchor: decoding in one multiply-add."""
    centers, st = anchor_points(imgsz_hw, strides)
    centers4 = np.concatenate([centers, centers], axis=1)
    signed4 = st[:, None] * np.array([-1, -1, 1, 1], dtype=np.float32)
    centers4.flags.writeable = signed4.flags.writeable = False
    return centers4, signed4


def decode_boxes(ltrb: np.ndarray, centers: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """``(l, t, r, b)`` distances in stride units -> ``x1, y1, x2, y2`` in model-input pixels.

    Args:
        ltrb: ``(K, 4)`` float distances (dequantized).
        centers: ``(K, 2)`` anchor centres of the same rows.
        strides: ``(K,)`` anchor strides of the same rows.
    """
    d = np.asarray(ltrb, dtype=np.float32) * np.asarray(strides, dtype=np.float32)[:, None]
    c = np.asarray(centers, dtype=np.float32)
    return np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1)


def decode_head(boxes: np.ndarray, scores: np.ndarray, imgsz_hw: tuple[int, int],
                strides: tuple[int, ...], score_threshold: float, iou_threshold: float,
                max_detections: int, box_quant: Quant = FLOAT, score_quant: Quant = FLOAT,
                classes: np.ndarray | None = None, nms: str = "cv2") -> RawDetections:
    """Raw head outputs of one image -> detections in model-input pixels.

    Args:
        boxes: ``[1, N, 4]`` or ``[N, 4]`` ltrb distances, float or raw quantized integers.
        scores: ``[1, N, C]`` or ``[N, C]`` class probabilities, float or raw integers.
        imgsz_hw: model input ``(height, width)``.
        strides: ``decoder.strides``.
        score_threshold, iou_threshold, max_detections: as in the decoder metadata.
        box_quant, score_quant: quantization of integer outputs (ignored for float outputs).
        classes: optional allowed class ids.
        nms: ``"cv2"`` (fast) or ``"reference"`` (plain numpy, same result).

    Example:
        det = decode_head(boxes, scores, (256, 256), (8, 16, 32), 0.25, 0.45, 100)
    """
    boxes = boxes.reshape(-1, 4)
    scores = scores.reshape(boxes.shape[0], -1)
    centers, _ = anchor_points(tuple(imgsz_hw), tuple(strides))
    if centers.shape[0] != boxes.shape[0]:
        raise UsageError(f"head has {boxes.shape[0]} anchors but input {imgsz_hw[0]}x"
                         f"{imgsz_hw[1]} with strides {list(strides)} gives {centers.shape[0]}",
                         "the metadata's input size or decoder strides do not match the model")
    idx, cls, sc = best_class_candidates(scores, score_threshold, score_quant, classes)
    ltrb = boxes[idx]
    if ltrb.dtype.kind in "iu":
        ltrb = dequantize(ltrb, box_quant)
    centers4, signed4 = _anchor_table(tuple(imgsz_hw), tuple(strides))
    # Same float32 arithmetic as decode_boxes: cx + l * (-s) == cx - l * s exactly.
    xyxy = centers4[idx] + ltrb.astype(np.float32, copy=False) * signed4[idx]
    run = nms_reference if nms == "reference" else nms_class_aware
    keep = run(xyxy, sc, cls, iou_threshold, max_detections)
    return RawDetections(xyxy[keep], sc[keep], cls[keep], idx[keep])


@dataclass(frozen=True)
class AnchorFreeParams(DecoderParams):
    """The ``decoder`` fields of this layout (docs/FORMAT.md)."""

    strides: tuple[int, ...] = field(default=(8, 16, 32),
                                     metadata=bounds(1, 1024, (1, schema.MAX_STRIDES)))
    box_output: int = 0
    score_output: int = 1

    def validate(self) -> None:
        if list(self.strides) != sorted(set(self.strides)):
            raise schema.fail(f"'decoder.strides' must be ascending without repeats, got "
                              f"{list(self.strides)}")


@register_decoder
class AnchorFreeLtrb(Decoder):
    """Decoder of the anchor-free ltrb head (outputs ``box_output`` and ``score_output``)."""

    type = TYPE
    Params = AnchorFreeParams
    params: AnchorFreeParams

    def check(self, outputs: Sequence[TensorInfo], input_hw: tuple[int, int],
              labels: Sequence[str]) -> None:
        strides = list(self.params.strides)
        n = num_anchors(input_hw, strides)
        self.expect_shapes(outputs, {"boxes": (1, n, 4), "scores": (1, n, len(labels))},
                           f"input {input_hw[0]}x{input_hw[1]}, strides {strides} and "
                           f"{len(labels)} labels")

    def decode(self, raw: Sequence[np.ndarray], nms: str = "cv2") -> RawDetections:
        boxes, scores = raw
        return decode_head(boxes, scores, self.input_hw, self.params.strides,
                           self.score_threshold, self.iou_threshold, self.max_detections,
                           self.quant[0], self.quant[1], self.classes, nms)
