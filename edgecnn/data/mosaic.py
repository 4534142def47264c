"""Mosaic: four training images on one 2x canvas, which the batch augmentation then warps down
to the model input (YOLOv4's mosaic, as Ultralytics builds it).

Each output image shows parts of four scenes around a random centre, so a small dataset
yields many more object layouts, scales and backgrounds per epoch, and objects are often cut
by the image border as they are on the device. The canvas is ``2 * size`` square; the affine
warp of :func:`edgecnn.data.detect_pipeline.augment_batch` maps its centre to the output's,
so at scale 1 the output is the central ``size x size`` window.
"""

from __future__ import annotations

import numpy as np

PAD_VALUE = 114


def _placements(size: int, xc: int, yc: int):
    """Canvas region and source region of the four quadrant images (top-left, top-right,
    bottom-left, bottom-right) around the mosaic centre ``(xc, yc)``."""
    s, c = size, 2 * size
    return (
        ((max(xc - s, 0), max(yc - s, 0), xc, yc), "tl"),
        ((xc, max(yc - s, 0), min(xc + s, c), yc), "tr"),
        ((max(xc - s, 0), yc, xc, min(c, yc + s)), "bl"),
        ((xc, yc, min(xc + s, c), min(c, yc + s)), "br"),
    )


def _source_window(size: int, region, corner: str) -> tuple[int, int, int, int]:
    x1a, y1a, x2a, y2a = region
    w, h = x2a - x1a, y2a - y1a
    x1b = size - w if corner in ("tl", "bl") else 0
    y1b = size - h if corner in ("tl", "tr") else 0
    return x1b, y1b, x1b + w, y1b + h


def mosaic_batch(images: np.ndarray, boxes: np.ndarray, classes: np.ndarray, index: np.ndarray,
                 pool_images: np.ndarray, pool_boxes: np.ndarray, pool_classes: np.ndarray,
                 probability: float, max_boxes: int, rng: np.random.Generator):
    """Build ``2 * size`` canvases for a batch.

    With ``probability`` an image becomes a mosaic of itself and three images drawn from the
    pool; otherwise it is centred on the canvas unchanged.

    Args:
        images, boxes, classes: the batch (``uint8 (n, S, S, 3)``, xyxy ``(n, M, 4)``,
            ``(n, M)`` with -1 for padding).
        index: the batch's rows in the pool (so an image is not drawn twice).
        pool_images, pool_boxes, pool_classes: the whole training split.
        max_boxes: rows of the returned box arrays.

    Returns:
        ``(canvases, boxes, classes, full_areas)``: boxes are clipped to the part of their
        image that made it onto the canvas; ``full_areas`` are their areas before that clipping,
        for the augmentation's "mostly visible" rule.
    """
    n, size = images.shape[0], images.shape[1]
    canvas = np.full((n, 2 * size, 2 * size, 3), PAD_VALUE, np.uint8)
    out_boxes = np.zeros((n, max_boxes, 4), np.float32)
    out_classes = np.full((n, max_boxes), -1, np.int32)
    out_areas = np.zeros((n, max_boxes), np.float32)
    pool = len(pool_images)
    half = size // 2
    for i in range(n):
        if rng.random() >= probability:
            canvas[i, half:half + size, half:half + size] = images[i]
            parts = [(boxes[i] + half, classes[i], None)]
        else:
            others = rng.integers(0, pool, 3)
            xc, yc = (int(v) for v in rng.integers(half, 3 * half + 1, 2))
            parts = []
            for k, (region, corner) in enumerate(_placements(size, xc, yc)):
                src = images[i] if k == 0 else pool_images[others[k - 1]]
                b = boxes[i] if k == 0 else pool_boxes[others[k - 1]]
                c = classes[i] if k == 0 else pool_classes[others[k - 1]]
                x1b, y1b, x2b, y2b = _source_window(size, region, corner)
                x1a, y1a, x2a, y2a = region
                canvas[i, y1a:y2a, x1a:x2a] = src[y1b:y2b, x1b:x2b]
                shift = np.array([x1a - x1b, y1a - y1b] * 2, np.float32)
                parts.append((b + shift, c, region))
        _pack(parts, out_boxes[i], out_classes[i], out_areas[i])
    return canvas, out_boxes, out_classes, out_areas


def _pack(parts, boxes_out, classes_out, areas_out) -> None:
    """Clip each part's boxes to its canvas region and write the real ones first."""
    rows = []
    for b, c, region in parts:
        keep = c >= 0
        b, c = b[keep], c[keep]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        if region is not None:
            x1, y1, x2, y2 = region
            b = np.stack([np.clip(b[:, 0], x1, x2), np.clip(b[:, 1], y1, y2),
                          np.clip(b[:, 2], x1, x2), np.clip(b[:, 3], y1, y2)], axis=-1)
        rows.append((b, c, area))
    b = np.concatenate([r[0] for r in rows])
    c = np.concatenate([r[1] for r in rows])
    a = np.concatenate([r[2] for r in rows])
    inside = ((b[:, 2] - b[:, 0]) > 0) & ((b[:, 3] - b[:, 1]) > 0)
    b, c, a = b[inside], c[inside], a[inside]
    k = min(len(b), len(boxes_out))
    boxes_out[:k], classes_out[:k], areas_out[:k] = b[:k], c[:k], a[:k]
