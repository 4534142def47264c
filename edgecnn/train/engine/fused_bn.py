"""Batch normalization through TensorFlow's fused kernel while a training step is traced.

Keras 3 computes a training-mode ``BatchNormalization`` from unfused ops (``tf.nn.moments`` and
``tf.nn.batch_normalization``: a mean, a squared difference, another mean, a subtraction, a
multiplication, ... and the gradient of each, with broadcasts). In the detector's training step
on two CPU cores those ops took ~40% of the step (TF profiler, det_s width 1.5 at 256, batch
16); ``FusedBatchNormV3`` does the same in one op forward and one backward.

:func:`fused_batch_norm` routes the training-mode calls made while a step is *traced* to the
fused kernel; the layers, their weights and the saved model are unchanged, and inference-mode
calls (evaluation, frozen BN in the int8 simulation, masks, renorm) keep Keras' own code.

Example:
    with fused_batch_norm():
        ltrb, logits = heads(images, training=True)     # inside the tf.function being traced
"""

from __future__ import annotations

import contextlib

from edgecnn.lazy import keras, tensorflow


def _fusable(layer, inputs, training, mask) -> bool:
    rank = len(inputs.shape)
    axis = layer.axis if isinstance(layer.axis, int) else None
    return (bool(training) and layer.trainable and mask is None and rank == 4
            and axis in (-1, 3) and not layer.renorm and not layer.synchronized
            and inputs.dtype.name == "float32" and layer.epsilon > 1.001e-5)


def _fused_forward(layer, inputs):
    """Normalize with the batch statistics and update the moving ones, as Keras does."""
    tf = tensorflow()
    channels = int(inputs.shape[-1])
    gamma = layer.gamma if layer.scale else tf.ones([channels], tf.float32)
    beta = layer.beta if layer.center else tf.zeros([channels], tf.float32)
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), epsilon=layer.epsilon,
        data_format="NHWC", is_training=True)
    # The kernel returns the unbiased (n / (n - 1)) batch variance; Keras averages the biased
    # one, which is what it normalizes with.
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
    variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
    m = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * m + tf.stop_gradient(mean) * (1.0 - m))
    layer.moving_variance.assign(layer.moving_variance * m
                                 + tf.stop_gradient(variance) * (1.0 - m))
    return tf.cast(y, layer.compute_dtype)


@contextlib.contextmanager
def fused_batch_norm(enabled: bool = True):
    """Inside the block, training-mode ``BatchNormalization`` calls use the fused kernel.

    Only the Python call is redirected, so enter it around the code a ``tf.function`` traces:
    the traced graph keeps the fused ops after the block ends. Not thread-safe (it swaps a
    class attribute); training traces on one thread.
    """
    if not enabled:
        yield
        return
    cls = keras().layers.BatchNormalization
    original = cls.call

    def call(self, inputs, training=None, mask=None):
        if _fusable(self, inputs, training, mask):
            return _fused_forward(self, inputs)
        return original(self, inputs, training=training, mask=mask)

    cls.call = call
    try:
        yield
    finally:
        cls.call = original
