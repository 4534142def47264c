"""What the engines do differently for a model on a pretrained backbone.

- :func:`head_layer` tells the new layers (the detector's pyramid and head, a classifier's
  ``classifier`` dense) from the pretrained ones, by the names the builders give them.
- :func:`freeze` stops a group of layers from training; :func:`freeze_batch_norm` keeps the
  backbone's batch-norm layers in inference mode, with their ImageNet statistics (batches of
  8-32 images of one small dataset give noisy statistics, and a few hundred steps drag the
  moving averages away from what the pretrained convolutions expect).
- :func:`scale_learning_rate` gives the backbone's variables a lower learning rate than the
  new layers, inside one optimizer.
- :func:`normalized` feeds a model the ``(pixel - mean) / std`` its weights expect from the
  ``pixel / 255`` the detector's train step passes.
"""

from __future__ import annotations

from edgecnn.lazy import keras

# Layers of :func:`edgecnn.models.detect.detection_head` (neck_*, head{stride}_*) and the
# outputs after them; a classifier's new head is its ``classifier`` dense (+ softmax).
_HEAD_PREFIXES = ("neck_", "head8_", "head16_", "head32_", "head64_")
_HEAD_NAMES = {"boxes_raw", "boxes", "scores_logits", "scores", "classifier", "probs",
               "dropout"}


def head_layer(layer) -> bool:
    """Whether ``layer`` belongs to the task head built on top of a backbone."""
    return layer.name in _HEAD_NAMES or layer.name.startswith(_HEAD_PREFIXES)


def backbone_layers(model) -> list:
    """The weighted layers of ``model`` that are not its task head, in model order."""
    return [layer for layer in model.layers if layer.weights and not head_layer(layer)]


def freeze(layers, frozen: bool = True) -> None:
    """Set ``trainable`` of ``layers`` (a frozen batch-norm layer also runs in inference mode).

    Keras builds the list of trainable variables when a step is traced or a model compiled,
    so freeze before building the engine that trains the model.
    """
    for layer in layers:
        layer.trainable = not frozen


def release(model) -> None:
    """Make every layer of ``model`` trainable again (what a saved run should hold: a later
    fine-tuning step, prune or ``qat``, decides for itself what to freeze)."""
    freeze(model.layers, frozen=False)


def freeze_batch_norm(layers) -> int:
    """Freeze the batch-norm layers among ``layers``; returns how many."""
    k = keras()
    bn = [layer for layer in layers if isinstance(layer, k.layers.BatchNormalization)]
    freeze(bn)
    return len(bn)


def scale_learning_rate(optimizer, variables, scale: float):
    """Make ``optimizer`` step ``variables`` with ``scale`` times its learning rate.

    The optimizer's class is swapped for a subclass whose ``update_step`` scales the rate for
    those variables (matched by identity when the step is traced: Keras' TensorFlow backend
    hands ``update_step`` the backing ``tf.Variable``, or under ``tf.distribute`` one replica's
    component of it); every other variable, and the schedule, are unchanged. Decoupled weight
    decay keeps the full rate (at 5e-4 it moves a weight by less than 0.1% over a run).
    Returns ``optimizer``.
    """
    if scale == 1.0:
        return optimizer
    ids = frozenset(i for v in variables for i in _identities(v))
    base = type(optimizer)

    class ScaledLearningRate(base):  # type: ignore[misc, valid-type]
        def update_step(self, gradient, variable, learning_rate):
            if id(variable) in ids:
                learning_rate = learning_rate * scale
            return super().update_step(gradient, variable, learning_rate)

    ScaledLearningRate.__name__ = base.__name__   # what Keras writes into a saved config
    optimizer.__class__ = ScaledLearningRate
    return optimizer


def _identities(variable) -> list[int]:
    """ids of a Keras variable, its backing variable and that one's per-replica components."""
    backing = getattr(variable, "value", variable)
    return [id(variable), id(backing)] + [id(c) for c in getattr(backing, "values", ())]


def normalized(model, mean, std):
    """``model`` behind a layer that maps ``pixel / 255`` to ``(pixel - mean) / std``.

    Returns ``model`` itself for edgecnn's own contract (mean 0, std 255). The wrapper shares
    ``model``'s layers and weights.
    """
    import numpy as np

    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if np.allclose(mean, 0.0) and np.allclose(std, 255.0):
        return model
    k = keras()
    inputs = k.Input(tuple(model.inputs[0].shape[1:]), name="image_01")
    scale, offset = (255.0 / std).ravel(), (-mean / std).ravel()
    x = k.layers.Rescaling(scale=scale.tolist() if scale.size > 1 else float(scale[0]),
                           offset=offset.tolist() if offset.size > 1 else float(offset[0]),
                           name="normalize")(inputs)
    return k.Model(inputs, model(x), name=f"{model.name}_normalized")
