"""Multiply-accumulate and parameter counts of a Keras model, per layer.

MACs count the multiplications of convolutions and dense layers at batch size 1; batch norm,
activations, pooling and element-wise ops are not counted (BN folds into the preceding conv
on conversion, the rest are memory-bound). Each layer's MACs are split into the part that scales
with its input channels only (depthwise) and the part that scales with input x output channels
(regular and pointwise convolutions, dense), so channel pruning can predict MACs of a thinner
model without building it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecnn.prune.graph import as_functional, class_name, walk


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str                 # layer class name
    macs: int
    params: int
    macs_in: int = 0          # part of ``macs`` proportional to input channels only
    macs_inout: int = 0       # part proportional to input x output channels
    in_channels: int = 0
    out_channels: int = 0


@dataclass(frozen=True)
class ModelCost:
    layers: tuple[LayerCost, ...]
    macs: int
    params: int

    def by_name(self) -> dict[str, LayerCost]:
        return {c.name: c for c in self.layers}


def _spatial(shape) -> int:
    """Positions a layer's kernel is applied at: product of all but batch and channel dims."""
    dims = [int(d) for d in shape[1:-1]]
    return math.prod(dims) if dims else 1


def layer_cost(layer, in_shape, out_shape) -> LayerCost:
    kind = class_name(layer)
    params = int(layer.count_params()) if layer.built else 0
    cin = int(in_shape[-1]) if in_shape is not None and len(in_shape) > 1 else 0
    cout = int(out_shape[-1]) if out_shape is not None and len(out_shape) > 1 else 0
    macs_in = macs_inout = 0
    if kind in ("Conv2D", "Conv1D", "Conv3D"):
        k = math.prod(layer.kernel_size)
        macs_inout = _spatial(out_shape) * k * (cin // layer.groups) * cout
    elif kind == "Conv2DTranspose":
        macs_inout = _spatial(in_shape) * math.prod(layer.kernel_size) * cin * cout
    elif kind in ("DepthwiseConv2D", "DepthwiseConv1D"):
        macs_in = _spatial(out_shape) * math.prod(layer.kernel_size) * cout
    elif kind in ("SeparableConv2D", "SeparableConv1D"):
        k = math.prod(layer.kernel_size)
        mid = cin * layer.depth_multiplier
        macs_in = _spatial(out_shape) * k * mid
        macs_inout = _spatial(out_shape) * mid * cout
    elif kind == "Dense":
        macs_inout = _spatial(out_shape) * cin * cout
    return LayerCost(layer.name, kind, macs_in + macs_inout, params, macs_in, macs_inout,
                     cin, cout)


def count(model) -> ModelCost:
    """Per-layer and total MACs (batch 1) and parameters of a functional or Sequential model."""
    model = as_functional(model)
    costs = []
    for call in walk(model):
        if class_name(call.layer) == "InputLayer":
            continue
        in_shape = call.inputs[0].shape if call.inputs else None
        out_shape = call.outputs[0].shape if call.outputs else None
        costs.append(layer_cost(call.layer, in_shape, out_shape))
    return ModelCost(tuple(costs), sum(c.macs for c in costs), int(model.count_params()))
