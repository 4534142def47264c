"""Classification architectures: the seed article's CNN, the compact ``dsnet`` family and a
larger ``cnn_teacher`` built from the same blocks to teach it by distillation.

Every builder returns a functional ``keras.Model`` made of plain Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU, Add, pooling, Flatten and Dense layers only, so that

- the TFLite converter maps each to a builtin op and folds BatchNormalization into the
  preceding convolution (convolutions here have no bias for that reason);
- full-int8 post-training quantization works (no custom ops, no in-model Rescaling: the input
  normalization is data, ``run.json`` mean/std, folded into the input quantization);
- the channel pruner (``edgecnn.prune``) can walk the graph layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UsageError
from edgecnn.lazy import keras
from edgecnn.models.registry import register_model

# Faster-moving BN statistics than Keras' 0.99: our runs are short (hundreds to a few thousand
# steps) and the slow default leaves validation far behind training in the first epochs.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Stage:
    """``repeats`` blocks with ``channels`` outputs; the first has ``stride``.

    ``fused`` stages use a full 3x3 convolution instead of depthwise + pointwise. Early, at high
    resolution with few channels, a full convolution costs little more and int8 runs it far
    better than a depthwise one (dense int8 dot products instead of a memory-bound per-channel
    filter), and one op instead of two cuts per-op overhead, which dominates on tiny inputs.
    """

    channels: int
    stride: int = 1
    repeats: int = 1
    fused: bool = False


def _scaled(channels: int, width: float, divisor: int = 8) -> int:
    """Width-multiplied channel count rounded to a multiple of ``divisor`` (SIMD friendly)."""
    scaled = max(divisor, int(channels * width + divisor / 2) // divisor * divisor)
    # Never round down by more than 10%: the accuracy loss is not worth the saved MACs.
    return scaled + divisor if scaled < 0.9 * channels * width else scaled


def _conv_bn_relu(x, filters: int, kernel: int, stride: int, name: str):
    k = keras()
    x = k.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                        name=f"{name}_conv")(x)
    x = k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return k.layers.ReLU(name=f"{name}_relu")(x)


def fused_block(x, filters: int, stride: int, name: str):
    """Full 3x3 convolution (BN, ReLU); residual when shapes allow."""
    k = keras()
    y = _conv_bn_relu(x, filters, 3, stride, name)
    if stride == 1 and int(x.shape[-1]) == filters:
        y = k.layers.Add(name=f"{name}_add")([x, y])
    return y


def ds_block(x, filters: int, stride: int, name: str):
    """Depthwise 3x3 (BN, ReLU) then pointwise 1x1 (BN, ReLU); residual when shapes allow.

    The residual joins *after* the pointwise ReLU so every int8 tensor feeding the Add is
    non-negative, which keeps the Add's quantization range tight.
    """
    k = keras()
    shortcut = x
    y = k.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                 name=f"{name}_dw")(x)
    y = k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(y)
    y = k.layers.ReLU(name=f"{name}_dw_relu")(y)
    y = k.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(y)
    y = k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(y)
    y = k.layers.ReLU(name=f"{name}_pw_relu")(y)
    if stride == 1 and int(shortcut.shape[-1]) == filters:
        y = k.layers.Add(name=f"{name}_add")([shortcut, y])
    return y


def dsnet(input_shape, num_classes: int, stem: int, stages: tuple[Stage, ...],
          width: float = 1.0, stem_stride: int = 1, dropout: float = 0.0,
          head: str = "gap", name: str = "dsnet"):
    """Stem conv, depthwise-separable stages, then a head and a dense softmax.

    ``head`` is ``"gap"`` (global average pooling) or ``"flatten"`` (the final feature map
    flattened into the dense layer, which keeps *where* each feature fired).
    """
    k = keras()
    if width <= 0:
        raise UsageError(f"width multiplier must be > 0, got {width}", "use e.g. --width 1.0")
    inputs = k.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, _scaled(stem, width), 3, stem_stride, "stem")
    for s, stage in enumerate(stages):
        for r in range(stage.repeats):
            block = fused_block if stage.fused else ds_block
            x = block(x, _scaled(stage.channels, width), stage.stride if r == 0 else 1,
                      f"s{s + 1}b{r + 1}")
    if head == "flatten":
        x = k.layers.Flatten(name="flatten")(x)
    elif head == "gap":
        x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        raise UsageError(f"unknown dsnet head {head!r}", "use 'gap' or 'flatten'")
    if dropout > 0:
        x = k.layers.Dropout(dropout, name="dropout")(x)
    outputs = k.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return k.Model(inputs, outputs, name=name)


@register_model("seed", task="classify",
                description="the seed article's CNN: conv32-pool-conv64-pool-dense128")
def seed(input_shape, num_classes: int, **kwargs):
    """Exactly the seed article's CNN (two 3x3 convs with max pooling, a 128-unit dense layer)."""
    k = keras()
    _reject_unused("seed", kwargs)
    side = min(int(input_shape[0]), int(input_shape[1]))
    if side < 10:
        raise UsageError(f"the seed model needs images of at least 10x10, got {side}x{side}",
                         "use --imgsz 10 or more, or a dsnet architecture")
    inputs = k.Input(shape=tuple(input_shape), name="image")
    x = k.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = k.layers.MaxPooling2D(2, name="pool1")(x)
    x = k.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = k.layers.MaxPooling2D(2, name="pool2")(x)
    x = k.layers.Flatten(name="flatten")(x)
    x = k.layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = k.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return k.Model(inputs, outputs, name="seed")


@register_model("dsnet_test", task="classify",
                description="tiny depthwise-separable net for tests (trains in seconds)")
def dsnet_test(input_shape, num_classes: int, width: float = 1.0, **kwargs):
    _reject_unused("dsnet_test", kwargs)
    return dsnet(input_shape, num_classes, stem=8, stages=(Stage(16, 2), Stage(16, 1)),
                 width=width, name="dsnet_test")


@register_model("dsnet_s", task="classify", default_imgsz=28,
                description="compact int8 net: fused stem, depthwise-separable stages (~69k "
                            "params, <100 KB int8 at 28x28)")
def dsnet_s(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.0, **kwargs):
    """Stride-2 stem, one fused (full 3x3) stage, then depthwise-separable stages.

    Shaped by measurement on Fashion-MNIST (docs/BENCHMARKS.md): at 28x28 its int8 invoke is
    about twice as fast as its float32 one and faster than the seed CNN's int8, because the
    expensive early layers are dense 3x3 convolutions (int8 dot products) and the depthwise
    stages run at 7x7 and 4x4, where they are cheap.
    """
    _reject_unused("dsnet_s", kwargs)
    stages = (Stage(64, 2, 1, fused=True), Stage(128, 2, 2), Stage(144, 2, 1))
    return dsnet(input_shape, num_classes, stem=32, stages=stages, width=width,
                 stem_stride=2, dropout=dropout, name="dsnet_s")


@register_model("dsnet_m", task="classify", default_imgsz=28,
                description="larger dsnet (~155k params): more accuracy, slower than dsnet_s")
def dsnet_m(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.1, **kwargs):
    _reject_unused("dsnet_m", kwargs)
    stages = (Stage(64, 1, 1, fused=True), Stage(128, 2, 2), Stage(256, 2, 2))
    return dsnet(input_shape, num_classes, stem=32, stages=stages, width=width,
                 stem_stride=2, dropout=dropout, name="dsnet_m")


@register_model("dsnet_sf", task="classify", default_imgsz=28,
                description="compact int8 net for Fashion-MNIST: fused 3x3 stages, DS stage, "
                            "flatten head (~83k params, <100 KB int8 at 28x28)")
def dsnet_sf(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.0,
             **kwargs):
    """Stride-2 stem, two fused (full 3x3) blocks at 7x7, one DS block to 4x4, flatten head.

    Differs from ``dsnet_s`` where measurement said it matters (docs/DECISIONS.md): the
    capacity sits in dense 3x3 convolutions at 7x7, which int8 runs as dot products, and the
    classifier reads the flattened 4x4 map instead of its global average, so it keeps where on
    the garment a feature fired (sleeves, collars, soles), which averaging throws away. Same
    recipe, 20 epochs: 91.9% int8 test accuracy vs 91.3-91.4% for GAP-headed variants.
    """
    _reject_unused("dsnet_sf", kwargs)
    stages = (Stage(64, 2, 2, fused=True), Stage(112, 2, 1))
    return dsnet(input_shape, num_classes, stem=32, stages=stages, width=width,
                 stem_stride=2, dropout=dropout, head="flatten", name="dsnet_sf")


@register_model("cnn_teacher", task="classify", default_imgsz=28,
                description="wider full-convolution net to teach compact ones by distillation "
                            "(~0.6M params; too slow for the compact latency budget)")
def cnn_teacher(input_shape, num_classes: int, width: float = 1.0, dropout: float = 0.3,
                **kwargs):
    """Stride-1 stem, then full 3x3 stages at 14x14, 7x7 and 4x4, flatten head.

    A teacher for ``edgecnn train --teacher``: the compact nets underfit Fashion-MNIST, and a
    teacher built from their own blocks at twice the width was only 0.3 points better than
    them, too little for its soft targets to carry anything. This one keeps the full 28x28
    resolution in its stem and spends its capacity in dense convolutions: 93.5% test accuracy
    after 15 epochs of the compact recipe, at 50 s an epoch on 2 cores against 33 s for
    ``dsnet_sf`` at width 2 (docs/BENCHMARKS.md).
    """
    _reject_unused("cnn_teacher", kwargs)
    stages = (Stage(64, 2, 2, fused=True), Stage(128, 2, 2, fused=True),
              Stage(256, 2, 1, fused=True))
    return dsnet(input_shape, num_classes, stem=32, stages=stages, width=width,
                 stem_stride=1, dropout=dropout, head="flatten", name="cnn_teacher")


def _reject_unused(arch: str, kwargs: dict) -> None:
    if kwargs:
        raise UsageError(f"architecture {arch} does not take option(s) "
                         f"{', '.join(sorted(kwargs))}", "drop them or choose a dsnet model")
