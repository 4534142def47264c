"""A read-only view of a Keras functional graph: the layer calls in topological order.

Pruning needs to know, for every layer call, which tensors go in and come out. Keras keeps this
in each layer's ``_inbound_nodes``; walking back from the model's outputs through
``_keras_history`` visits exactly the calls of *this* model, even when a layer object has been
called elsewhere too (a Sequential model's layers, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecnn.errors import UsageError


@dataclass(frozen=True)
class Call:
    """One call of a layer in the graph."""

    layer: Any               # keras.layers.Layer
    node: Any                # keras Node (holds the call's arguments)
    inputs: tuple            # KerasTensors consumed, in argument order
    outputs: tuple           # KerasTensors produced


def as_functional(model):
    """The model itself if functional; a Sequential model is re-traced on a fresh Input."""
    from edgecnn.lazy import keras

    k = keras()
    if isinstance(model, k.Sequential):
        if not model.built or not model.inputs:
            raise UsageError(f"model {model.name!r} is not built",
                             "build it (call it on data or give an Input layer) before pruning")
        inp = k.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype,
                      name=model.layers[0].name + "_input" if model.layers else "input")
        x = inp
        for layer in model.layers:
            x = layer(x)
        return k.Model(inp, x, name=model.name)
    if not hasattr(model, "_outputs_struct") and not getattr(model, "outputs", None):
        raise UsageError(f"model {model.name!r} is a subclassed Keras model",
                         "pruning needs a functional or Sequential model")
    if not getattr(model, "outputs", None):
        raise UsageError(f"model {model.name!r} has no symbolic outputs",
                         "pruning needs a functional or Sequential model")
    return model


def walk(model) -> list[Call]:
    """Layer calls of a functional model, inputs before the calls that use them."""
    order: list[Call] = []
    seen: set[int] = set()
    used: dict[int, int] = {}

    def visit(tensor) -> None:
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            return
        layer, index = history.operation, history.node_index
        node = layer._inbound_nodes[index]
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.input_tensors:
            visit(parent)
        used[id(layer)] = used.get(id(layer), 0) + 1
        if used[id(layer)] > 1:
            raise UsageError(f"layer {layer.name!r} is called more than once (shared weights)",
                             "pruning supports models whose layers are each used once")
        order.append(Call(layer, node, tuple(node.input_tensors), tuple(node.output_tensors)))

    for out in model.outputs:
        visit(out)
    return order


def class_name(layer) -> str:
    return type(layer).__name__
