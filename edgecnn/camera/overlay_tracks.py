"""Draw what tracking adds to a frame: trails, counting lines and zones with their counts.

Same conventions as :mod:`edgecnn.camera.overlay` (in place on a BGR ``uint8`` frame, fixed
palette); boxes and ``#id`` tags are drawn by :func:`edgecnn.camera.overlay.draw_detections`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import cv2
import numpy as np

from edgecnn.camera.overlay import _label_box, class_color

LINE_COLOR = (0, 215, 255)    # amber
ZONE_COLOR = (255, 191, 0)    # sky blue


def draw_trails(image: np.ndarray, trails: Mapping[int, Iterable[tuple[int, int]]],
                thickness: int = 2) -> np.ndarray:
    """A polyline through each track's last centres, in a colour per track ID."""
    for tid, points in trails.items():
        pts = np.asarray(list(points), np.int32)
        if len(pts) >= 2:
            cv2.polylines(image, [pts.reshape(-1, 1, 2)], False, class_color(tid), thickness,
                          cv2.LINE_AA)
    return image


def _total(counts: Mapping[str, int]) -> int:
    return int(sum(counts.values()))


def draw_line(image: np.ndarray, points: np.ndarray, counts: Mapping) -> np.ndarray:
    """A counting line with ``name in N out M`` three quarters along it (clear of the stats
    band at the top and of labels at its ends)."""
    (x1, y1), (x2, y2) = np.round(points).astype(int).tolist()
    cv2.line(image, (x1, y1), (x2, y2), LINE_COLOR, 2, cv2.LINE_AA)
    text = f"{counts['name']} in {_total(counts['in'])} out {_total(counts['out'])}"
    _label_box(image, text, x1 + 3 * (x2 - x1) // 4 + 4, y1 + 3 * (y2 - y1) // 4, LINE_COLOR,
               0.5, 1)
    return image


def draw_zone(image: np.ndarray, polygon: np.ndarray, counts: Mapping) -> np.ndarray:
    """A zone outline with ``name N inside`` in its bottom-left corner (detection tags sit
    above boxes, so the bottom keeps the two apart)."""
    pts = np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(image, [pts], True, ZONE_COLOR, 2, cv2.LINE_AA)
    x = int(pts[:, 0, 0].min())
    y = int(pts[:, 0, 1].max())
    text = f"{counts['name']} {_total(counts['occupancy'])} inside"
    _label_box(image, text, x + 2, y - 2, ZONE_COLOR, 0.5, 1)
    return image
