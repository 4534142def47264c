"""``tf.distribute`` strategies for ``--distribute``: none, mirrored, multi-worker.

Mirrored training replicates the model on every local device. On a CPU-only machine the
devices are logical CPUs (``tf.config.set_logical_device_configuration``, set before TensorFlow
initializes; the tests do that in a subprocess), so the same code path runs on a laptop and on
a multi-GPU box.
"""

from __future__ import annotations

from edgecnn.errors import UsageError
from edgecnn.lazy import tensorflow

CHOICES = ("none", "mirrored", "multi-worker")
_ALIASES = {"multiworker": "multi-worker", "multi_worker": "multi-worker"}


def strategy_name(name: str | None) -> str | None:
    """The canonical name of strategy ``name`` (None for the default single-device one).

    Raises:
        UsageError: an unknown name.
    """
    key = (name or "none").lower()
    key = _ALIASES.get(key, key)
    if key not in CHOICES:
        raise UsageError(f"unknown distribute strategy {name!r}",
                         f"choose one of: {', '.join(CHOICES)}")
    return None if key == "none" else key


def make_strategy(name: str | None):
    """The strategy for ``name`` (None or "none": the default single-device strategy)."""
    tf = tensorflow()
    key = strategy_name(name)
    if key is None:
        return tf.distribute.get_strategy()
    if key == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    # Cluster layout comes from TF_CONFIG, as tf.distribute documents.
    return tf.distribute.MultiWorkerMirroredStrategy()


def replica_count(strategy) -> int:
    return int(getattr(strategy, "num_replicas_in_sync", 1))
