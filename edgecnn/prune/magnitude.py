"""Magnitude pruning for Keras 3 models: masks, a sparsity schedule and a training callback.

TF Model Optimization's ``prune_low_magnitude`` wraps layers and works only with legacy tf_keras.
Here nothing is wrapped: a :class:`MagnitudePruner` keeps one 0/1 mask per kernel and a Keras 3
callback multiplies every pruned kernel by its mask after each optimizer update, so the weights
the next batch sees (and the weights saved at the end) hold exact zeros. Masks are recomputed
from the current magnitudes at the schedule's steps while the sparsity ramps up. Stripping is
therefore just a last application of the masks: the model is a plain Keras model that saves and
loads with ``safe_mode=True``.

With ``block=(r, c)`` (TF-MOT's ``block_size``) whole blocks of ``r`` output channels by ``c``
consecutive weights along the axis that is contiguous in the TFLite int8 buffer are kept or
zeroed together, ranked by their mean magnitude. Conv2D/Dense weights are stored there as
``[out, kh, kw, in]`` / ``[out, in]`` and depthwise weights as ``[1, kh, kw, channels]``, so the
blocks run along input channels (depthwise: along channels). The zeros then come in runs that
deflate codes far more cheaply than scattered ones: on Fashion-MNIST dsnet_s the position of
every zero costs ~0.8 bit per weight unstructured, ~0.2 bit at 1x4 (docs/BENCHMARKS.md, prune).

Example:
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.75))
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=steps)
    model.fit(ds, epochs=2, callbacks=[pruner.callback(schedule)])
    pruner.strip()
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math
import re
from typing import Any

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.prune.graph import as_functional, class_name, walk

SCOPES = ("layer", "model")
PRUNABLE_KINDS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "Conv1D",
                  "Conv2DTranspose")


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity that rises from ``initial`` to ``final`` as in TF-MOT's ``PolynomialDecay``.

    ``s(t) = final + (initial - final) * (1 - p) ** power`` with ``p = (t - begin) / (end - begin)``
    clipped to [0, 1]. Masks are updated every ``frequency`` steps within [begin, end] (and at
    ``end`` itself, so the final sparsity is always reached).
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        for name, value in (("initial", self.initial), ("final", self.final)):
            if not 0.0 <= value < 1.0:
                raise UsageError(f"{name} sparsity {value} is outside [0, 1)",
                                 "give a fraction such as 0.75")
        if self.end_step < self.begin_step:
            raise UsageError("pruning schedule ends before it begins")
        if self.frequency < 1:
            raise UsageError("pruning frequency must be at least 1 step")

    def sparsity(self, step: int) -> float:
        span = max(self.end_step - self.begin_step, 1)
        p = min(1.0, max(0.0, (step - self.begin_step) / span))
        return self.final + (self.initial - self.final) * (1.0 - p) ** self.power

    def should_update(self, step: int) -> bool:
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step


@dataclass(frozen=True)
class MagnitudeOptions:
    """Which layers to prune and how much.

    Attributes:
        sparsity: target fraction of zeros in every pruned kernel.
        skip: layer names left dense (in addition to the defaults below).
        skip_first: leave the first conv dense (few weights, sees raw pixels).
        skip_last: leave the layers that produce the model's outputs dense (the classifier's
            last Dense, a detector's head convs).
        skip_depthwise: leave DepthwiseConv2D kernels dense: they hold few weights (9 per
            channel) but are sensitive; on Fashion-MNIST dsnet_s at 75% the int8 accuracy loss
            fell from 2.8 to 0.6 points (docs/BENCHMARKS.md, prune).
        per_layer: layer name -> its own target sparsity (overrides ``sparsity``).
        block: ``(rows, cols)``: prune blocks of ``rows`` output channels x ``cols`` weights
            along the TFLite-contiguous axis together (see the module docstring); ``(1, 1)``
            is unstructured. A block larger than a kernel's axis is clipped to it.
        scope: ``"layer"``: ``sparsity`` is every pruned kernel's target; ``"model"``:
            ``sparsity`` is the fraction of *all* kernel weights (skipped layers included)
            to zero, and the pruned layers share the one rate that gets there.
    """

    sparsity: float
    skip: tuple[str, ...] = ()
    skip_first: bool = True
    skip_last: bool = True
    skip_depthwise: bool = False
    per_layer: dict[str, float] = field(default_factory=dict)
    block: tuple[int, int] = (1, 1)
    scope: str = "layer"


def parse_block(text) -> tuple[int, int]:
    """``"1x4"`` -> ``(1, 4)``; a bare ``"4"`` (or int) means ``1x4``.

    Raises:
        UsageError: anything but one or two positive integers.
    """
    match = re.fullmatch(r"\s*(?:(\d+)\s*[xX]\s*)?(\d+)\s*", str(text))
    rows, cols = (int(match.group(1) or 1), int(match.group(2))) if match else (0, 0)
    if rows < 1 or cols < 1:
        raise UsageError(f"--block {text!r} is not ROWSxCOLS with positive integers",
                         "use e.g. --block 1x4 (or 4): 4 consecutive input-channel weights")
    return rows, cols


def _kernels(layer) -> list:
    """The multiplicative weights of a layer (not biases): Keras names them ``*kernel``."""
    return [w for w in layer.weights if w.path.rsplit("/", 1)[-1].endswith("kernel")]


def kernel_layout(layer, var) -> str:
    """How the TFLite converter lays out a Keras kernel (which axis ends up contiguous).

    ``"depthwise"``: Keras ``(kh, kw, ch, mult)`` -> TFLite ``[1, kh, kw, ch*mult]``;
    ``"transpose"``: Conv2DTranspose ``(kh, kw, out, in)`` -> ``[out, kh, kw, in]``;
    ``"standard"``: ``(..., in, out)`` -> ``[out, ..., in]`` (Conv, pointwise, Dense).
    """
    kind = class_name(layer)
    if kind == "DepthwiseConv2D" or var.path.rsplit("/", 1)[-1] == "depthwise_kernel":
        return "depthwise"
    return "transpose" if kind == "Conv2DTranspose" else "standard"


def _as_rows_cols(weights: np.ndarray, layout: str):
    """View a kernel as ``(positions, out, contiguous)`` and a function mapping back."""
    shape = weights.shape
    if layout == "depthwise":
        return weights.reshape(-1, 1, shape[-2] * shape[-1]), lambda a: a.reshape(shape)
    view = weights.reshape(-1, shape[-2], shape[-1]) if weights.ndim >= 2 else \
        weights.reshape(1, 1, -1)
    if layout == "transpose" or weights.ndim < 2:
        return view, lambda a: a.reshape(shape)
    return np.swapaxes(view, 1, 2), lambda a: np.swapaxes(a, 1, 2).reshape(shape)


def prunable_layers(model) -> list:
    """Layers with kernels we can mask, in graph order."""
    return [c.layer for c in walk(as_functional(model)) if class_name(c.layer) in PRUNABLE_KINDS]


def _output_layers(model) -> set[str]:
    """Prunable layers whose output reaches a model output through no other prunable layer."""
    names: set[str] = set()
    stack = list(model.outputs)
    seen: set[int] = set()
    while stack:
        tensor = stack.pop()
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        layer = history.operation
        if class_name(layer) in PRUNABLE_KINDS:
            names.add(layer.name)
            continue
        stack.extend(layer._inbound_nodes[history.node_index].input_tensors)
    return names


def layer_targets(model, options: MagnitudeOptions) -> dict[str, float]:
    """Layer name -> target sparsity for every layer that will be pruned."""
    if not 0.0 <= options.sparsity < 1.0:
        raise UsageError(f"sparsity {options.sparsity} is outside [0, 1)",
                         "give a fraction such as 0.75")
    if options.scope not in SCOPES:
        raise UsageError(f"unknown sparsity scope {options.scope!r}",
                         f"choose one of: {', '.join(SCOPES)}")
    if len(options.block) != 2 or min(options.block) < 1:
        raise UsageError(f"block {options.block} is not (rows, cols) with positive integers",
                         "use e.g. (1, 4)")
    functional = as_functional(model)
    layers = prunable_layers(functional)
    if not layers:
        raise UsageError(f"model {model.name!r} has no prunable layers",
                         f"magnitude pruning needs one of: {', '.join(PRUNABLE_KINDS)}")
    names = {layer.name for layer in layers}
    for name in (*options.skip, *options.per_layer):
        if name not in names:
            raise UsageError(f"layer {name!r} is not a prunable layer of {model.name!r}",
                             f"choose from: {', '.join(sorted(names))}")
    skip = set(options.skip)
    if options.skip_first:
        skip.add(layers[0].name)
    if options.skip_last:
        skip |= _output_layers(functional)
    targets = {}
    for layer in layers:
        if layer.name in options.per_layer:
            target = options.per_layer[layer.name]
        elif layer.name in skip or (options.skip_depthwise
                                    and class_name(layer) == "DepthwiseConv2D"):
            continue
        else:
            target = options.sparsity
        if not 0.0 <= target < 1.0:
            raise UsageError(f"sparsity {target} for layer {layer.name!r} is outside [0, 1)")
        targets[layer.name] = float(target)
    if not targets:
        raise UsageError(f"every prunable layer of {model.name!r} is skipped",
                         "skip fewer layers (the first conv and output layers are skipped "
                         "by default)")
    if options.scope == "model":
        targets = _model_scope(layers, targets, options)
    return targets


def _kernel_size(layer) -> int:
    return sum(int(np.prod(v.shape)) for v in _kernels(layer))


def _model_scope(layers, targets: dict[str, float], options: MagnitudeOptions) -> dict:
    """Raise the shared rate so ``options.sparsity`` of all kernel weights end up zero."""
    sizes = {layer.name: _kernel_size(layer) for layer in layers}
    fixed = {n: t for n, t in targets.items() if n in options.per_layer}
    shared = [n for n in targets if n not in fixed]
    if not shared:
        return targets
    wanted = options.sparsity * sum(sizes.values()) - sum(sizes[n] * t for n, t in fixed.items())
    rate = max(0.0, wanted / sum(sizes[n] for n in shared))
    if rate >= 0.995:
        skipped = 1 - sum(sizes[n] for n in targets) / sum(sizes.values())
        raise UsageError(f"sparsity {options.sparsity:g} of all kernel weights is not "
                         f"reachable: the skipped layers hold {skipped:.0%} of them",
                         "lower --sparsity, skip fewer layers or use --scope layer")
    return {**targets, **{n: round(rate, 6) for n in shared}}


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """0/1 mask zeroing exactly ``round(sparsity * size)`` smallest-magnitude entries."""
    flat = np.abs(weights).ravel()
    k = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=weights.dtype)
    if k > 0:
        # Stable sort so ties (already-zero weights) are dropped in a fixed order.
        mask[np.argsort(flat, kind="stable")[:k]] = 0
    return mask.reshape(weights.shape)


def block_mask(weights: np.ndarray, sparsity: float, block: tuple[int, int],
               layout: str = "standard") -> np.ndarray:
    """0/1 mask zeroing whole blocks with the smallest mean magnitude.

    Blocks tile ``(out, contiguous)`` at every kernel position (see :func:`kernel_layout`);
    edge blocks may be partial and are ranked by the mean of what they hold. As many blocks
    are zeroed as bring the zero count closest to ``round(sparsity * size)``.
    """
    rows, cols = block
    if (rows, cols) == (1, 1):
        return magnitude_mask(weights, sparsity)
    view, back = _as_rows_cols(np.abs(weights).astype("float64"), layout)
    positions, n_out, n_in = view.shape
    r, c = min(rows, n_out), min(cols, n_in)
    nr, nc = math.ceil(n_out / r), math.ceil(n_in / c)
    padded = np.full((positions, nr * r, nc * c), np.nan)
    padded[:, :n_out, :n_in] = view
    blocks = padded.reshape(positions, nr, r, nc, c)
    held = (~np.isnan(blocks)).sum(axis=(2, 4)).ravel()
    score = np.nansum(blocks, axis=(2, 4)).ravel() / held
    order = np.argsort(score, kind="stable")
    zeros = np.concatenate([[0], np.cumsum(held[order])])
    k = int(np.argmin(np.abs(zeros - round(sparsity * weights.size))))
    keep = np.ones(score.size, dtype=weights.dtype)
    keep[order[:k]] = 0
    full = np.repeat(np.repeat(keep.reshape(positions, nr, nc), r, axis=1), c, axis=2)
    return back(np.ascontiguousarray(full[:, :n_out, :n_in]))


class MagnitudePruner:
    """Masks for the kernels of a model's prunable layers; the model is modified in place."""

    def __init__(self, model, options: MagnitudeOptions):
        self.model = model
        self.options = options
        self.targets = layer_targets(model, options)
        by_name = {layer.name: layer for layer in prunable_layers(model)}
        # (layer name, kernel variable) pairs; a SeparableConv2D contributes two kernels.
        self.kernels = [(name, var) for name in self.targets for var in _kernels(by_name[name])]
        self.layouts = [kernel_layout(by_name[name], var) for name, var in self.kernels]
        self.masks = [np.ones(tuple(var.shape), dtype="float32") for _, var in self.kernels]

    def update_masks(self, fraction: float) -> None:
        """Recompute masks by magnitude at ``fraction`` of each layer's final target.

        ``fraction`` is the scheduled sparsity divided by the global target, so per-layer targets
        ramp up in step with the schedule.
        """
        for i, (name, var) in enumerate(self.kernels):
            sparsity = min(self.targets[name] * fraction, self.targets[name])
            self.masks[i] = block_mask(np.asarray(var.numpy()) * self.masks[i], sparsity,
                                       self.options.block, self.layouts[i])

    def apply_masks(self) -> None:
        for (_, var), mask in zip(self.kernels, self.masks):
            var.assign(np.asarray(var.numpy()) * mask)

    def prune_now(self) -> None:
        """One-shot pruning to the final targets (no fine-tuning)."""
        self.update_masks(1.0)
        self.apply_masks()

    def strip(self):
        """Apply the masks a last time and return the (plain Keras) model."""
        self.apply_masks()
        return self.model

    def callback(self, schedule: PolynomialDecay):
        return make_callback(self, schedule)


def make_callback(pruner: MagnitudePruner, schedule: PolynomialDecay):
    """A Keras callback re-applying ``pruner``'s masks after every batch."""
    from edgecnn.lazy import keras

    k: Any = keras()  # Any: the base class below comes from a module imported at run time
    target = pruner.options.sparsity

    def fraction(step: int) -> float:
        scheduled = schedule.sparsity(step)
        if target <= 0:
            return 1.0 if schedule.final <= 0 else scheduled / schedule.final
        return scheduled / target

    class MaskCallback(k.callbacks.Callback):
        """Keeps pruned weights at exactly zero through optimizer updates."""

        def __init__(self):
            super().__init__()
            self.step = 0
            self.sparsity_log: list[tuple[int, float]] = []

        def on_train_begin(self, logs=None):
            if schedule.should_update(self.step):
                pruner.update_masks(fraction(self.step))
                self.sparsity_log.append((self.step, schedule.sparsity(self.step)))
            pruner.apply_masks()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if schedule.should_update(self.step):
                pruner.update_masks(fraction(self.step))
                self.sparsity_log.append((self.step, schedule.sparsity(self.step)))
            pruner.apply_masks()

    return MaskCallback()


def kernel_sparsity(model) -> dict[str, tuple[int, int]]:
    """Layer name -> (zero weights, total weights) over its kernels, for every prunable layer."""
    out = {}
    for layer in prunable_layers(model):
        kernels = [np.asarray(v.numpy()) for v in _kernels(layer)]
        out[layer.name] = (int(sum((w == 0).sum() for w in kernels)),
                           int(sum(w.size for w in kernels)))
    return out
