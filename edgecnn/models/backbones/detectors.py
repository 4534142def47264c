"""Registry entries for detectors on the pretrained backbones (``--arch det_lite0`` etc.).

The anchor-free head and stride-8/16/32 feature pyramid of ``det_s`` / ``det_m``
(:func:`edgecnn.models.detect.detection_head`) on an ImageNet backbone. Each builder takes
``weights=None|"imagenet"``; the entry carries the backbone's input normalization, so a
training run writes it into run.json and the ``.tflite`` metadata folds it into the input
quantization.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecnn.errors import UsageError
from edgecnn.models.backbones.api import BACKBONES
from edgecnn.models.backbones.efficientnet_lite import SLIM_SKIP
from edgecnn.models.registry import register_model


@dataclass(frozen=True)
class BackboneDetector:
    """A registered detector: which backbone, the pyramid's channel count, and the backbone
    blocks it leaves out."""

    backbone: str
    neck: int
    description: str
    skip_blocks: frozenset[int] = field(default_factory=frozenset)
    integral_boxes: bool = False   # the box head a run gets unless it asks for the other


# neck 64: the pyramid of det_s at --width 1.5 is 72 channels wide; 64 keeps every tensor a
# multiple of 16 (XNNPACK's int8 tile) and the head a small share of the compute.
DETECTORS: dict[str, BackboneDetector] = {
    "det_lite0": BackboneDetector(
        "efficientnet_lite0", 64,
        "EfficientNet-Lite0 + pyramid + anchor-free head; --weights imagenet from the "
        "[pretrained] extra", integral_boxes=True),
    "det_lite0_slim": BackboneDetector(
        "efficientnet_lite0", 64,
        "det_lite0 on 9 of EfficientNet-Lite0's 16 blocks (0.6x its int8 time); --weights "
        "imagenet from the [pretrained] extra", SLIM_SKIP, integral_boxes=True),
    "det_mnv2": BackboneDetector(
        "mobilenet_v2", 64,
        "MobileNetV2 + pyramid + anchor-free head; --weights imagenet from Keras' cache"),
    "det_mnv3": BackboneDetector(
        "mobilenet_v3_large_minimal", 64,
        "MobileNetV3-Large minimalistic + pyramid + anchor-free head; --weights imagenet "
        "from Keras' cache"),
}
DEFAULT_IMGSZ = 256


def backbone_of(arch: str) -> str | None:
    """The backbone under registered architecture ``arch`` (a pretrained classifier is its own
    backbone); None for edgecnn's own families."""
    if arch in DETECTORS:
        return DETECTORS[arch].backbone
    return arch if arch in BACKBONES else None


def default_integral_boxes(arch: str) -> bool:
    """Whether ``arch`` gets the integral box head when a run does not choose: the detectors
    on EfficientNet-Lite0, where it measured +11 to +13 points of mAP@0.5:0.95 on kangaroo
    (docs/DECISIONS.md). Elsewhere the dense head (from scratch it bought ~1.6 points for
    24% more int8 time on ``det_s``; the MobileNet detectors are not measured)."""
    spec = DETECTORS.get(arch)
    return spec is not None and spec.integral_boxes


def pretrained_archs(task: str | None = None) -> list[str]:
    """Registered architectures that ``--weights imagenet`` applies to."""
    from edgecnn.models.registry import list_models

    return [e.name for e in list_models(task) if backbone_of(e.name) is not None]


def _register(name: str) -> None:
    spec = DETECTORS[name]

    @register_model(name, task="detect", default_imgsz=DEFAULT_IMGSZ,
                    normalization=BACKBONES[spec.backbone].normalization,
                    description=spec.description)
    def _build(input_shape=(DEFAULT_IMGSZ, DEFAULT_IMGSZ, 3), num_classes: int = 1,
               weights: str | None = None, integral_boxes: bool = spec.integral_boxes,
               **kwargs):
        from edgecnn.models.detect import build_detector_on_backbone

        if kwargs:
            raise UsageError(f"architecture {name} does not take option(s) "
                             f"{', '.join(sorted(kwargs))}", "drop them")
        return build_detector_on_backbone(input_shape, num_classes, spec.backbone,
                                          weights=weights, neck=spec.neck, name=name,
                                          integral_boxes=integral_boxes,
                                          skip_blocks=spec.skip_blocks)


for _name in DETECTORS:
    _register(_name)
