"""Structured channel pruning: remove whole output channels and rebuild a thinner model.

The model's graph is analysed once (:func:`analyse`): every tensor's channel axis is described as
a list of segments, each a slice of one *channel group*. A convolution or dense layer starts a new
group (its filters); batch norm, depthwise convs, activations, pooling and resizing pass the
group through; ``Add``/``Multiply`` merge their inputs' groups into one (a residual block and its
shortcut must keep the same channels); ``Concatenate`` joins segments; ``Flatten`` repeats them
per position. Groups that reach a model output, the model input, a ``Reshape`` or a softmax over
channels are fixed, so classifiers and detection heads keep their output shapes.

A plan keeps the highest-ranked channels of each prunable group (L1 norm of the filters that
produce them, or the batch-norm scale), and :func:`rebuild` creates the thinner model from the
layer configs with the surviving weights copied in.

Example:
    graph = analyse(model)
    plan = plan_for_ratio(graph, 0.3)            # drop 30% of each prunable group
    thin = rebuild(graph, plan)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.prune.graph import Call, as_functional, class_name, walk
from edgecnn.prune.macs import layer_cost

# Layers that start a new channel group with their output.
SOURCE_KINDS = {"Conv2D": "filters", "SeparableConv2D": "filters", "Dense": "units",
                "Conv1D": "filters"}
# Layers whose output channels are their input channels, one to one.
PASS_KINDS = {"BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ELU", "Dropout",
              "SpatialDropout2D", "GaussianNoise", "MaxPooling2D", "AveragePooling2D",
              "MaxPooling1D", "AveragePooling1D", "UpSampling2D", "ZeroPadding2D",
              "Cropping2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
              "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Identity", "Rescaling",
              "Resizing", "DepthwiseConv2D", "Softmax", "Normalization"}
ELEMENTWISE_KINDS = {"Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum"}
# Layers that reorder or mix the channel axis in ways we do not track: channels feeding them
# are kept whole and their output is a fixed group.
BLOCKING_KINDS = {"Reshape", "Permute", "RepeatVector"}
SUPPORTED = (set(SOURCE_KINDS) | PASS_KINDS | ELEMENTWISE_KINDS | BLOCKING_KINDS
             | {"InputLayer", "Concatenate", "Flatten"})

CRITERIA = ("l1", "bn")


@dataclass
class Group:
    """A set of channels that must be kept or removed together."""

    gid: int
    size: int
    fixed: str = ""                            # why it cannot be pruned ("" = prunable)
    sources: list = field(default_factory=list)   # names of layers producing these channels
    bns: list = field(default_factory=list)       # names of BN layers applied to them


@dataclass
class Graph:
    """The result of :func:`analyse`: calls, tensor channel layouts and channel groups."""

    model: Any  # keras.Model (Keras ships no type information)
    calls: list[Call]
    layout: dict[int, tuple[tuple[int, int], ...]]   # id(tensor) -> ((group id, length), ...)
    groups: dict[int, Group]
    parent: dict[int, int]

    def root(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def prunable(self) -> list[Group]:
        return [g for gid, g in self.groups.items() if self.root(gid) == gid and not g.fixed]

    def segments(self, tensor) -> tuple[tuple[int, int], ...]:
        return tuple((self.root(g), n) for g, n in self.layout[id(tensor)])


@dataclass(frozen=True)
class Plan:
    """Channels kept per prunable group (sorted original indices); others are kept whole."""

    keep: dict[int, np.ndarray]
    ratio: float = 0.0


def analyse(model, skip: tuple[str, ...] = ()) -> Graph:
    """Channel groups of a functional or Sequential model.

    Args:
        model: the Keras model (not modified).
        skip: layer names whose output channels must not be pruned.

    Raises:
        UsageError: a layer type we cannot prune through (named in the message), or a model
            with nothing to prune.
    """
    model = as_functional(model)
    calls = walk(model)
    names = {c.layer.name for c in calls}
    for name in skip:
        if name not in names:
            raise UsageError(f"--skip layer {name!r} is not in model {model.name!r}")
    analysis = _Analysis(Graph(model, calls, {}, {}, {}), tuple(skip))
    for call in calls:
        analysis.visit(call)
    for t in model.outputs:
        analysis.fix(t, "model output")
    return analysis.graph


class _Analysis:
    """Builds a :class:`Graph`'s layouts and groups one layer call at a time."""

    def __init__(self, graph: Graph, skip: tuple[str, ...]):
        self.graph = graph
        self.skip = skip

    def visit(self, call: Call) -> None:
        kind = class_name(call.layer)
        if kind not in SUPPORTED:
            raise UsageError(f"channel pruning does not support layer {call.layer.name!r} "
                             f"of type {kind}",
                             "use --method magnitude, or build the model from supported layers")
        if kind == "InputLayer":
            for t in call.outputs:
                self.set_new_group(t, "model input")
        elif kind in SOURCE_KINDS:
            self._source(call)
        elif kind in PASS_KINDS:
            self._pass(call, kind)
        elif kind in ELEMENTWISE_KINDS:
            self._elementwise(call)
        elif kind == "Concatenate":
            self._concatenate(call)
        elif kind == "Flatten":
            ins = call.inputs[0]
            positions = math.prod(int(d) for d in ins.shape[1:-1]) if len(ins.shape) > 2 else 1
            self.graph.layout[id(call.outputs[0])] = self.graph.segments(ins) * positions
        else:  # BLOCKING_KINDS
            self.fix(call.inputs[0], f"{kind.lower()} {call.layer.name}")
            self.set_new_group(call.outputs[0], kind.lower())

    # --- group bookkeeping ----------------------------------------------------------------------

    def new_group(self, size: int, fixed: str = "", source: str | None = None) -> int:
        graph = self.graph
        gid = len(graph.groups)
        graph.groups[gid] = Group(gid, size, fixed, [source] if source else [])
        graph.parent[gid] = gid
        return gid

    def set_new_group(self, tensor, fixed: str = "", source: str | None = None) -> None:
        """``tensor``'s channels become one new group of their own."""
        n = int(tensor.shape[-1])
        self.graph.layout[id(tensor)] = ((self.new_group(n, fixed, source), n),)

    def fix(self, tensor, reason: str) -> None:
        for gid, _ in self.graph.segments(tensor):
            group = self.graph.groups[gid]
            group.fixed = group.fixed or reason

    def union(self, a: int, b: int, where: str) -> None:
        graph = self.graph
        a, b = graph.root(a), graph.root(b)
        if a == b:
            return
        ga, gb = graph.groups[a], graph.groups[b]
        if ga.size != gb.size:
            raise UsageError(f"layer {where!r} combines {ga.size} and {gb.size} channels")
        graph.parent[b] = a
        ga.sources += gb.sources
        ga.bns += gb.bns
        ga.fixed = ga.fixed or gb.fixed

    # --- layer kinds ----------------------------------------------------------------------------

    def _source(self, call: Call) -> None:
        layer = call.layer
        if getattr(layer, "groups", 1) != 1:
            self.fix(call.inputs[0], f"grouped conv {layer.name}")
        reason = f"skipped ({layer.name})" if layer.name in self.skip else ""
        self.set_new_group(call.outputs[0], reason, layer.name)

    def _pass(self, call: Call, kind: str) -> None:
        layer, ins = call.layer, call.inputs
        src = self.graph.segments(ins[0])
        if kind == "DepthwiseConv2D" and layer.depth_multiplier != 1:
            self.fix(ins[0], f"depth multiplier of {layer.name}")
            self.set_new_group(call.outputs[0], f"depth multiplier of {layer.name}")
            return
        if kind in ("Softmax", "Normalization") or (
                kind == "Activation" and layer.get_config().get("activation") == "softmax"):
            self.fix(ins[0], f"{kind.lower()} {layer.name}")
        if kind == "Rescaling" and np.size(layer.scale) > 1:
            self.fix(ins[0], f"per-channel rescaling {layer.name}")
        if kind == "BatchNormalization":
            axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
            if axis not in (-1, len(ins[0].shape) - 1):
                self.fix(ins[0], f"batch norm over axis {axis} ({layer.name})")
            if len(src) == 1:
                self.graph.groups[src[0][0]].bns.append(layer.name)
        if layer.name in self.skip:
            self.fix(ins[0], f"skipped ({layer.name})")
        self.graph.layout[id(call.outputs[0])] = src

    def _elementwise(self, call: Call) -> None:
        layouts = [self.graph.segments(t) for t in call.inputs]
        widest = max(layouts, key=lambda s: sum(n for _, n in s))
        for other in layouts:
            if [n for _, n in other] == [n for _, n in widest]:
                for (a, _), (b, _) in zip(widest, other):
                    self.union(a, b, call.layer.name)
            else:  # broadcasting (e.g. a one-channel gate): keep everything involved
                for t in call.inputs:
                    self.fix(t, f"broadcast in {call.layer.name}")
        self.graph.layout[id(call.outputs[0])] = tuple(widest)

    def _concatenate(self, call: Call) -> None:
        layer, ins, graph = call.layer, call.inputs, self.graph
        rank = len(call.outputs[0].shape)
        if layer.axis in (-1, rank - 1):
            graph.layout[id(call.outputs[0])] = tuple(s for t in ins for s in graph.segments(t))
            return
        # joined along another axis: channel i of every input is channel i out
        first = graph.segments(ins[0])
        for t in ins[1:]:
            other = graph.segments(t)
            if [n for _, n in other] != [n for _, n in first]:
                for u in ins:
                    self.fix(u, f"concatenation {layer.name}")
                break
            for (a, _), (b, _) in zip(first, other):
                self.union(a, b, layer.name)
        graph.layout[id(call.outputs[0])] = graph.segments(ins[0])


# --- ranking -----------------------------------------------------------------------------------

def _l1_scores(layer) -> np.ndarray:
    """L1 norm of each output channel's filter, normalised to mean 1 within the layer."""
    weights = layer.get_weights()
    kernel = weights[1] if class_name(layer) == "SeparableConv2D" else weights[0]
    scores = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return scores / (scores.mean() + 1e-12)


def _bn_scores(layer) -> np.ndarray:
    if not layer.scale:
        raise UsageError(f"batch norm {layer.name!r} has no scale (gamma) to rank channels by",
                         "use the l1 criterion")
    gamma = np.abs(layer.get_weights()[0])
    return gamma / (gamma.mean() + 1e-12)


def group_scores(graph: Graph, criterion: str = "l1") -> dict[int, np.ndarray]:
    """Importance of each channel of each prunable group (sum over the layers sharing it)."""
    if criterion not in CRITERIA:
        raise UsageError(f"unknown channel criterion {criterion!r}",
                         f"choose one of: {', '.join(CRITERIA)}")
    layers = {c.layer.name: c.layer for c in graph.calls}
    scores = {}
    for group in graph.prunable():
        total = np.zeros(group.size)
        names = group.bns if criterion == "bn" and group.bns else group.sources
        for name in names:
            layer = layers[name]
            total += _bn_scores(layer) if class_name(layer) == "BatchNormalization" \
                else _l1_scores(layer)
        scores[group.gid] = total
    return scores


# --- plans -------------------------------------------------------------------------------------

def _kept_count(size: int, ratio: float, multiple: int) -> int:
    kept = int(math.floor(size * (1.0 - ratio) + 0.5))
    if multiple > 1 and kept > 0:
        kept = min(size, max(multiple, int(round(kept / multiple)) * multiple))
    return kept


def _group_label(graph: Graph, group: Group) -> str:
    return ", ".join(group.sources) or f"group {group.gid}"


def plan_for_ratio(graph: Graph, ratio: float, scores: dict[int, np.ndarray] | None = None,
                   multiple: int = 1) -> Plan:
    """Remove ``ratio`` of the channels of every prunable group (lowest scores first).

    Raises:
        UsageError: ``ratio`` outside [0, 1), or a group that would lose every channel.
    """
    if not 0.0 <= ratio < 1.0:
        raise UsageError(f"sparsity {ratio} is outside [0, 1)", "give a fraction such as 0.3")
    scores = scores if scores is not None else group_scores(graph)
    keep = {}
    for group in graph.prunable():
        kept = _kept_count(group.size, ratio, multiple)
        if kept < 1:
            raise UsageError(f"sparsity {ratio:g} would remove every channel of layer "
                             f"{_group_label(graph, group)} ({group.size} channels)",
                             "use a smaller --sparsity or --target-macs")
        order = np.argsort(-scores[group.gid], kind="stable")[:kept]
        keep[group.gid] = np.sort(order)
    return Plan(keep, ratio)


def _kept_indices(graph: Graph, plan: Plan, tensor) -> np.ndarray | None:
    """Indices of the channels of ``tensor`` that survive ``plan`` (None: all of them)."""
    parts, offset, pruned = [], 0, False
    for gid, n in graph.segments(tensor):
        kept = plan.keep.get(gid)
        if kept is None:
            parts.append(np.arange(offset, offset + n))
        else:
            pruned = True
            parts.append(offset + kept)
        offset += n
    return np.concatenate(parts) if pruned else None


def _count_kept(graph: Graph, plan: Plan, tensor) -> int:
    return sum(len(plan.keep[g]) if g in plan.keep else n for g, n in graph.segments(tensor))


def planned_macs(graph: Graph, plan: Plan) -> int:
    """MACs (batch 1) of the model :func:`rebuild` would build from ``plan``."""
    total = 0.0
    for call in graph.calls:
        if class_name(call.layer) == "InputLayer" or not call.inputs:
            continue
        cost = layer_cost(call.layer, call.inputs[0].shape, call.outputs[0].shape)
        if not cost.macs:
            continue
        fin = _count_kept(graph, plan, call.inputs[0]) / max(cost.in_channels, 1)
        fout = _count_kept(graph, plan, call.outputs[0]) / max(cost.out_channels, 1)
        total += cost.macs_in * fin + cost.macs_inout * fin * fout
    return int(round(total))


def plan_for_macs(graph: Graph, target: float, scores: dict[int, np.ndarray] | None = None,
                  multiple: int = 1) -> Plan:
    """The smallest uniform ratio whose thinner model has at most ``target`` x the MACs.

    Found by bisection on the ratio (MACs fall monotonically as the ratio grows).

    Raises:
        UsageError: ``target`` outside (0, 1], or not reachable before some layer would lose
            every channel.
    """
    if not 0.0 < target <= 1.0:
        raise UsageError(f"--target-macs {target} is outside (0, 1]",
                         "give the fraction of MACs to keep, such as 0.5")
    scores = scores if scores is not None else group_scores(graph)
    dense = planned_macs(graph, Plan({}))
    goal = target * dense

    def feasible(ratio: float) -> Plan | None:
        try:
            return plan_for_ratio(graph, ratio, scores, multiple)
        except UsageError:
            return None

    lo, hi = 0.0, 0.999
    dense_plan = feasible(lo)
    if dense_plan is not None and planned_macs(graph, dense_plan) <= goal:
        return dense_plan
    if feasible(hi) is None:  # find the largest ratio that leaves every group a channel
        ok, bad = 0.0, hi
        for _ in range(30):
            mid = (ok + bad) / 2
            ok, bad = (mid, bad) if feasible(mid) is not None else (ok, mid)
        hi = ok
    top = feasible(hi)
    if top is None or planned_macs(graph, top) > goal:
        reach = planned_macs(graph, top) / dense if top is not None else 1.0
        raise UsageError(f"--target-macs {target:g} is not reachable: the least this model "
                         f"can keep is {reach:.2f} of its MACs (fixed layers: input stem, "
                         f"outputs, heads)", "use a larger --target-macs")
    best = top
    for _ in range(40):
        mid = (lo + hi) / 2
        plan = feasible(mid)
        if plan is not None and planned_macs(graph, plan) <= goal:
            hi, best = mid, plan
        else:
            lo = mid
        if hi - lo < 1e-5:
            break
    return best


# --- rebuilding --------------------------------------------------------------------------------

def _expand(indices: np.ndarray | None, multiplier: int) -> np.ndarray | None:
    """Channel c of a depth-multiplied tensor is channels c*m .. c*m+m-1."""
    if indices is None or multiplier == 1:
        return indices
    return (indices[:, None] * multiplier + np.arange(multiplier)[None, :]).ravel()


def _slice_weights(layer, weights: list[np.ndarray], kin, kout) -> list[np.ndarray]:
    """Weights of ``layer`` restricted to input channels ``kin`` and output channels ``kout``."""
    kind = class_name(layer)

    def take(a, idx, axis):
        return a if idx is None else np.take(a, idx, axis=axis)

    if kind in ("Conv2D", "Conv1D", "Dense"):
        out = [take(take(weights[0], kin, -2), kout, -1)]
        return out + [take(b, kout, 0) for b in weights[1:]]
    if kind == "SeparableConv2D":
        dw = take(weights[0], kin, -2)
        pw = take(take(weights[1], _expand(kin, layer.depth_multiplier), -2), kout, -1)
        return [dw, pw] + [take(b, kout, 0) for b in weights[2:]]
    if kind == "DepthwiseConv2D":
        return [take(weights[0], kin, -2)] + [take(b, kin, 0) for b in weights[1:]]
    if kind == "BatchNormalization":
        return [take(w, kin, 0) for w in weights]
    return weights


def rebuild(graph: Graph, plan: Plan):
    """A new Keras model with ``plan``'s channels removed and the surviving weights copied.

    Layer names, the model's name and its input/output structure are unchanged.
    """
    from edgecnn.lazy import keras

    k = keras()
    model = graph.model
    tensors: dict[int, object] = {}
    for call in graph.calls:
        layer = call.layer
        kind = class_name(layer)
        if kind == "InputLayer":
            for t in call.outputs:
                tensors[id(t)] = k.Input(batch_shape=t.shape, dtype=t.dtype, name=layer.name)
            continue
        config = layer.get_config()
        kout = None
        if kind in SOURCE_KINDS:
            kout = _kept_indices(graph, plan, call.outputs[0])
            if kout is not None:
                config[SOURCE_KINDS[kind]] = int(len(kout))
        new_layer = type(layer).from_config(config)
        args, kwargs = call.node.arguments.fill_in(tensors)
        result = new_layer(*args, **kwargs)
        flat = k.tree.flatten(result)
        for old, new in zip(call.outputs, flat):
            tensors[id(old)] = new
        weights = layer.get_weights()
        if weights:
            kin = _kept_indices(graph, plan, call.inputs[0]) if call.inputs else None
            new_layer.set_weights(_slice_weights(layer, weights, kin, kout))
    inputs = k.tree.map_structure(lambda t: tensors[id(t)],
                                  getattr(model, "_inputs_struct", model.inputs))
    outputs = k.tree.map_structure(lambda t: tensors[id(t)],
                                   getattr(model, "_outputs_struct", model.outputs))
    return k.Model(inputs=inputs, outputs=outputs, name=model.name)


def channels_report(graph: Graph, plan: Plan) -> list[dict]:
    """One row per layer that produces channels: name, channels before and after."""
    rows = []
    for call in graph.calls:
        if class_name(call.layer) not in SOURCE_KINDS:
            continue
        before = int(call.outputs[0].shape[-1])
        after = _count_kept(graph, plan, call.outputs[0])
        (gid, _), = graph.segments(call.outputs[0])
        group = graph.groups[gid]
        rows.append({"layer": call.layer.name, "kind": class_name(call.layer),
                     "channels_before": before, "channels_after": after,
                     "fixed": group.fixed or None})
    return rows
