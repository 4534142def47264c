"""Colours and backgrounds of the synthetic scenes (edgecnn.data.synth draws the objects).

``default`` backgrounds are crops of scikit-learn's bundled photos or smooth procedural
textures; ``heldout`` ones are textures the default variant never shows (checkerboards,
mosaics, rings, plaid), so that a detector's generalization can be reported.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import UsageError

# --- colours ---------------------------------------------------------------------------------

def _hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    pixel = np.array([[[h * 180.0, s * 255.0, v * 255.0]]], dtype=np.float32)
    b, g, r = cv2.cvtColor(pixel.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def random_color(rng: np.random.Generator, variant: str = "default") -> tuple[int, int, int]:
    if variant == "heldout":
        if rng.random() < 0.5:  # pastel
            return _hsv_to_bgr(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.8, 1.0))
        return _hsv_to_bgr(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.35))  # dark
    return _hsv_to_bgr(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.3, 1.0))


def contrasting_color(rng, variant, reference: np.ndarray) -> tuple[int, int, int]:
    """A random colour that differs visibly from ``reference`` (the local background)."""
    color = random_color(rng, variant)
    for _ in range(6):
        if np.abs(np.asarray(color, np.float32) - reference).sum() >= 90:
            break
        color = random_color(rng, variant)
    return color


# --- backgrounds -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled sample photos as BGR arrays, read with OpenCV (no PIL needed)."""
    spec = importlib.util.find_spec("sklearn")
    locations = spec.submodule_search_locations if spec else None
    folder = Path(locations[0]) / "datasets" / "images" if locations else None
    photos = []
    for name in ("china.jpg", "flower.jpg"):
        image = cv2.imread(str(folder / name)) if folder else None
        if image is not None:
            photos.append(image)
    if not photos:
        from edgecnn.errors import MissingDependencyError
        raise MissingDependencyError("scikit-learn", "train",
                                     "the photo backgrounds of synthetic scenes")
    return tuple(photos)


def _photo_background(rng, size: int) -> np.ndarray:
    photo = sample_photos()[rng.integers(len(sample_photos()))]
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.25, 1.0))
    aspect = math.exp(rng.uniform(-0.3, 0.3))
    cw, ch = min(w, int(side * aspect)), min(h, int(side / aspect))
    x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    crop = cv2.resize(photo[y:y + ch, x:x + cw], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.2:
        crop = crop[::-1]
    gains = rng.uniform(0.7, 1.3, 3)  # colour jitter per channel
    lut = np.clip(np.arange(256)[:, None] * gains + rng.uniform(-25, 25), 0, 255)
    return cv2.LUT(np.ascontiguousarray(crop), lut.astype(np.uint8).reshape(1, 256, 3))


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def _two_tone(t: np.ndarray, c1, c2) -> np.ndarray:
    """Blend two colours by ``t`` in [0, 1] through a 256-entry lookup table (fast)."""
    idx = cv2.convertScaleAbs(t, alpha=255.0)
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    lut = (np.asarray(c1, np.float32) + (np.asarray(c2, np.float32) - np.asarray(c1, np.float32))
           * ramp).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(cv2.merge([idx, idx, idx]), lut.reshape(1, 256, 3))


def _gradient(rng, size: int) -> np.ndarray:
    c1, c2 = random_color(rng), random_color(rng)
    angle = rng.uniform(0, 2 * np.pi)
    xx, yy = _grid(size)
    t = (np.float32(np.cos(angle) / (2 * size)) * xx + np.float32(np.sin(angle) / (2 * size)) * yy
         + np.float32(0.5 - (np.cos(angle) + np.sin(angle)) / 4))
    return _two_tone(t, c1, c2)


def _smooth_noise(rng, size: int, cells: int | None = None, interp=cv2.INTER_CUBIC) -> np.ndarray:
    cells = cells or int(rng.integers(2, 12))
    low = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    return cv2.resize(low, (size, size), interpolation=interp)


def _wave(rng, size: int) -> np.ndarray:
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 40)
    xx, yy = _grid(size)
    k = np.float32(2 * np.pi / period)
    return np.sin(np.float32(np.cos(angle)) * k * xx + np.float32(np.sin(angle)) * k * yy)


def _stripes(rng, size: int, plaid: bool = False) -> np.ndarray:
    variant = "heldout" if plaid else "default"
    c1, c2 = random_color(rng, variant), random_color(rng, variant)
    t = _wave(rng, size)
    if plaid:
        t = 0.5 * t + 0.5 * _wave(rng, size)
    return _two_tone(t * np.float32(0.5) + np.float32(0.5), c1, c2)


def _checkerboard(rng, size: int) -> np.ndarray:
    cell = rng.uniform(6, 40)
    angle = rng.uniform(0, np.pi / 2)
    xx, yy = _grid(size)
    u = (np.float32(np.cos(angle) / cell) * xx + np.float32(np.sin(angle) / cell) * yy)
    v = (np.float32(-np.sin(angle) / cell) * xx + np.float32(np.cos(angle) / cell) * yy)
    t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    return _two_tone(t, random_color(rng, "heldout"), random_color(rng, "heldout"))


def _rings(rng, size: int) -> np.ndarray:
    c1, c2 = random_color(rng, "heldout"), random_color(rng, "heldout")
    cx, cy = rng.uniform(-0.5, 1.5, 2) * size
    xx, yy = _grid(size)
    radius = cv2.magnitude(xx - np.float32(cx), yy - np.float32(cy))
    t = np.sin(radius * np.float32(2 * np.pi / rng.uniform(5, 30))) * 0.5 + 0.5
    return _two_tone(t.astype(np.float32), c1, c2)


def background(rng, size: int, variant: str, kind: str | None = None) -> np.ndarray:
    kinds: tuple[str, ...]
    if variant == "heldout":
        kinds = ("checker", "mosaic", "rings", "plaid")
        kind = kind or kinds[rng.integers(len(kinds))]
    else:
        kinds = ("photo", "gradient", "noise", "stripes", "flat")
        kind = kind or rng.choice(kinds, p=[0.5, 0.15, 0.15, 0.1, 0.1])
    if kind == "photo":
        return _photo_background(rng, size)
    if kind == "gradient":
        return _gradient(rng, size)
    if kind == "noise":
        return _smooth_noise(rng, size)
    if kind == "stripes":
        return _stripes(rng, size)
    if kind == "flat":
        image = np.empty((size, size, 3), np.uint8)
        image[...] = random_color(rng)
        return image
    if kind == "checker":
        return _checkerboard(rng, size)
    if kind == "mosaic":
        return _smooth_noise(rng, size, int(rng.integers(4, 24)), cv2.INTER_NEAREST)
    if kind == "rings":
        return _rings(rng, size)
    if kind == "plaid":
        return _stripes(rng, size, plaid=True)
    raise UsageError(f"unknown background {kind!r}")
