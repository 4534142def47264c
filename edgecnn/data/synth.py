"""Synthetic detection scenes: shapes on photos and procedural backgrounds, in YOLO format.

The class of an object is its shape (circle, square, triangle, star, cross); colour, size,
aspect, rotation and fill style are drawn independently of the class, so a detector cannot
cheat on colour. Shapes that are not among the labelled classes are drawn as unlabelled
distractors, together with lines and text. Objects overlap (partial occlusion), may be cut by
the image border, and scenes get uneven lighting, blur and sensor noise.

Two variants share the shapes but nothing else:

* ``default``: backgrounds are random crops of scikit-learn's bundled photos (``china.jpg``,
  ``flower.jpg``) with flips and colour jitter, or gradients, smooth noise, stripes and clutter;
  objects are filled (solid, outlined, gradient or striped) in saturated colours.
* ``heldout``: procedural backgrounds of other textures (checkerboards, mosaics, rings, plaid),
  hollow outlined objects, noise-textured fills and a pastel/dark palette, for reporting how a
  detector trained on ``default`` generalizes.

Boxes are tight around the visible pixels of each object: drawing keeps an id map of which
object owns each pixel, so occluded and truncated parts do not count.

Example:
    rng = np.random.default_rng(0)
    image, boxes, classes = render_scene(rng, 256)
    yaml_path = make_synthetic_dataset("synth", n_train=3000, n_val=500)
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.synth_paint import background as paint_background
from edgecnn.data.synth_paint import contrasting_color, random_color
from edgecnn.errors import UsageError

SHAPES = ("circle", "square", "triangle", "star", "cross")
DEFAULT_CLASSES = ("circle", "square", "triangle", "star")
VARIANTS = ("default", "heldout")
_YAML_MARKER = "# edgecnn synthetic shapes"  # first line of our data.yaml: safe to regenerate

_SUBPIXEL = 4  # cv2 drawing with 4 fractional bits: smooth, exact-looking geometry
_SCALE = 1 << _SUBPIXEL
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices of a shape inscribed in the unit circle (float32 (N, 2))."""
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8
    elif shape == "triangle":
        t = np.deg2rad([-90, 30, 150])
        pts = np.stack([np.cos(t), np.sin(t) + 0.25], 1)  # centred on its box, not centroid
    elif shape == "star":
        t = np.deg2rad(np.arange(10) * 36 - 90)
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        pts = np.stack([r * np.cos(t), r * np.sin(t) + 0.1], 1)
    elif shape == "cross":
        a, b = 0.3, 0.95
        pts = np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                        [-a, a], [-b, a], [-b, -a], [-a, -a]])
    else:
        raise UsageError(f"unknown shape {shape!r}", f"choose from {', '.join(SHAPES)}")
    return pts.astype(np.float32)


_POLYGONS = {s: _unit_polygon(s) for s in SHAPES}


def check_classes(classes) -> tuple[str, ...]:
    """Validate a list of shape class names (at least one, no repeats, known shapes)."""
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise UsageError(f"invalid synthetic classes {list(classes)}",
                         f"pick distinct names from {', '.join(SHAPES)}")
    return classes


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise UsageError(f"unknown synthetic variant {variant!r}",
                         f"choose from {', '.join(VARIANTS)}")
    return variant


# --- objects ---------------------------------------------------------------------------------

def object_polygon(shape: str, center, radius: float, aspect: float, angle_deg: float
                   ) -> np.ndarray:
    """Pixel vertices (float32 (N, 2)) of a shape: scaled, stretched, rotated, placed."""
    pts = _POLYGONS[shape] * np.float32(radius)
    stretch = np.float32(math.sqrt(aspect))
    pts = pts * np.array([stretch, 1 / stretch], np.float32)
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    return pts @ rot.T + np.asarray(center, np.float32)


def _fixed(pts: np.ndarray) -> list[np.ndarray]:
    return [np.round(pts * _SCALE).astype(np.int32)]


def _fixed_point(point: np.ndarray) -> tuple[int, int]:
    """One (x, y) in the fixed-point units of ``_SUBPIXEL``, as cv2.line wants it."""
    x, y = _fixed(point)[0]
    return int(x), int(y)


# A pixel belongs to an object (in the id map, hence in its box) when the object covers at
# least this much of it (0..255); fainter anti-aliased fringes are only blended in.
_COVERAGE_MIN = 77


def draw_object(image: np.ndarray, idmap: np.ndarray, obj_id: int, pts: np.ndarray,
                color, style: str, rng: np.random.Generator, thickness: int = 3) -> None:
    """Draw one object into ``image`` and claim its pixels in ``idmap`` (0 = background).

    The shape is rasterized once as anti-aliased coverage; the image is blended with that
    coverage and the id map takes the well-covered pixels, so boxes derived from the id map
    match what is visible to within a fringe pixel.

    Styles: ``solid``, ``outlined`` (fill plus a contrasting rim), ``gradient``, ``striped``,
    ``noisy`` (noise-textured fill) and ``hollow`` (outline only; the inside is background).
    """
    h, w = idmap.shape
    pad = thickness + 2
    lo, hi = pts.min(0), pts.max(0)
    x0, y0 = max(int(lo[0]) - pad, 0), max(int(lo[1]) - pad, 0)
    x1, y1 = min(int(hi[0]) + pad + 1, w), min(int(hi[1]) + pad + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    poly = _fixed(pts - np.array([x0, y0], np.float32))
    shape = (y1 - y0, x1 - x0)
    coverage = np.zeros(shape, np.uint8)
    if style == "hollow":
        cv2.polylines(coverage, poly, True, 255, thickness, cv2.LINE_AA, _SUBPIXEL)
    else:
        cv2.fillPoly(coverage, poly, 255, cv2.LINE_AA, _SUBPIXEL)
    region = image[y0:y1, x0:x1]
    _blend(region, _fill(style, color, shape, rng), coverage)
    claimed = coverage >= _COVERAGE_MIN
    if style == "outlined":
        rim_color = tuple(255 - c for c in color) if rng.random() < 0.5 else random_color(rng)
        rim = np.zeros(shape, np.uint8)
        cv2.polylines(rim, poly, True, 255, max(1, thickness // 2), cv2.LINE_AA, _SUBPIXEL)
        _blend(region, np.asarray(rim_color, np.float32), rim)
        claimed |= rim >= _COVERAGE_MIN
    idmap[y0:y1, x0:x1][claimed] = obj_id


def _fill(style: str, color, shape: tuple[int, int], rng) -> np.ndarray:
    """The object's paint: a colour, or a (h, w, 3) texture for the textured styles."""
    base = np.asarray(color, np.float32)
    if style in ("solid", "outlined", "hollow"):
        return base
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    if style == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy) / max(shape)
        return np.clip(base * (0.55 + 0.7 * t[..., None]), 0, 255)
    if style == "striped":
        a, period = rng.uniform(0, np.pi), rng.uniform(3, 10)
        t = np.sin((np.cos(a) * xx + np.sin(a) * yy) * (2 * np.pi / period)) > 0
        return np.where(t[..., None], base, base * 0.45 + 60)
    if style == "noisy":
        return np.clip(base + rng.normal(0, 35, (*shape, 1)).astype(np.float32), 0, 255)
    raise UsageError(f"unknown object style {style!r}")


def _blend(region: np.ndarray, paint: np.ndarray, coverage: np.ndarray) -> None:
    """``region = region * (1 - a) + paint * a`` with ``a = coverage / 255``, in place."""
    alpha = coverage.astype(np.float32)[..., None] * np.float32(1 / 255)
    mixed = region * (1 - alpha) + paint * alpha
    region[...] = (mixed + 0.5).astype(np.uint8)


def _draw_clutter(image: np.ndarray, idmap: np.ndarray, rng, variant: str,
                  distractors: tuple[str, ...], count: int) -> None:
    """Unlabelled lines, text and distractor shapes; they also hide objects (id 0)."""
    size = image.shape[0]
    for _ in range(count):
        kind = rng.integers(3) if distractors else rng.integers(2)
        color = random_color(rng, variant)
        if kind == 0:
            p1, p2 = rng.uniform(0, size, (2, 2))
            width = int(rng.integers(1, 4))
            a, b = _fixed_point(p1), _fixed_point(p2)
            cv2.line(image, a, b, color, width, cv2.LINE_AA, _SUBPIXEL)
            cv2.line(idmap, a, b, 0, width, cv2.LINE_8, _SUBPIXEL)
        elif kind == 1:
            text = "".join(rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789"), 3))
            org = (int(rng.uniform(0, size * 0.8)), int(rng.uniform(size * 0.1, size)))
            scale = rng.uniform(0.3, 1.0) * size / 256
            font = _FONTS[rng.integers(len(_FONTS))]
            cv2.putText(image, text, org, font, scale, color, 1, cv2.LINE_AA)
            cv2.putText(idmap, text, org, font, scale, 0, 1, cv2.LINE_8)
        else:
            shape = distractors[rng.integers(len(distractors))]
            radius = size * math.exp(rng.uniform(math.log(0.03), math.log(0.15)))
            pts = object_polygon(shape, rng.uniform(0, size, 2), radius,
                                 math.exp(rng.uniform(-0.4, 0.4)), rng.uniform(0, 360))
            style = "hollow" if variant == "heldout" and rng.random() < 0.5 else "solid"
            draw_object(image, idmap, 0, pts, color, style, rng)


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the area of box ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    area = (b[2] - b[0]) * (b[3] - b[1])
    return float(max(w, 0) * max(h, 0) / area) if area > 0 else 0.0


# --- lighting, blur, noise -------------------------------------------------------------------

@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    # Fixed seed: the bank is a constant table; which window of it a scene uses comes from
    # the scene's own rng, so scenes stay reproducible without drawing fresh noise each time.
    return np.random.default_rng(1234).standard_normal((2 * size, 2 * size, 3)).astype(
        np.float32)


def _photometric(image: np.ndarray, rng) -> np.ndarray:
    size = image.shape[0]
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-30, 30)
    if rng.random() < 0.7:  # uneven lighting: a smooth gain field
        gains = rng.uniform(0.55, 1.35, (int(rng.integers(2, 4)),) * 2) * contrast
        field = cv2.resize(gains.astype(np.float32), (size, size),
                           interpolation=cv2.INTER_LINEAR)
        out = cv2.multiply(image, cv2.merge([field, field, field]), dtype=cv2.CV_32F)
    else:
        out = image.astype(np.float32) * np.float32(contrast)
    if rng.random() < 0.5:
        y, x = rng.integers(0, size, 2)
        out = cv2.scaleAdd(_noise_bank(size)[y:y + size, x:x + size], rng.uniform(2, 12), out)
    out = cv2.convertScaleAbs(out, alpha=1.0, beta=brightness)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


# --- scenes ----------------------------------------------------------------------------------

def render_scene(rng: np.random.Generator, imgsz: int = 256,
                 classes: tuple[str, ...] = DEFAULT_CLASSES, variant: str = "default", *,
                 max_objects: int = 7, background: str | None = None, clutter: bool = True,
                 effects: bool = True, return_masks: bool = False):
    """Render one scene.

    Args:
        rng: the only source of randomness; the same generator state gives the same scene.
        imgsz: side of the square image.
        classes: labelled shapes; class index ``i`` is ``classes[i]``. Other shapes appear as
            unlabelled distractors.
        variant: ``"default"`` or ``"heldout"`` (see the module docstring).
        max_objects: at most this many labelled objects (about 4% of scenes have none).
        background: force a background kind (e.g. ``"flat"``) instead of a random one.
        clutter: draw unlabelled lines, text and distractor shapes.
        effects: apply lighting, noise and blur.
        return_masks: also return (K, H, W) bool masks of each object's visible pixels.

    Returns:
        ``(image_bgr uint8 (S, S, 3), boxes float32 (K, 4) pixel xyxy, classes int32 (K,))``,
        plus the masks when asked. Boxes enclose exactly the visible pixels of each object
        (before blur, which may spread an edge by a pixel).
    """
    classes = check_classes(classes)
    _check_variant(variant)
    image = np.ascontiguousarray(paint_background(rng, imgsz, variant, background))
    idmap = np.zeros((imgsz, imgsz), np.uint8)
    distractors = tuple(s for s in SHAPES if s not in classes)
    if clutter and rng.random() < 0.6:
        _draw_clutter(image, idmap, rng, variant, distractors, int(rng.integers(1, 6)))

    n_objects = 0 if rng.random() < 0.04 else int(rng.integers(1, max_objects + 1))
    placed_boxes: list[np.ndarray] = []
    regions: list[np.ndarray] = []  # where each object's pixels can be (box + line width)
    labels: list[int] = []
    styles, probs = (("hollow", "noisy", "outlined"), (0.45, 0.3, 0.25)) \
        if variant == "heldout" else (("solid", "outlined", "gradient", "striped"),
                                      (0.5, 0.2, 0.2, 0.1))
    for _ in range(n_objects):
        cls = int(rng.integers(len(classes)))
        for _attempt in range(12):
            # At least 4 px: smaller shapes are unrecognizable and would be unlabelled.
            radius = max(imgsz * math.exp(rng.uniform(math.log(0.04), math.log(0.22))), 4.0)
            aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
            center = rng.uniform(0.35 * radius, imgsz - 0.35 * radius, 2)
            pts = object_polygon(classes[cls], center, radius, aspect, rng.uniform(0, 360))
            box = np.concatenate([pts.min(0), pts.max(0)])
            # The new object is drawn on top: keep every earlier one at least ~60% visible.
            if all(_box_overlap(box, b) < 0.4 for b in placed_boxes):
                break
        else:
            continue
        x0, y0 = min(max(int(box[0]), 0), imgsz - 1), min(max(int(box[1]), 0), imgsz - 1)
        x1, y1 = max(min(int(box[2]), imgsz), x0 + 1), max(min(int(box[3]), imgsz), y0 + 1)
        local = np.asarray(cv2.mean(image[y0:y1, x0:x1])[:3], np.float32)
        color = contrasting_color(rng, variant, local)
        style = str(rng.choice(styles, p=probs))
        thickness = int(rng.integers(2, max(3, int(radius * 0.25))))
        labels.append(cls)
        placed_boxes.append(box)
        regions.append(box + np.array([-1, -1, 1, 1], np.float32) * (thickness + 2))
        draw_object(image, idmap, len(labels), pts, color, style, rng, thickness)

    if clutter and rng.random() < 0.25:  # thin occluders over the objects
        _draw_clutter(image, idmap, rng, variant, (), int(rng.integers(1, 3)))
    if effects:
        image = _photometric(image, rng)
    boxes, keep = _visible_boxes(idmap, regions)
    out_classes = np.asarray(labels, np.int32)[keep] if labels else np.zeros(0, np.int32)
    if return_masks:
        masks = np.stack([idmap == i + 1 for i in np.flatnonzero(keep)]) if keep.any() else \
            np.zeros((0, imgsz, imgsz), bool)
        return image, boxes, out_classes, masks
    return image, boxes, out_classes


# An object left with fewer visible pixels than this (after occlusion and clipping) is too
# small to be a fair target; it stays in the picture but is not labelled.
_MIN_VISIBLE_PIXELS = 12


def _visible_boxes(idmap: np.ndarray, regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes of each object's pixels in ``idmap``; ``regions`` bound where to look."""
    count = len(regions)
    boxes = np.zeros((count, 4), np.float32)
    keep = np.zeros(count, bool)
    h, w = idmap.shape
    for i, region in enumerate(regions):
        x0, y0 = max(int(region[0]), 0), max(int(region[1]), 0)
        x1, y1 = min(int(region[2]) + 1, w), min(int(region[3]) + 1, h)
        mask = idmap[y0:y1, x0:x1] == i + 1
        if mask.sum() < _MIN_VISIBLE_PIXELS:
            continue
        cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
        boxes[i] = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        keep[i] = True
    return boxes[keep], keep


# --- datasets on disk ------------------------------------------------------------------------

def make_synthetic_dataset(out: str | Path, n_train: int, n_val: int, imgsz: int = 256,
                           seed: int = 0, variant: str = "default",
                           classes: tuple[str, ...] = DEFAULT_CLASSES,
                           jpeg_quality: int = 90, overwrite: bool = False) -> Path:
    """Write a YOLO dataset (``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``).

    The output folder appears only when complete. Image ``i`` of a split depends only on
    ``(seed, variant, split, i)``, so a larger dataset with the same seed starts with the same
    images.

    Returns:
        Path of the written ``data.yaml``.
    """
    from edgecnn.fsutil import atomic_dir

    classes = check_classes(classes)
    _check_variant(variant)
    if n_train < 1 or n_val < 0:
        raise UsageError("a synthetic dataset needs at least 1 training image and >= 0 val")
    if not 32 <= imgsz <= 4096:
        raise UsageError(f"--imgsz {imgsz} is out of range", "use 32..4096")
    out = Path(out)
    # A synthetic dataset written before output manifests existed is ours to regenerate too.
    with atomic_dir(out, overwrite or (out.is_dir() and _is_synthetic_dataset(out)),
                    option="OUT") as tmp:
        for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
            if count == 0:
                continue
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
            for i in range(count):
                rng = np.random.default_rng([seed, VARIANTS.index(variant), split_id, i])
                image, boxes, labels = render_scene(rng, imgsz, classes, variant)
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                if not ok:
                    raise RuntimeError("OpenCV failed to encode a JPEG")
                (tmp / "images" / split / f"{i:06d}.jpg").write_bytes(buf.tobytes())
                (tmp / "labels" / split / f"{i:06d}.txt").write_text(
                    yolo_label_text(boxes, labels, imgsz, imgsz))
        (tmp / "data.yaml").write_text(_data_yaml(classes, variant, seed, imgsz, n_val > 0))
    return out / "data.yaml"


def _is_synthetic_dataset(folder: Path) -> bool:
    try:
        return (folder / "data.yaml").read_text(encoding="utf-8").startswith(_YAML_MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def yolo_label_text(boxes: np.ndarray, classes: np.ndarray, width: int, height: int) -> str:
    """YOLO label lines (``class cx cy w h``, normalized) for pixel xyxy boxes."""
    lines = []
    for (x1, y1, x2, y2), c in zip(boxes, classes):
        lines.append(f"{int(c)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return "".join(line + "\n" for line in lines)


def _data_yaml(classes, variant: str, seed: int, imgsz: int, has_val: bool) -> str:
    # No 'path' key: readers (ours and Ultralytics) then use the yaml's own folder.
    names = ", ".join(f'"{c}"' for c in classes)
    lines = [f"{_YAML_MARKER}: variant {variant}, seed {seed}, {imgsz}x{imgsz}",
             "train: images/train"]
    if has_val:
        lines.append("val: images/val")
    lines += [f"nc: {len(classes)}", f"names: [{names}]"]
    return "\n".join(lines) + "\n"
