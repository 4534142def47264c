"""EfficientNet-Lite0 in Keras 3, layer for layer the PyTorch ``efficientnet-lite-pytorch`` model.

EfficientNet-Lite is EfficientNet made for int8 on CPUs (TF's ``efficientnet_lite_builder``):
ReLU6 instead of swish, no squeeze-and-excitation, and a stem (32 channels) and head (1280)
that are not scaled with the width. Lite0 is the base size: 16 MBConv blocks, 4.65M parameters
without the 1000-class head, 224x224 input, ``x = (pixel - 127) / 128``.

Every PyTorch module maps to one Keras layer (:func:`torch_to_keras_name`), so ported weights
are checked one tensor at a time. Padding: the PyTorch definition pads each convolution with
TF's asymmetric 'same' rule (``Conv2dStaticSamePadding``: total ``max((out - 1) * s + k - in,
0)``, the extra pixel at the bottom/right), which is exactly Keras' ``padding="same"`` (an
explicit ``ZeroPadding2D`` + 'valid' variant gives bit-identical outputs and the same int8 file:
docs/DECISIONS.md). BatchNorm: epsilon 1e-3 and momentum 0.99 (torch's 0.01).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.lazy import keras

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
HEAD_CHANNELS = 1280
STEM_CHANNELS = 32


@dataclass(frozen=True)
class StageArgs:
    """One stage of MBConv blocks (TF's block string ``r{repeats}_k{kernel}_s{stride}...``)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


# efficientnet_lite_builder.py / efficientnet_lite_pytorch: Lite0 has width and depth 1.0.
LITE0_STAGES = (
    StageArgs(1, 3, 1, 1, 16), StageArgs(2, 3, 2, 6, 24), StageArgs(2, 5, 2, 6, 40),
    StageArgs(3, 3, 2, 6, 80), StageArgs(3, 5, 1, 6, 112), StageArgs(4, 5, 2, 6, 192),
    StageArgs(1, 3, 1, 6, 320),
)
# Last block at each output stride (block indices count over all stages).
FEATURE_BLOCKS = {8: 4, 16: 10, 32: 15}
# det_lite0_slim leaves out one stride-1 residual block of each repeated stage (two of stage 6's)
# and the last, 320-channel block: 9 of the 16 blocks, 0.6x the int8 time of the whole
# backbone at 256 px (docs/BENCHMARKS.md). A skipped residual block maps its input to itself
# in shape, so every kept block keeps its ImageNet weights under its own name.
SLIM_SKIP = frozenset({2, 4, 7, 10, 13, 14, 15})


def block_plan(stages=LITE0_STAGES) -> list[tuple[int, int, int, int, int]]:
    """``(in_channels, out_channels, kernel, stride, expand)`` for every block, in order."""
    plan, channels = [], STEM_CHANNELS
    for stage in stages:
        for r in range(stage.repeats):
            plan.append((channels, stage.channels, stage.kernel,
                         stage.stride if r == 0 else 1, stage.expand))
            channels = stage.channels
    return plan


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    L = keras().layers
    x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def mbconv(x, index: int, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
    """Inverted residual: 1x1 expand (unless expand 1), depthwise kxk, linear 1x1 project."""
    L = keras().layers
    name = f"block{index}"
    y = x
    if expand != 1:
        y = _conv_bn(y, in_ch * expand, 1, 1, f"{name}_expand")
    y = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                          name=f"{name}_dw")(y)
    y = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(y)
    y = L.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, out_ch, 1, 1, f"{name}_project", relu=False)
    if stride == 1 and in_ch == out_ch:
        y = L.Add(name=f"{name}_add")([x, y])
    return y


def efficientnet_lite0_features(inputs, skip: frozenset[int] = frozenset()
                                ) -> tuple[object, dict[int, object]]:
    """(output of the last block, {8: ..., 16: ..., 32: ...}: the last block at each stride).

    ``skip``: indices of blocks to leave out; each must be a stride-1 block whose input and
    output channels match (a residual block), or the last block.
    """
    plan = block_plan()
    _check_skip(plan, skip)
    x = _conv_bn(inputs, STEM_CHANNELS, 3, 2, "stem")
    features, stride = {}, 2
    for i, (cin, cout, k, s, e) in enumerate(plan):
        stride *= s
        if i in skip:
            continue
        x = mbconv(x, i, cin, cout, k, s, e)
        features[stride] = x
    return x, {s: features[s] for s in FEATURE_BLOCKS}


def _check_skip(plan, skip: frozenset[int]) -> None:
    for i in skip:
        if not 0 <= i < len(plan):
            raise ValueError(f"block {i} does not exist (0..{len(plan) - 1})")
        cin, cout, _, stride, _ = plan[i]
        if i != len(plan) - 1 and (stride != 1 or cin != cout):
            raise ValueError(f"block {i} changes the shape of its input; only residual "
                             "blocks and the last block can be skipped")


def efficientnet_lite0(input_shape=(224, 224, 3), num_classes: int = 1000,
                       dropout: float = 0.2, softmax: bool = True, name: str = "efficientnet_lite0"):
    """The classifier: blocks, 1x1 head conv to 1280, average pool, dropout, dense.

    The dense layer ``classifier`` outputs logits; ``softmax=True`` adds a ``probs`` layer
    (edgecnn's classifiers output probabilities). Any input size works; the weights were
    trained at 224x224.
    """
    k = keras()
    L = k.layers
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    inputs = k.Input(shape=tuple(int(v) for v in input_shape), name="image")
    x, _ = efficientnet_lite0_features(inputs)
    x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "head")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout > 0:
        x = L.Dropout(dropout, name="dropout")(x)
    x = L.Dense(num_classes, name="classifier")(x)
    if softmax:
        x = L.Softmax(name="probs")(x)
    return k.Model(inputs, x, name=name)


# ------------------------------------------------------------------ weight port
_TOP = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv",
        "_bn1": "head_bn", "_fc": "classifier"}
_BLOCK = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw",
          "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")   # gamma, beta, mean, var


def torch_to_keras_name(module: str) -> str:
    """Keras layer name of a PyTorch module path (``_blocks.3._bn1`` -> ``block3_dw_bn``)."""
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)", module)
    if m and m.group(2) in _BLOCK:
        return f"block{m.group(1)}_{_BLOCK[m.group(2)]}"
    if module in _TOP:
        return _TOP[module]
    raise KeyError(module)


def keras_weights_from_torch(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> weights in ``layer.get_weights()`` order, NCHW -> NHWC.

    Conv ``(O, I, kh, kw)`` -> ``(kh, kw, I, O)``; depthwise ``(C, 1, kh, kw)`` ->
    ``(kh, kw, C, 1)``; dense ``(out, in)`` -> ``(in, out)``; BatchNorm as is.
    ``num_batches_tracked`` counters carry nothing a Keras layer needs.
    """
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, field = key.rpartition(".")
        if field == "num_batches_tracked":
            continue
        try:
            modules.setdefault(torch_to_keras_name(module), {})[field] = value
        except KeyError:
            raise UsageError(f"the weights hold {key!r}, which EfficientNet-Lite0 does not have",
                             "pass the efficientnet-lite0 state_dict") from None
    out: dict[str, list[np.ndarray]] = {}
    for layer, fields in modules.items():
        try:
            if layer.endswith("_bn"):
                out[layer] = [fields[f] for f in _BN_FIELDS]
            elif layer == "classifier":
                out[layer] = [fields["weight"].T, fields["bias"]]
            elif layer.endswith("_dw"):
                out[layer] = [fields["weight"].transpose(2, 3, 0, 1)]
            else:
                out[layer] = [fields["weight"].transpose(2, 3, 1, 0)]
        except (KeyError, ValueError) as err:
            raise UsageError(f"the weights of {layer} are incomplete or misshapen ({err})",
                             "pass the efficientnet-lite0 state_dict") from None
    return out


def assign_weights(model, weights: dict[str, list[np.ndarray]], strict_head: bool = True) -> int:
    """Copy ``weights`` into ``model``'s layers of the same name; returns the layers set.

    Every weighted layer of ``model`` must be covered, except ``classifier`` when
    ``strict_head`` is False (a new head for another class count keeps its initialization).
    """
    assigned = 0
    for layer in model.layers:
        current = layer.get_weights()
        if not current:
            continue
        source = weights.get(layer.name)
        if source is None or [w.shape for w in source] != [w.shape for w in current]:
            if layer.name == "classifier" and not strict_head:
                continue
            got = [w.shape for w in source] if source is not None else "nothing"
            raise UsageError(f"pretrained weights do not fit layer {layer.name}: expected "
                             f"{[w.shape for w in current]}, got {got}",
                             "the weights file is for another architecture")
        layer.set_weights([np.asarray(w, dtype=c.dtype) for w, c in zip(source, current)])
        assigned += 1
    return assigned
