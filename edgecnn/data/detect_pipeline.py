"""Detection training input: decode once into memory, augment whole batches with OpenCV.

Images are decoded with OpenCV and letterboxed exactly as the runtime does it
(:meth:`edgecnn.runtime.preprocess.Preprocessor.fit`: centred, grey 114 padding), so training,
evaluation and the device see the same pixels. A few thousand 256x256 images take a few hundred
MB as uint8, and decoding them once is much cheaper on two cores than decoding JPEGs every epoch.

Augmentation runs on a batch at a time in the input thread (one affine warp for scale,
translation and horizontal flip; per-image brightness, contrast and saturation), and the boxes
follow the same transform. Boxes that leave the image are clipped; boxes that keep
less than a third of their area, or become thinner than 2 pixels, are dropped from the targets.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError

PAD_VALUE = 114


@dataclass(frozen=True)
class DetectionArrays:
    """A split decoded into memory, letterboxed to the model input.

    Attributes:
        images: uint8 ``(n, H, W, 3)`` RGB.
        boxes: float32 ``(n, M, 4)`` xyxy in model-input pixels (zero rows are padding).
        classes: int32 ``(n, M)`` (-1 for padding).
        letterboxes: float32 ``(n, 4)`` ``scale_x, scale_y, pad_x, pad_y`` per image.
        sizes: int32 ``(n, 2)`` original ``width, height``.
        skipped: image paths that failed to decode (reported, not silently dropped).
    """

    images: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    letterboxes: np.ndarray
    sizes: np.ndarray
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def max_boxes(self) -> int:
        return int(self.boxes.shape[1])


def _preprocessor(imgsz: int):
    from edgecnn.runtime.metadata import InputSpec
    from edgecnn.runtime.model import TensorInfo
    from edgecnn.runtime.preprocess import Preprocessor

    spec = InputSpec(height=imgsz, width=imgsz, channels=3, color="RGB", resize="letterbox",
                     pad_value=PAD_VALUE)
    info = TensorInfo(0, "image", (1, imgsz, imgsz, 3), np.dtype(np.float32), 0.0, 0)
    return Preprocessor(spec, info)


def letterbox_rgb(image_bgr: np.ndarray, imgsz: int, pre=None):
    """BGR uint8 image -> (RGB uint8 letterboxed to ``imgsz``, Letterbox), as the runtime does."""
    import cv2

    pre = pre or _preprocessor(imgsz)
    fitted, box = pre.fit(image_bgr)
    return cv2.cvtColor(fitted, cv2.COLOR_BGR2RGB), box


def load_arrays(samples, imgsz: int, max_boxes: int | None = None,
                workers: int | None = None) -> DetectionArrays:
    """Decode and letterbox ``samples`` (``DetectionSample`` list) into :class:`DetectionArrays`.

    Images that fail to decode are listed in ``skipped`` (the caller reports them) instead of
    stopping the run halfway through reading a large dataset.
    """
    from edgecnn.data.detection import read_image

    if not samples:
        raise UsageError("the dataset split is empty", "check the data.yaml / annotation paths")
    pre = _preprocessor(imgsz)
    most = max((len(s.boxes) for s in samples), default=0)
    m = max(1, most if max_boxes is None else min(most, max_boxes))

    def one(sample):
        try:
            image = read_image(sample.image_path)
        except (ValueError, OSError):
            return None
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        fitted, box = letterbox_rgb(image[:, :, :3], imgsz, pre)
        return fitted, box

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # cv2 releases the GIL while decoding
        results = list(pool.map(one, samples))
    keep = [i for i, r in enumerate(results) if r is not None]
    skipped = tuple(str(samples[i].image_path) for i, r in enumerate(results) if r is None)
    if not keep:
        raise UsageError(f"none of the {len(samples)} images could be decoded",
                         "check that the image files are readable JPEG/PNG files")
    n = len(keep)
    images = np.empty((n, imgsz, imgsz, 3), np.uint8)
    boxes = np.zeros((n, m, 4), np.float32)
    classes = np.full((n, m), -1, np.int32)
    lbs = np.zeros((n, 4), np.float32)
    sizes = np.zeros((n, 2), np.int32)
    for row, i in enumerate(keep):
        fitted, lb = results[i]
        s = samples[i]
        images[row] = fitted
        lbs[row] = (lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y)
        sizes[row] = (lb.src_width, lb.src_height)
        k = min(len(s.boxes), m)
        if k:
            b = np.asarray(s.boxes[:k], np.float32)
            boxes[row, :k, 0::2] = b[:, 0::2] * lb.scale_x + lb.pad_x
            boxes[row, :k, 1::2] = b[:, 1::2] * lb.scale_y + lb.pad_y
            classes[row, :k] = np.asarray(s.classes[:k], np.int32)
    return DetectionArrays(images, boxes, classes, lbs, sizes, skipped)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (all per image)."""

    flip: float = 0.5             # probability of a horizontal flip
    scale: tuple[float, float] = (0.5, 1.5)
    translate: float = 0.2        # fraction of the image size, each direction
    brightness: float = 0.25      # +- fraction of 255
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.5, 1.5)
    min_visible: float = 1 / 3    # boxes keeping less of their area are dropped
    mosaic: float = 0.0           # probability that an image is a mosaic of four
    mosaic_off_epochs: int = 0    # the last epochs train without mosaic (plain images)
    mixup: float = 0.0            # probability that an image is blended with another one


def augment_batch(images: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                  cfg: AugmentConfig, rng: np.random.Generator, out_size: int | None = None,
                  full_areas: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment a uint8 batch with OpenCV. Returns ``(uint8 images, boxes, classes)`` (copies).

    ``images`` may be larger than the output (mosaic canvases, :mod:`edgecnn.data.mosaic`):
    their centre maps to the centre of the ``out_size`` output. ``full_areas`` are the boxes'
    areas before any earlier clipping (default: their current areas), which the "mostly
    visible" rule compares with.

    One affine warp per image does scale, translation and flip in a single resampling pass (and
    the colour changes are one lookup table and one blend), so a batch costs a few milliseconds:
    the TensorFlow graph version this replaced took ~50 ms per 16 images at 256x256, about a
    third of each training step on two cores. The boxes get the same map, are clipped, and drop
    out (class -1) when mostly outside.
    """
    import cv2

    n, size = int(images.shape[0]), int(images.shape[1])
    out_size = out_size or size
    c, co = size / 2.0, out_size / 2.0
    s = np.exp(rng.uniform(np.log(cfg.scale[0]), np.log(cfg.scale[1]), n))
    tx = rng.uniform(-cfg.translate, cfg.translate, n) * size
    ty = rng.uniform(-cfg.translate, cfg.translate, n) * size
    fl = np.where(rng.random(n) < cfg.flip, -1.0, 1.0)
    sat = rng.uniform(*cfg.saturation, n)
    con = rng.uniform(*cfg.contrast, n)
    bright = rng.uniform(-cfg.brightness, cfg.brightness, n) * 255.0
    out = np.empty((n, out_size, out_size, images.shape[3]), np.uint8)
    levels = np.arange(256, dtype=np.float32)
    for i in range(n):
        # Boxes live in continuous coordinates (pixel k spans [k, k+1]); cv2 maps pixel
        # centres, hence the half-pixel terms: a flip must send column k to size-1-k.
        ax, ay = fl[i] * s[i], s[i]
        bx = co - ax * c + tx[i] + 0.5 * ax - 0.5
        by = co - ay * c + ty[i] + 0.5 * ay - 0.5
        warp = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
        img = cv2.warpAffine(images[i], warp, (out_size, out_size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
        gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        img = cv2.addWeighted(img, float(sat[i]), gray, float(1.0 - sat[i]), 0.0)
        mean = float(img.mean())
        lut = np.clip(mean + (levels - mean) * con[i] + bright[i], 0, 255)
        out[i] = cv2.LUT(img, np.rint(lut).astype(np.uint8))

    x1, y1, x2, y2 = (boxes[..., k] for k in range(4))
    fl_, s_, tx_, ty_ = fl[:, None], s[:, None], tx[:, None], ty[:, None]
    nx1 = fl_ * s_ * (x1 - c) + co + tx_
    nx2 = fl_ * s_ * (x2 - c) + co + tx_
    nx1, nx2 = np.minimum(nx1, nx2), np.maximum(nx1, nx2)
    ny1 = s_ * (y1 - c) + co + ty_
    ny2 = s_ * (y2 - c) + co + ty_
    full = (nx2 - nx1) * (ny2 - ny1) if full_areas is None else full_areas * s_ * s_
    cx1, cx2 = np.clip(nx1, 0.0, out_size), np.clip(nx2, 0.0, out_size)
    cy1, cy2 = np.clip(ny1, 0.0, out_size), np.clip(ny2, 0.0, out_size)
    visible = (cx2 - cx1) * (cy2 - cy1)
    ok = ((classes >= 0) & (visible >= cfg.min_visible * full) & (cx2 - cx1 >= 2.0)
          & (cy2 - cy1 >= 2.0))
    new_boxes = (np.stack([cx1, cy1, cx2, cy2], axis=-1) * ok[..., None]).astype(np.float32)
    new_classes = np.where(ok, classes, -1).astype(np.int32)
    return out, new_boxes, new_classes


def mixup_batch(images: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                probability: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MixUp (Zhang et al. 2018) within a batch: with ``probability`` an image is blended
    about half and half (Beta(32, 32), as YOLOv5 does) with another image of the batch, and
    keeps both images' boxes. Box arrays come back with twice the rows."""
    n, m = int(boxes.shape[0]), int(boxes.shape[1])
    order = rng.permutation(n)
    partner = np.empty(n, np.int64)
    partner[order] = np.roll(order, -1)     # a cycle: nobody is paired with itself (n > 1)
    mixed = rng.random(n) < probability
    ratio = rng.beta(32.0, 32.0, n)
    out = images.copy()
    out_boxes = np.zeros((n, 2 * m, 4), np.float32)
    out_classes = np.full((n, 2 * m), -1, np.int32)
    out_boxes[:, :m], out_classes[:, :m] = boxes, classes
    for i in np.flatnonzero(mixed & (partner != np.arange(n))):
        j = partner[i]
        out[i] = np.rint(images[i] * ratio[i] + images[j] * (1.0 - ratio[i])).astype(np.uint8)
        out_boxes[i, m:], out_classes[i, m:] = boxes[j], classes[j]
    return out, out_boxes, out_classes


def batches(arrays: DetectionArrays, batch: int, seed: int, augment: AugmentConfig | None,
            epochs: int | None = None, run_epochs: int | None = None):
    """A ``tf.data.Dataset`` of ``(images float32 0..255, boxes, classes)`` batches.

    Batches are drawn from a seeded permutation per epoch (the last partial batch is dropped so
    every step has the same shape and retraces nothing). ``epochs`` ends the dataset (None:
    endless); ``run_epochs`` is the length of the run, after which ``augment.mosaic_off_epochs``
    are counted back.
    """
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    n = len(arrays)
    batch = max(1, min(batch, n))
    steps = n // batch
    mosaic = augment is not None and augment.mosaic > 0
    m = arrays.max_boxes
    # a mosaic holds up to four images' boxes; cap them as MAX_BOXES caps one image's
    m_out = max(m, min(4 * m, 100)) if mosaic else m
    mixup = augment is not None and augment.mixup > 0
    m_batch = 2 * m_out if mixup else m_out
    mosaic_until = (None if augment is None or not mosaic or run_epochs is None
                    else run_epochs - augment.mosaic_off_epochs)

    def draw(idx, rng, epoch):
        images, boxes, classes = arrays.images[idx], arrays.boxes[idx], arrays.classes[idx]
        if augment is None:
            return images, boxes, classes
        if not mosaic:
            batch_ = augment_batch(images, boxes, classes, augment, rng)
        else:
            from edgecnn.data.mosaic import mosaic_batch

            on = mosaic_until is None or epoch < mosaic_until
            canvas, boxes, classes, areas = mosaic_batch(
                images, boxes, classes, idx, arrays.images, arrays.boxes, arrays.classes,
                augment.mosaic if on else 0.0, m_out, rng)
            batch_ = augment_batch(canvas, boxes, classes, augment, rng,
                                   out_size=images.shape[1], full_areas=areas)
        return mixup_batch(*batch_, augment.mixup, rng) if mixup else batch_

    def gen():
        rng = np.random.default_rng(seed)
        epoch = 0
        while epochs is None or epoch < epochs:
            order = rng.permutation(n)
            for i in range(steps):
                yield draw(np.sort(order[i * batch:(i + 1) * batch]), rng, epoch)
            epoch += 1

    h, w = arrays.images.shape[1:3]
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((batch, h, w, 3), tf.uint8), tf.TensorSpec((batch, m_batch, 4), tf.float32),
        tf.TensorSpec((batch, m_batch), tf.int32)))
    ds = ds.map(lambda i, b, c: (tf.cast(i, tf.float32), b, c))
    return ds.prefetch(2), steps
