"""An exponential moving average (EMA) of model weights, updated inside the train step.

The averaged weights are what the detector engine evaluates and keeps: they smooth out the noise
of small-batch steps. The decay warms up as ``decay * (1 - exp(-step / tau))``, so the average
follows the weights closely while they still move fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UsageError
from edgecnn.lazy import keras, tensorflow


@dataclass(frozen=True)
class EmaOptions:
    """Attributes:
        decay: the decay once warmed up (0.999: an average over roughly the last 1000 steps).
        tau: steps over which the decay warms up.
    """

    decay: float = 0.999
    tau: float = 300.0

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise UsageError(f"EMA decay must be in (0, 1), got {self.decay}",
                             "use e.g. 0.999, or turn the average off")
        if self.tau <= 0:
            raise UsageError(f"EMA tau must be > 0, got {self.tau}")


def averaged_variables(model) -> list:
    """What the average covers: the trainable variables and the moving statistics of the
    batch-norm layers that train. Frozen layers (the int8 simulation freezes batch norm) and
    state that is not a weight (activation-quantizer ranges) keep their live values."""
    k = keras()
    stats = []
    for layer in _all_layers(model):
        if isinstance(layer, k.layers.BatchNormalization) and layer.trainable:
            stats += [layer.moving_mean, layer.moving_variance]
    return list(model.trainable_variables) + stats


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):   # a nested model
            yield from _all_layers(layer)


class WeightAverage:
    """Shadow copies of ``variables``; :meth:`update` runs inside the (graph) train step."""

    def __init__(self, variables, options: EmaOptions):
        tf = tensorflow()
        self.options = options
        self.pairs = [(tf.Variable(tf.identity(v), trainable=False), v) for v in variables]

    def update(self, step) -> None:
        """Blend the live weights into the shadows; ``step`` counts optimizer steps from 1."""
        tf = tensorflow()
        decay = self.options.decay * (1.0 - tf.exp(-step / self.options.tau))
        for shadow, live in self.pairs:
            shadow.assign(decay * shadow + (1.0 - decay) * tf.cast(live, shadow.dtype))

    def swap(self) -> None:
        """Exchange live and averaged values (twice restores them): evaluate, then swap back."""
        tf = tensorflow()
        for shadow, live in self.pairs:
            held = tf.identity(live)
            live.assign(shadow)
            shadow.assign(held)
