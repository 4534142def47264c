"""Keras' MobileNetV2 and MobileNetV3-minimalistic, built for edgecnn's int8 contract.

Only the *minimalistic* MobileNetV3 variants are offered: they drop hard-swish,
squeeze-and-excitation and 5x5 kernels, so every layer is Conv/Depthwise/BN/ReLU/Add, the set
that quantizes to int8 without loss-prone ops (hard-swish and SE's sigmoid-gated multiply
need extra int8 rescaling and run slower on CPUs). The in-model ``Rescaling`` of MobileNetV3 is
left out (``include_preprocessing=False``): edgecnn folds ``(pixel - mean) / std`` into the
input quantization instead, and these networks expect ``[-1, 1]``, i.e. mean = std = 127.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecnn.errors import UsageError
from edgecnn.lazy import keras


@dataclass(frozen=True)
class KerasApp:
    """A ``keras.applications`` builder and where its stride-8/16/32 features are."""

    builder: str                              # attribute of keras.applications
    features: dict[int, str]                  # stride -> layer name
    options: dict = field(default_factory=dict)


APPS: dict[str, KerasApp] = {
    "mobilenet_v2": KerasApp(
        "MobileNetV2", {8: "block_5_add", 16: "block_12_add", 32: "block_16_project_BN"}),
    "mobilenet_v3_small_minimal": KerasApp(
        "MobileNetV3Small",
        {8: "expanded_conv_2_add", 16: "expanded_conv_7_add", 32: "expanded_conv_10_add"},
        {"minimalistic": True, "include_preprocessing": False}),
    "mobilenet_v3_large_minimal": KerasApp(
        "MobileNetV3Large",
        {8: "expanded_conv_5_add", 16: "expanded_conv_11_add", 32: "expanded_conv_14_add"},
        {"minimalistic": True, "include_preprocessing": False}),
}


def build_app(name: str, input_shape, weights: str | None, include_top: bool = False,
              num_classes: int = 1000, pooling: str | None = None, input_tensor=None):
    """The Keras application ``name`` with ImageNet weights or none (offline-safe download).

    ``input_tensor`` builds the layers on a tensor of the caller's graph.
    """
    from edgecnn.models.backbones.weights import guarded_keras_downloads

    app = APPS[name]
    k = keras()
    builder = getattr(k.applications, app.builder)
    kwargs = dict(app.options, input_shape=tuple(int(v) for v in input_shape),
                  include_top=include_top, weights=weights, pooling=pooling,
                  input_tensor=input_tensor, name=name)
    if include_top:
        kwargs["classes"] = num_classes
    if weights not in (None, "imagenet"):
        raise UsageError(f"unknown weights {weights!r} for {name}", "use 'imagenet' or none")
    try:
        with guarded_keras_downloads(name):
            return builder(**kwargs)
    except ValueError as err:
        # Keras checks input sizes against the weights it has (e.g. 224x224 for a 1000-class
        # top); its message says which sizes work.
        first = str(err).strip().splitlines()[0]
        raise UsageError(f"cannot build {name} for input {kwargs['input_shape']}: {first}",
                         "choose an input size the weights exist for") from None


def mobilenet_classifier(name: str, input_shape, num_classes: int, weights: str | None,
                         dropout: float = 0.2):
    """Classifier on a Keras MobileNet: its own 1000-class top, or pooled features + new head.

    The new head is named like edgecnn's others (``classifier`` dense, softmax inside).
    """
    k = keras()
    if weights == "imagenet" and num_classes == 1000:
        return build_app(name, input_shape, weights, include_top=True)
    base = build_app(name, input_shape, weights, pooling="avg")
    x = base.output
    if dropout > 0:
        x = k.layers.Dropout(dropout, name="dropout")(x)
    out = k.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return k.Model(base.input, out, name=name)
