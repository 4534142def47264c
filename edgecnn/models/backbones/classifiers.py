"""Registry entries for the pretrained classifiers (``--arch efficientnet_lite0`` etc.).

Each builder follows the registry contract ``fn(input_shape, num_classes, **kwargs)`` and
takes ``weights=None|"imagenet"``; the entry records the input normalization the weights
expect, so a training run can write it into run.json and the ``.tflite`` metadata.
"""

from __future__ import annotations

from edgecnn.errors import UsageError
from edgecnn.models.backbones.api import BACKBONES, build_classifier
from edgecnn.models.registry import register_model

_DESCRIPTIONS = {
    "efficientnet_lite0": "EfficientNet-Lite0 (ReLU6, no SE; 4.7M params, 224x224); "
                          "weights='imagenet' from the [pretrained] extra",
    "mobilenet_v2": "Keras MobileNetV2 1.0 (3.5M params, 224x224); weights='imagenet' "
                    "from Keras' cache or download",
    "mobilenet_v3_small_minimal": "Keras MobileNetV3-Small minimalistic (ReLU only, no SE); "
                                  "weights='imagenet' from Keras' cache or download",
    "mobilenet_v3_large_minimal": "Keras MobileNetV3-Large minimalistic (ReLU only, no SE); "
                                  "weights='imagenet' from Keras' cache or download",
}


def _register(name: str) -> None:
    info = BACKBONES[name]

    @register_model(name, task="classify", default_imgsz=info.default_imgsz,
                    normalization=info.normalization, description=_DESCRIPTIONS[name])
    def _build(input_shape=(224, 224, 3), num_classes: int = 1000, weights: str | None = None,
               dropout: float = 0.2, **kwargs):
        if kwargs:
            raise UsageError(f"architecture {name} does not take option(s) "
                             f"{', '.join(sorted(kwargs))}", "drop them")
        return build_classifier(name, input_shape, num_classes, weights=weights,
                                dropout=dropout)


for _name in BACKBONES:
    _register(_name)
