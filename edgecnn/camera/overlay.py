"""Draw results on a frame: boxes and labels, top-k categories, FPS and stage timings.

Every function draws in place on a BGR ``uint8`` image with OpenCV primitives and returns the
same array, so the camera loop pays for a few rectangles and short strings, nothing more.
Colours come from a fixed palette indexed by class id (no per-frame colour computation), and
text sizes are cached per string, because ``cv2.getTextSize`` is a measurable part of the
overlay cost at 30+ FPS. Box outlines are nested 1-pixel rectangles: OpenCV draws a thicker
rectangle as filled polygons, 10 us for a 200x300 box against 2 us per 1-pixel outline.
:class:`StatsBand` renders the stats text only when it changes, at most a few times a second.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.types import Category, Detection

FONT = cv2.FONT_HERSHEY_SIMPLEX

# 20 well-separated BGR colours (Tableau 20 reordered so neighbouring ids contrast).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
    (232, 199, 174), (120, 187, 255), (138, 223, 152), (150, 152, 255), (213, 176, 197),
    (148, 156, 196), (210, 182, 247), (199, 199, 199), (141, 219, 219), (229, 218, 158),
)


def class_color(index: int) -> tuple[int, int, int]:
    """The BGR colour for a class id (stable across frames and runs)."""
    return PALETTE[int(index) % len(PALETTE)]


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    # Perceived luminance of the BGR background decides black or white text.
    b, g, r = bg
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@lru_cache(maxsize=1024)
def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w, h, base


def text_scale(image: np.ndarray) -> tuple[float, int]:
    """OpenCV font scale and stroke width for tags readable on this image without covering it.

    0.5 (about 10 px high) at 480 px on the short side, growing with the frame (1.0 at 960 px,
    1080p gets 1.1) and never below 0.35, where the text would stop being legible; images
    smaller than that need upscaling first (:func:`edgecnn.camera.still.annotate`).
    """
    short = min(image.shape[:2])
    scale = float(np.clip(short / 960.0, 0.35, 1.5))
    return round(scale, 2), 1 if scale < 0.8 else 2


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise UsageError(f"overlay needs a BGR uint8 HxWx3 image, got shape {shape}")


def _label_box(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int],
               scale: float, thickness: int) -> None:
    """A filled label with its bottom-left corner at (x, y), kept inside the image."""
    patch = _label_patch(text, color, scale, thickness)
    h_img, w_img = image.shape[:2]
    ph, pw = patch.shape[:2]
    x = max(0, min(int(x), w_img - pw))
    y = int(y)
    if y - ph < 0:  # no room above the box: put the label inside it
        y = ph
    y = min(y, h_img)
    top = max(0, y - ph)
    image[top:y, x:x + pw] = patch[ph - (y - top):, :w_img - x]


@lru_cache(maxsize=2048)
def _label_patch(text: str, color: tuple[int, int, int], scale: float,
                 thickness: int) -> np.ndarray:
    """The rendered label (coloured box, text): drawn once per distinct string, then pasted,
    which is a slice copy instead of a rectangle and an anti-aliased text per frame."""
    tw, th, base = _text_size(text, scale, thickness)
    pad = 2
    patch = np.empty((th + base + 2 * pad, tw + 2 * pad, 3), np.uint8)
    patch[:] = color
    cv2.putText(patch, text, (pad, th + pad), FONT, scale, _text_color(color), thickness,
                cv2.LINE_AA)
    patch.flags.writeable = False
    return patch


def outline(image: np.ndarray, x1: int, y1: int, x2: int, y2: int,
            color: tuple[int, int, int], thickness: int = 1) -> None:
    """A box outline ``thickness`` pixels wide, growing inwards from ``(x1, y1, x2, y2)``."""
    for k in range(max(1, int(thickness))):
        if x2 - k < x1 + k or y2 - k < y1 + k:
            break
        cv2.rectangle(image, (x1 + k, y1 + k), (x2 - k, y2 - k), color, 1)


def draw_detections(image: np.ndarray, detections: Iterable[Detection],
                    labels: Sequence[str] | None = None, *, thickness: int | None = None,
                    font_scale: float | None = None, show_score: bool = True) -> np.ndarray:
    """Draw each detection's box and ``label score`` tag in its class colour.

    Args:
        image: BGR uint8 frame, drawn on in place.
        detections: boxes in this image's pixel coordinates (what ``Detector`` returns).
        labels: optional names overriding ``detection.category.label`` by class index.
        thickness: box line width in pixels (default: 2, 3 from 960 px up).
        font_scale: OpenCV font scale of the tags (default: :func:`text_scale` of the image).
        show_score: append the score to the tag.

    Returns:
        ``image`` (the same array).
    """
    _check_image(image)
    h, w = image.shape[:2]
    fitted, text_thickness = text_scale(image)
    font_scale = fitted if font_scale is None else font_scale
    thickness = (2 if min(h, w) < 960 else 3) if thickness is None else thickness
    for det in detections:
        cat = det.category
        color = class_color(cat.index)
        b = det.box
        x1 = int(round(min(max(b.left, 0), w - 1)))
        y1 = int(round(min(max(b.top, 0), h - 1)))
        x2 = int(round(min(max(b.right, 0), w - 1)))
        y2 = int(round(min(max(b.bottom, 0), h - 1)))
        outline(image, x1, y1, x2, y2, color, thickness)
        name = labels[cat.index] if labels is not None and 0 <= cat.index < len(labels) \
            else cat.label
        text = f"{name} {cat.score:.2f}" if show_score else str(name)
        if det.track_id is not None:
            text = f"#{det.track_id} {text}"
        _label_box(image, text, x1, y1, color, font_scale, text_thickness)
    return image


def draw_categories(image: np.ndarray, categories: Iterable[Category], *, origin=(8, 8),
                    font_scale: float | None = None) -> np.ndarray:
    """Draw a classifier's top-k as ``label score`` rows in the top-left corner."""
    _check_image(image)
    fitted, thickness = text_scale(image)
    font_scale = fitted * 1.2 if font_scale is None else font_scale
    x, y = origin
    for cat in categories:
        text = f"{cat.label} {cat.score:.2f}"
        _, th, base = _text_size(text, font_scale, thickness)
        y += th + base + 4
        _label_box(image, text, x, y, class_color(cat.index), font_scale, thickness)
    return image


def draw_results(image: np.ndarray, results: Iterable) -> np.ndarray:
    """Draw a runner's results: boxes for :class:`Detection`, a top-k list for
    :class:`Category`; records of other kinds are left out."""
    _check_image(image)
    detections, categories = [], []
    for r in results:
        if isinstance(r, Detection):
            detections.append(r)
        elif isinstance(r, Category):
            categories.append(r)
    if detections:
        draw_detections(image, detections)
    if categories:
        draw_categories(image, categories)
    return image


def draw_stats(image: np.ndarray, fps: float | None, stage_ms: Mapping[str, float] | None = None,
               *, font_scale: float | None = None) -> np.ndarray:
    """Draw ``FPS`` and per-stage milliseconds in the top-right corner on a dark band."""
    _check_image(image)
    font_scale = text_scale(image)[0] if font_scale is None else font_scale
    text = stats_text(fps, stage_ms)
    tw, th, base = _text_size(text, font_scale, 1)
    h, w = image.shape[:2]
    x = max(0, w - tw - 10)
    y = th + base + 6
    # Darken the band instead of a solid box so the scene stays visible underneath.
    band = image[0:min(h, y + 2), x:min(w, x + tw + 10)]
    band >>= 1
    cv2.putText(image, text, (x + 5, y - base - 1), FONT, font_scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image


class StatsBand:
    """:func:`draw_stats` for a video: the text is rendered when it changes but at most every
    ``refresh_s`` seconds (readable, and ~20 us of text rendering saved on most frames); every
    frame gets the darkened band and the cached text.

    Example:
        band = StatsBand()
        band.draw(frame, fps, {"pre": 0.2, "infer": 0.4})
    """

    def __init__(self, refresh_s: float = 0.25, font_scale: float = 0.5):
        self.refresh_s = float(refresh_s)
        self.font_scale = font_scale
        self._text: str | None = None
        self._mask: np.ndarray | None = None
        self._last = -float("inf")

    def draw(self, image: np.ndarray, fps: float | None,
             stage_ms: Mapping[str, float] | None = None, now: float | None = None) -> np.ndarray:
        import time

        _check_image(image)
        now = time.perf_counter() if now is None else now
        mask = self._mask
        if mask is None or now - self._last >= self.refresh_s:
            mask = self._render(stats_text(fps, stage_ms))
            self._last = now
        h, w = image.shape[:2]
        mh, mw = min(h, mask.shape[0]), min(w, mask.shape[1])
        band = image[0:mh, w - mw:w]
        band >>= 1
        # cv2.max on the row-strided view writes in place: ~3 us, numpy's broadcast ~50 us
        cv2.max(band, mask[:mh, mask.shape[1] - mw:], dst=band)
        return image

    def _render(self, text: str) -> np.ndarray:
        """The band's mask for ``text``: the cached one if the text did not change."""
        if text == self._text and self._mask is not None:
            return self._mask
        tw, th, base = _text_size(text, self.font_scale, 1)
        y = th + base + 6
        mask = np.zeros((y + 2, tw + 10, 3), np.uint8)
        cv2.putText(mask, text, (5, y - base - 1), FONT, self.font_scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        self._text, self._mask = text, mask
        return mask


def stats_text(fps: float | None, stage_ms: Mapping[str, float] | None = None) -> str:
    """``"29.7 FPS  pre 1.5ms  infer 12.0ms"``: what the stats band shows."""
    parts = [f"{fps:.1f} FPS" if fps is not None else "-- FPS"]
    for name, ms in (stage_ms or {}).items():
        parts.append(f"{name} {ms:.1f}ms")
    return "  ".join(parts)
