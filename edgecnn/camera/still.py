"""Still pictures of results: one image annotated for a person to look at, and image grids.

The boxes and tags are the camera's (:func:`edgecnn.camera.overlay.draw_detections`); what a
still adds is room. A small image (a 64x64 digit, a 128x128 training scene) is enlarged first,
so the tags stay legible without covering the object, and a classifier's top-k goes in a
caption band under the image instead of over it. ``predict --save``, the quickstart's
pictures and ``data check --preview`` are drawn here.

Example:
    canvas = annotate(image, detector(image))
    cv2.imwrite("drawn.png", canvas)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from edgecnn.camera.overlay import _label_box, class_color, draw_detections
from edgecnn.errors import UsageError
from edgecnn.runtime.types import Category, Detection, Rect

MIN_SIDE = 320          # short side a still is enlarged to
CAPTION_ROW = 26        # px per top-k row of the caption band
CAPTION_SCALE = 0.6     # font scale of its rows (about 13 px high)


def enlarge(image: np.ndarray, min_side: int = MIN_SIDE) -> tuple[np.ndarray, float]:
    """``(image, factor)``: enlarged so its short side is at least ``min_side``.

    Tiny images (at most 64 px) are scaled by whole pixels (nearest), so what the model saw is
    what the picture shows; larger ones are interpolated.
    """
    h, w = image.shape[:2]
    short = min(h, w)
    if short >= min_side or short == 0:
        return image.copy(), 1.0
    factor = float(int(np.ceil(min_side / short))) if short <= 64 else min_side / short
    size = (round(w * factor), round(h * factor))
    interp = cv2.INTER_NEAREST if short <= 64 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp), factor


def scaled(detection: Detection, factor: float) -> Detection:
    b = detection.box
    box = Rect(b.left * factor, b.top * factor, b.right * factor, b.bottom * factor)
    return Detection(box, detection.category, track_id=detection.track_id)


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    raise UsageError(f"cannot draw on an image of shape {image.shape} and dtype {image.dtype}")


def annotate(image: np.ndarray, results: Iterable, min_side: int = MIN_SIDE) -> np.ndarray:
    """A new picture of ``image`` (BGR or gray uint8) with a runner's results drawn.

    Detections are drawn as boxes with ``label score`` tags (the camera's overlay) on the
    enlarged image; categories become a caption band below it, one row per class.
    """
    canvas, factor = enlarge(_bgr(image), min_side)
    results = list(results)
    detections = [scaled(r, factor) for r in results if isinstance(r, Detection)]
    categories = [r for r in results if isinstance(r, Category)]
    if detections:
        draw_detections(canvas, detections)
    if categories:
        canvas = _caption(canvas, categories)
    return canvas


def _caption(image: np.ndarray, categories: Sequence[Category]) -> np.ndarray:
    """``image`` with a white band below holding one ``label  score`` row per category."""
    w = image.shape[1]
    band = np.full((CAPTION_ROW * len(categories) + 8, w, 3), 255, np.uint8)
    for i, cat in enumerate(categories):
        y = CAPTION_ROW * (i + 1)
        bar = round((w - 16) * min(1.0, max(0.0, float(cat.score))))
        cv2.rectangle(band, (8, y - CAPTION_ROW + 6), (8 + bar, y + 2),
                      _light(class_color(cat.index)), cv2.FILLED)
        _label_box(band, f"{cat.label}  {cat.score:.2f}", 8, y, class_color(cat.index),
                   CAPTION_SCALE, 1)
    return np.vstack([image, band])


def _light(color: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(255 - (255 - c) * 0.35) for c in color)  # type: ignore[return-value]


def grid(images: Sequence[np.ndarray], columns: int = 4, cell: int = 256,
         gap: int = 4) -> np.ndarray:
    """Images side by side, ``columns`` per row, each fitted into a ``cell`` square.

    Each image keeps its aspect ratio, centred on a grey background; the grid is white between
    cells. An empty list is an error (there is nothing to show).
    """
    if not images:
        raise UsageError("no images to put in a grid")
    columns = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    out = np.full((rows * cell + (rows + 1) * gap, columns * cell + (columns + 1) * gap, 3),
                  255, np.uint8)
    for i, image in enumerate(images):
        tile = fit(_bgr(image), cell)
        r, c = divmod(i, columns)
        y, x = gap + r * (cell + gap), gap + c * (cell + gap)
        out[y:y + cell, x:x + cell] = tile
    return out


def fit(image: np.ndarray, cell: int) -> np.ndarray:
    """``image`` scaled to fit a ``cell`` x ``cell`` square, centred on grey."""
    h, w = image.shape[:2]
    factor = cell / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, size, interpolation=interp)
    tile = np.full((cell, cell, 3), 96, np.uint8)
    y, x = (cell - size[1]) // 2, (cell - size[0]) // 2
    tile[y:y + size[1], x:x + size[0]] = small
    return tile
