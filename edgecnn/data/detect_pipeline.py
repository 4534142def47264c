"""Detection training input: decode once into memory, augment whole batches in TensorFlow.

Images are decoded with OpenCV and letterboxed exactly as the runtime does it
(:meth:`edgecnn.runtime.preprocess.Preprocessor.fit`: centred, grey 114 padding), so training,
evaluation and the device see the same pixels. A few thousand 256x256 images take a few hundred
MB as uint8, and decoding them once is much cheaper on two cores than decoding JPEGs every epoch.

Augmentation runs on a batch at a time inside the TensorFlow graph (one projective transform
for scale, translation and horizontal flip; per-image brightness, contrast and saturation), and
the boxes follow the same transform. Boxes that leave the image are clipped; boxes that keep
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


def augment_batch(images, boxes, classes, cfg: AugmentConfig, seed=None):
    """Augment a uint8 batch in TensorFlow. Returns float32 images in 0..255, boxes, classes.

    One projective transform per image does scale, translation and flip in a single resampling
    pass; the boxes get the same affine map, are clipped, and drop out (class -1) when mostly
    outside.
    """
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    b = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)  # square inputs
    c = size / 2.0
    u = lambda lo, hi: tf.random.uniform([b], lo, hi)  # noqa: E731
    log_lo, log_hi = np.log(cfg.scale[0]), np.log(cfg.scale[1])
    s = tf.exp(u(log_lo, log_hi))
    tx = u(-cfg.translate, cfg.translate) * size
    ty = u(-cfg.translate, cfg.translate) * size
    fl = tf.where(tf.random.uniform([b]) < cfg.flip, -1.0, 1.0)
    # forward map: x_out = fl*s*(x - c) + c + tx ; y_out = s*(y - c) + c + ty
    # ImageProjectiveTransformV3 wants the inverse (output pixel -> input pixel).
    a0 = 1.0 / (s * fl)
    a2 = c - (c + tx) * a0
    b1 = 1.0 / s
    b2 = c - (c + ty) * b1
    zeros = tf.zeros([b])
    transform = tf.stack([a0, zeros, a2, zeros, b1, b2, zeros, zeros], axis=1)
    img = tf.cast(images, tf.float32)
    img = tf.raw_ops.ImageProjectiveTransformV3(
        images=img, transforms=transform, output_shape=tf.shape(images)[1:3],
        fill_value=float(PAD_VALUE), interpolation="BILINEAR", fill_mode="CONSTANT")

    # colour: brightness, contrast, saturation (grey mix); the pad stays near grey anyway
    gray = tf.reduce_mean(img, axis=-1, keepdims=True)
    sat = u(*cfg.saturation)[:, None, None, None]
    img = gray + (img - gray) * sat
    mean = tf.reduce_mean(img, axis=[1, 2, 3], keepdims=True)
    con = u(*cfg.contrast)[:, None, None, None]
    img = mean + (img - mean) * con
    img = img + u(-cfg.brightness, cfg.brightness)[:, None, None, None] * 255.0
    img = tf.clip_by_value(img, 0.0, 255.0)

    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    fl_, s_, tx_, ty_ = fl[:, None], s[:, None], tx[:, None], ty[:, None]
    nx1 = fl_ * s_ * (x1 - c) + c + tx_
    nx2 = fl_ * s_ * (x2 - c) + c + tx_
    nx1, nx2 = tf.minimum(nx1, nx2), tf.maximum(nx1, nx2)
    ny1 = s_ * (y1 - c) + c + ty_
    ny2 = s_ * (y2 - c) + c + ty_
    full = (nx2 - nx1) * (ny2 - ny1)
    cx1, cx2 = tf.clip_by_value(nx1, 0.0, size), tf.clip_by_value(nx2, 0.0, size)
    cy1, cy2 = tf.clip_by_value(ny1, 0.0, size), tf.clip_by_value(ny2, 0.0, size)
    visible = (cx2 - cx1) * (cy2 - cy1)
    ok = ((classes >= 0) & (visible >= cfg.min_visible * full) & (cx2 - cx1 >= 2.0)
          & (cy2 - cy1 >= 2.0))
    new_boxes = tf.stack([cx1, cy1, cx2, cy2], axis=-1) * tf.cast(ok, tf.float32)[..., None]
    new_classes = tf.where(ok, classes, -1)
    return img, new_boxes, new_classes


def batches(arrays: DetectionArrays, batch: int, seed: int, augment: AugmentConfig | None,
            epochs: int | None = None):
    """A ``tf.data.Dataset`` of ``(images float32 0..255, boxes, classes)`` batches.

    Batches are drawn from a seeded permutation per epoch (the last partial batch is dropped so
    every step has the same shape and retraces nothing).
    """
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    n = len(arrays)
    batch = max(1, min(batch, n))
    steps = n // batch

    def gen():
        rng = np.random.default_rng(seed)
        epoch = 0
        while epochs is None or epoch < epochs:
            order = rng.permutation(n)
            for i in range(steps):
                idx = np.sort(order[i * batch:(i + 1) * batch])
                yield arrays.images[idx], arrays.boxes[idx], arrays.classes[idx]
            epoch += 1

    h, w = arrays.images.shape[1:3]
    m = arrays.max_boxes
    ds = tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((batch, h, w, 3), tf.uint8), tf.TensorSpec((batch, m, 4), tf.float32),
        tf.TensorSpec((batch, m), tf.int32)))
    if augment is not None:
        aug = tf.autograph.experimental.do_not_convert(
            lambda i, b, c: augment_batch(i, b, c, augment))
        ds = ds.map(aug,
                    num_parallel_calls=1, deterministic=True)
    else:
        ds = ds.map(lambda i, b, c: (tf.cast(i, tf.float32), b, c))
    return ds.prefetch(2), steps
