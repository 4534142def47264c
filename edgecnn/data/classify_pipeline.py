"""tf.data input pipelines for classification: seeded shuffling, batch-level augmentation.

Augmentation runs on whole batches (one gather per axis for the random shifts) rather than per
image, which is several times cheaper on a 2-core CPU. All randomness comes from stateless ops
seeded by (seed, batch index), so a fixed seed replays exactly the same batches.
"""

from __future__ import annotations

import numpy as np

from edgecnn.lazy import tensorflow


def shift_pad(imgsz: int) -> int:
    """Largest random shift in pixels: about 10% of the side (2 px at 28x28, 1 px at 8x8)."""
    return max(1, int(round(imgsz * 0.08)))


def normalize(x, mean, std):
    """uint8 pixels -> model input ``(pixel - mean) / std`` (the run.json contract)."""
    tf = tensorflow()
    mean = tf.constant(np.asarray(mean, np.float32))
    std = tf.constant(np.asarray(std, np.float32))
    return (tf.cast(x, tf.float32) - mean) / std


def augment_batch(images, seed, shift: int, hflip: bool):
    """Random translation by up to ``shift`` px (reflect padding) and optional h-flip."""
    tf = tensorflow()
    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([n, 2], seed=seed, minval=0, maxval=2 * shift + 1,
                                          dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]
    cols = offsets[:, 1:] + tf.range(w)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, cols, axis=2, batch_dims=1)
    if hflip:
        flip = tf.random.stateless_uniform([n], seed=seed + [0, 1]) < 0.5
        out = tf.where(flip[:, None, None, None], tf.reverse(out, axis=[2]), out)
    return out


def train_dataset(x: np.ndarray, y: np.ndarray, num_classes: int, batch: int, mean, std,
                  augment: bool, hflip: bool, seed: int):
    """Endless, shuffled, augmented batches of (normalized float image, one-hot label).

    Returns ``(dataset, steps_per_epoch)``; batches are full (``drop_remainder``) so a
    mirrored strategy splits them evenly.
    """
    tf = tensorflow()
    batch = max(1, min(int(batch), len(x)))
    steps = max(1, len(x) // batch)
    shift = shift_pad(int(x.shape[1]))
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch, drop_remainder=True).enumerate()

    @tf.autograph.experimental.do_not_convert
    def prepare(i, pair):
        images, labels = pair
        if augment:
            images = augment_batch(images, tf.stack([tf.constant(seed, tf.int64), i]), shift,
                                   hflip)
        return normalize(images, mean, std), tf.one_hot(labels, num_classes)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def eval_dataset(x: np.ndarray, y: np.ndarray, num_classes: int, batch: int, mean, std):
    """Batches of (normalized image, one-hot label) in order, no augmentation."""
    tf = tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(max(1, int(batch)))
    prepare = tf.autograph.experimental.do_not_convert(
        lambda a, b: (normalize(a, mean, std), tf.one_hot(b, num_classes)))
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
