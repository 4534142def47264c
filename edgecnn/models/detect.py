"""Compact anchor-free detectors (docs/FORMAT.md, ``decoder.type: anchor_free_ltrb``).

The network is a depthwise-separable backbone (3x3 depthwise + 1x1 pointwise, BN, ReLU, with
identity shortcuts where shapes match), a light top-down feature pyramid (1x1 laterals,
nearest upsampling, Add) and, per pyramid level, two small depthwise-separable branches: one
for box distances, one for class scores. Everything is Conv2D / DepthwiseConv2D /
BatchNormalization / ReLU / Add / UpSampling2D / Concatenate / Reshape / sigmoid, all of which
convert to TFLite builtins with full-int8 kernels, and which structured channel pruning can walk.

Two outputs leave the model, in this order:

- ``boxes``  ``[B, N, 4]``: ``(l, t, r, b)`` distances from each anchor point to the box sides in
  units of the anchor's stride; a ReLU keeps them non-negative and linear, so one int8 scale
  covers them well (no exp: its range would eat the int8 resolution).
- ``scores`` ``[B, N, C]``: sigmoid class probabilities.

Boxes and scores stay separate because their ranges differ by two orders of magnitude: one
concatenated int8 tensor would quantize the scores to a handful of levels.

Anchors are ordered by stride (ascending), then row, then column, as FORMAT.md fixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecnn.lazy import keras
from edgecnn.models.registry import register_model

# Integral box regression: each side is a distribution over these distances (stride units).
BOX_BINS = tuple(float(v) for v in range(16)) + (127 / 8,)
BOX_BINS_LAYER = "boxes_dist"      # the pre-softmax bin logits (B, N, 4 * len(BOX_BINS))


@dataclass(frozen=True)
class DetectorSpec:
    """Shape of one detector family member (channel counts before the width multiplier)."""

    stem: int                                  # first 3x3 stride-2 conv
    stages: tuple[tuple[int, int], ...]        # (channels, blocks) per stride 4, 8, 16, 32
    neck: int                                  # pyramid channels
    strides: tuple[int, ...] = (8, 16, 32)     # pyramid levels that get a head
    head_blocks: int = 1                       # depthwise-separable blocks per head branch


SPECS: dict[str, DetectorSpec] = {
    "det_test": DetectorSpec(stem=8, stages=((8, 1), (16, 1), (16, 1), (24, 1)), neck=16),
    "det_s": DetectorSpec(stem=16, stages=((32, 1), (48, 2), (96, 3), (160, 2)), neck=48),
    "det_m": DetectorSpec(stem=24, stages=((48, 2), (80, 3), (160, 4), (256, 3)), neck=80),
}


def anchor_count(imgsz: tuple[int, int] | int, strides=(8, 16, 32)) -> int:
    """N of FORMAT.md: ``sum((H/s) * (W/s))`` over the strides."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    return sum((h // s) * (w // s) for s in strides)


def _ch(channels: int, width: float) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of 8 (SIMD friendly)."""
    return max(8, int(channels * width + 4) // 8 * 8)


class _Builder:
    """Names every layer deterministically (``prefix_...``) so pruning reports read well.

    BatchNorm momentum is 0.9 (Keras' default is 0.99): our schedules are a few thousand steps
    with fast-moving weights, and slow moving statistics made inference-mode outputs (what the
    mAP and the .tflite see) far worse than training-mode ones.
    """

    def __init__(self):
        self.k = keras()
        self.layers = self.k.layers

    def conv_bn(self, x, filters: int, kernel: int, stride: int, name: str, act: bool = True):
        x = self.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_conv")(x)
        x = self.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"{name}_bn")(x)
        return self.layers.ReLU(name=f"{name}_relu")(x) if act else x

    def dw_sep(self, x, filters: int, stride: int, name: str):
        """3x3 depthwise + 1x1 pointwise; identity shortcut when the shape is unchanged."""
        inp = x
        y = self.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                        name=f"{name}_dw")(x)
        y = self.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"{name}_dw_bn")(y)
        y = self.layers.ReLU(name=f"{name}_dw_relu")(y)
        y = self.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(y)
        y = self.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name=f"{name}_pw_bn")(y)
        if stride == 1 and inp.shape[-1] == filters:
            y = self.layers.Add(name=f"{name}_add")([inp, y])
        return self.layers.ReLU(name=f"{name}_relu")(y)


def build_detector(input_shape, num_classes: int, spec: DetectorSpec, width: float = 1.0,
                   name: str = "detector", integral_boxes: bool = False):
    """Functional Keras model with outputs ``boxes`` and ``scores`` (see module docstring);
    ``integral_boxes`` regresses each side as a distribution (:func:`integral_box_output`)."""
    k = keras()
    h, w, c = (int(v) for v in input_shape)
    _check_detector_input(h, w, num_classes, spec.strides)
    b = _Builder()
    inputs = k.Input((h, w, c), name="image")
    x = b.conv_bn(inputs, _ch(spec.stem, width), 3, 2, "stem")
    features: dict[int, object] = {}
    stride = 2
    for i, (channels, blocks) in enumerate(spec.stages):
        stride *= 2
        for j in range(blocks):
            x = b.dw_sep(x, _ch(channels, width), 2 if j == 0 else 1, f"stage{i + 1}_block{j}")
        features[stride] = x
    return detection_head(inputs, features, num_classes, _ch(spec.neck, width), spec.strides,
                          spec.head_blocks, name, integral_boxes)


def build_detector_on_backbone(input_shape, num_classes: int, backbone: str,
                               weights: str | None = None, neck: int = 64,
                               head_blocks: int = 1, name: str | None = None,
                               integral_boxes: bool = False,
                               skip_blocks: frozenset[int] = frozenset()):
    """The same pyramid and head on a pretrained backbone (``edgecnn.models.backbones``).

    The backbone's stride-8/16/32 features feed the top-down pyramid exactly where the
    compact backbone's stages do in :func:`build_detector`; outputs follow docs/FORMAT.md.
    ``skip_blocks``: see :func:`edgecnn.models.backbones.backbone_features`.

    Example:
        model = build_detector_on_backbone((256, 256, 3), 1, "efficientnet_lite0", "imagenet")
    """
    from edgecnn.models.backbones import FEATURE_STRIDES, backbone_features

    k = keras()
    h, w, c = (int(v) for v in input_shape)
    _check_detector_input(h, w, num_classes, FEATURE_STRIDES)
    inputs = k.Input((h, w, c), name="image")
    features = backbone_features(backbone, inputs, weights, skip_blocks)
    return detection_head(inputs, features, num_classes, neck, FEATURE_STRIDES, head_blocks,
                          name or f"det_{backbone}", integral_boxes)


def _check_detector_input(h: int, w: int, num_classes: int, strides) -> None:
    top = max(strides)
    if h % top or w % top:
        raise ValueError(f"input size {h}x{w} must be a multiple of the largest stride {top}")
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")


def detection_head(inputs, features: dict[int, object], num_classes: int, neck: int,
                   strides=(8, 16, 32), head_blocks: int = 1, name: str = "detector",
                   integral_boxes: bool = False):
    """Top-down pyramid + per-level box/class branches on ``features`` ({stride: tensor}).

    Any backbone that yields feature maps at ``strides`` can sit under it; ``inputs`` is the
    image tensor the features were computed from. ``integral_boxes``: see
    :func:`integral_box_output`.
    """
    k = keras()
    L = k.layers
    b = _Builder()
    h, w = int(inputs.shape[1]), int(inputs.shape[2])
    levels = sorted(strides)
    # Top-down pyramid: coarse semantics flow into finer levels by nearest upsampling + Add.
    pyramid: dict[int, object] = {}
    prev = None
    for s in reversed(levels):
        lat = b.conv_bn(features[s], neck, 1, 1, f"neck_lateral{s}")
        if prev is not None:
            up = L.UpSampling2D(2, interpolation="nearest", name=f"neck_up{s}")(prev)
            lat = L.Add(name=f"neck_merge{s}")([lat, up])
        prev = b.dw_sep(lat, neck, 1, f"neck_smooth{s}")
        pyramid[s] = prev

    prior = -math.log((1 - 0.01) / 0.01)  # focal-loss prior: start with scores ~0.01
    box_parts, score_parts = [], []
    for s in levels:
        feat = pyramid[s]
        n = (h // s) * (w // s)
        xb, xc = feat, feat
        for j in range(head_blocks):
            xb = b.dw_sep(xb, neck, 1, f"head{s}_box{j}")
            xc = b.dw_sep(xc, neck, 1, f"head{s}_cls{j}")
        per_anchor = 4 * len(BOX_BINS) if integral_boxes else 4
        box = L.Conv2D(per_anchor, 1, name=f"head{s}_box_pred",
                       bias_initializer=k.initializers.Constant(0.0 if integral_boxes else 1.0))(xb)
        cls = L.Conv2D(num_classes, 1, name=f"head{s}_cls_pred",
                       bias_initializer=k.initializers.Constant(prior))(xc)
        box_parts.append(L.Reshape((n, per_anchor), name=f"head{s}_box_flat")(box))
        score_parts.append(L.Reshape((n, num_classes), name=f"head{s}_cls_flat")(cls))
    raw_name = BOX_BINS_LAYER if integral_boxes else "boxes_raw"
    boxes = (L.Concatenate(axis=1, name=raw_name)(box_parts) if len(levels) > 1
             else L.Activation("linear", name=raw_name)(box_parts[0]))
    boxes = integral_box_output(boxes) if integral_boxes else L.ReLU(name="boxes")(boxes)
    logits = (L.Concatenate(axis=1, name="scores_logits")(score_parts) if len(levels) > 1
              else L.Activation("linear", name="scores_logits")(score_parts[0]))
    scores = L.Activation("sigmoid", name="scores")(logits)
    return k.Model(inputs, [boxes, scores], name=name)


def integral_box_output(bin_logits):
    """``boxes`` from per-side distributions over :data:`BOX_BINS` (integral regression, the
    box representation of GFL / distribution focal loss): softmax over the bins, then their
    expected value, all TFLite builtins (RESHAPE, SOFTMAX, FULLY_CONNECTED).

    The bins are 0..15 stride units and a last one at 15.875 = 127 / 8: the expectation is a
    1x1 layer whose 17 weights are the bin values, and with that maximum the int8 converter's
    per-channel scale is exactly 1/8, so every bin value is an exact int8 weight (0..15 alone
    would give scale 15/127 and round the bins by up to 6%).
    """
    k = keras()
    L = k.layers
    n, bins = int(bin_logits.shape[1]), len(BOX_BINS)
    x = L.Reshape((n, 4, bins), name="boxes_bins")(bin_logits)
    x = L.Softmax(axis=-1, name="boxes_softmax")(x)
    x = L.Dense(1, use_bias=False, trainable=False, name="boxes_integral",
                kernel_initializer=k.initializers.Constant(
                    [[v] for v in BOX_BINS]))(x)
    return L.Reshape((n, 4), name="boxes")(x)


def _register(name: str, default_imgsz: int, description: str) -> None:
    spec = SPECS[name]

    @register_model(name, task="detect", default_imgsz=default_imgsz, description=description)
    def _build(input_shape=(default_imgsz, default_imgsz, 3), num_classes: int = 1,
               width: float = 1.0, integral_boxes: bool = False, **kw):
        return build_detector(input_shape, num_classes, spec, width=width, name=name,
                              integral_boxes=integral_boxes)

    _build.spec = spec


_register("det_test", 64, "tiny detector for tests (seconds to build and train)")
_register("det_s", 256, "fast detector: strides 8/16/32, ~0.1 GMAC at 256x256")
_register("det_m", 320, "larger detector for 320x320: more accurate, ~2.5x det_s compute")


def detector_strides(name: str) -> tuple[int, ...]:
    """Pyramid strides of a registered detector (for the run's DecoderSpec)."""
    return SPECS[name].strides if name in SPECS else (8, 16, 32)
