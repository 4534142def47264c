"""ImageNet-pretrained backbones: EfficientNet-Lite0 (ported from PyTorch) and Keras' MobileNets.

Importing this package does not import TensorFlow; building a model does.

- :func:`build_backbone` -> :class:`Backbone`: a Keras model with stride-8/16/32 outputs and
  the :class:`~edgecnn.runtime.metadata.InputSpec` (mean/std) its weights expect.
- :func:`backbone_features`: the same layers built on a tensor of a larger graph (detectors).
- :func:`build_classifier`: pretrained classifier, 1000-class head or a new one.
- :mod:`.torchfile`: a PyTorch state_dict reader that runs no code from the file.
"""

from edgecnn.models.backbones.api import (
    BACKBONES,
    FEATURE_STRIDES,
    Backbone,
    BackboneInfo,
    backbone_features,
    backbone_info,
    build_backbone,
    build_classifier,
    imagenet_labels,
    input_spec,
    pretrained_defaults,
)

__all__ = ["BACKBONES", "FEATURE_STRIDES", "Backbone", "BackboneInfo", "backbone_features",
           "backbone_info", "build_backbone", "build_classifier", "imagenet_labels",
           "input_spec", "pretrained_defaults"]
