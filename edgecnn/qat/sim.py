"""Simulated int8: a Keras graph that computes what the full-int8 ``.tflite`` will compute.

``simulate_int8(model)`` replays a functional model's layer calls on a new input, reusing the
*same* layer objects (so training the simulation trains the model), with two changes:

- every Conv2D / DepthwiseConv2D / Dense kernel goes through a fake quantizer: symmetric, int8
  levels -127..127, one scale per output channel for convolutions (what the TFLite converter
  writes). BatchNormalization is frozen (inference statistics) while simulating, because the
  converter folds it into the convolution, and a per-channel quantizer commutes with the
  per-channel BN scale: quantizing the raw kernel per channel gives exactly the folded
  kernel's int8 grid.
- every tensor the int8 graph stores gets a fake activation quantizer (asymmetric, 256 levels,
  one range per tensor), except where the converter fuses the op into the next one: a
  convolution feeding its BN, a BN / Add / Concatenate / convolution whose only consumer is a
  ReLU, and ops that keep their input's scale (Reshape, Flatten, nearest UpSampling, Dropout).

Ranges start from a calibration pass (min / max over real images, as the converter's calibrator
does) and then follow an exponential moving average of each training batch's min / max.

Gradients pass straight through the quantizers inside their range (the straight-through
estimator of ``tf.quantization.fake_quant_*``); activations clipped by a range get none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.lazy import keras, tensorflow
from edgecnn.prune.graph import as_functional, class_name, walk

# Keep a tensor's scale: the converter emits no requantization for these.
_SCALE_PRESERVING = {"Reshape", "Flatten", "UpSampling2D", "Dropout", "InputLayer",
                     "MaxPooling2D", "ZeroPadding2D"}
_WEIGHTED = {"Conv2D", "DepthwiseConv2D", "Dense"}
# int8 LOGISTIC / SOFTMAX outputs have scale 1/256, zero point -128: [0, 255/256].
_FIXED_RANGES = {"sigmoid": (0.0, 255 / 256), "softmax": (0.0, 255 / 256)}
RANGE_MOMENTUM = 0.99


@dataclass
class Simulation:
    """The simulated-int8 model and what is needed to train and undo it.

    ``model`` has the original model's inputs and outputs; ``tensor(name)`` gives the simulated
    output of any original layer (for training heads such as pre-sigmoid logits).
    """

    model: Any  # keras.Model (Keras ships no type information)
    outputs_by_layer: dict
    frozen_bn: list = field(default_factory=list)
    quantizers: list = field(default_factory=list)

    def tensor(self, layer_name: str):
        if layer_name not in self.outputs_by_layer:
            raise UsageError(f"the model has no layer {layer_name!r}")
        return self.outputs_by_layer[layer_name]

    def calibrate(self, batches) -> None:
        """Set every activation range to the min / max over ``batches`` (float arrays),
        forgetting earlier ranges: what the converter's calibrator will see."""
        for q in self.quantizers:
            q.calibrating = True
            if q.fixed is None and q.built:
                q.seen.assign(0.0)
        for x in batches:
            self.model(x, training=False)
        for q in self.quantizers:
            q.calibrating = False

    def release(self) -> None:
        """Unfreeze the BatchNormalization layers (the model returns to normal training)."""
        for layer in self.frozen_bn:
            layer.trainable = True
        self.frozen_bn.clear()


def _act_range_of(layer) -> tuple[float, float] | None:
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None)
    if class_name(layer) == "Activation" and name in _FIXED_RANGES:
        return _FIXED_RANGES[name]
    if class_name(layer) == "Softmax":
        return _FIXED_RANGES["softmax"]
    return None


def _make_layers():
    """Layer classes built on first use: importing this module must not import Keras."""
    return _act_quant_class(), _weight_quant_class()


def _act_quant_class():
    k: Any = keras()  # Any: the base class below comes from a module imported at run time
    tf = tensorflow()

    class ActQuant(k.layers.Layer):
        """Per-tensor asymmetric 8-bit fake quantizer with calibrated / EMA ranges."""

        def __init__(self, fixed=None, **kw):
            super().__init__(**kw)
            self.fixed = fixed
            self.calibrating = False

        def build(self, input_shape):
            self.lo = self.add_weight(shape=(), initializer="zeros", trainable=False, name="lo")
            self.hi = self.add_weight(shape=(), initializer="zeros", trainable=False, name="hi")
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                        name="seen")

        def call(self, x, training=None):
            if self.fixed is not None:
                lo, hi = self.fixed
                return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)
            # The range must hold zero (zero is exactly representable in TFLite int8).
            b_lo = tf.minimum(tf.reduce_min(x), 0.0)
            b_hi = tf.maximum(tf.reduce_max(x), 0.0)
            if self.calibrating:
                first = tf.equal(self.seen, 0.0)
                self.lo.assign(tf.where(first, b_lo, tf.minimum(self.lo, b_lo)))
                self.hi.assign(tf.where(first, b_hi, tf.maximum(self.hi, b_hi)))
                self.seen.assign(1.0)
                return x
            if training:
                m = RANGE_MOMENTUM
                first = tf.equal(self.seen, 0.0)
                self.lo.assign(tf.where(first, b_lo, m * self.lo + (1 - m) * b_lo))
                self.hi.assign(tf.where(first, b_hi, m * self.hi + (1 - m) * b_hi))
                self.seen.assign(1.0)
            hi = tf.maximum(self.hi, self.lo + 1e-6)
            return tf.quantization.fake_quant_with_min_max_vars(x, self.lo, hi, num_bits=8)

    return ActQuant


def _per_channel(kernel, axis_size):
    """Symmetric int8 fake quantization of ``kernel`` ([..., C]) per last-axis channel."""
    tf = tensorflow()
    flat = tf.reshape(kernel, (-1, axis_size))
    m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(flat), axis=0), 1e-8))
    q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        flat, -m, m, num_bits=8, narrow_range=True)
    return tf.reshape(q, tf.shape(kernel))


def _weight_quant_class():
    k: Any = keras()  # Any: the base class below comes from a module imported at run time

    class WeightQuant(k.layers.Layer):
        """Runs ``inner`` (Conv2D, DepthwiseConv2D or Dense) with a fake-quantized kernel.

        ``inner`` keeps the variables: training this layer trains the original model.
        """

        def __init__(self, inner, linear: bool = False, **kw):
            super().__init__(name=f"{inner.name}_wq", **kw)
            self.inner = inner
            self.kind = class_name(inner)
            self.linear = linear        # leave the layer's activation to the caller

        def call(self, x):
            layer = self.inner
            kernel = layer.kernel
            ops = k.ops
            if self.kind == "Dense":
                # One scale per output column: what the converter writes for FULLY_CONNECTED.
                y = ops.matmul(x, _per_channel(kernel, kernel.shape[-1]))
            elif self.kind == "DepthwiseConv2D":
                channels = kernel.shape[2] * kernel.shape[3]
                y = ops.depthwise_conv(x, _per_channel(kernel, channels), strides=layer.strides,
                                       padding=layer.padding, data_format=layer.data_format,
                                       dilation_rate=layer.dilation_rate)
            else:
                y = ops.conv(x, _per_channel(kernel, kernel.shape[-1]), strides=layer.strides,
                             padding=layer.padding, data_format=layer.data_format,
                             dilation_rate=layer.dilation_rate)
            if layer.use_bias:
                y = y + layer.bias
            return y if self.linear else layer.activation(y)

    return WeightQuant


_CLASSES: tuple | None = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _make_layers()
    return _CLASSES


def _needs_quantizer(layer, consumers: list) -> bool:
    kind = class_name(layer)
    if kind in _SCALE_PRESERVING:
        return False
    single = consumers[0] if len(consumers) == 1 else None
    if single is not None:
        nxt = class_name(single)
        if kind in _WEIGHTED and nxt == "BatchNormalization":
            return False        # folded into the convolution
        if nxt == "ReLU" or (nxt == "Activation" and
                             getattr(single.activation, "__name__", "") == "relu"):
            return False        # fused activation: the ReLU's output is the stored tensor
    return True


def simulate_int8(model) -> Simulation:
    """Build the simulated-int8 twin of a functional ``model`` (see the module docstring).

    Raises:
        UsageError: the model has layers that share weights across calls, more than one input,
            a weighted layer other than Conv2D / DepthwiseConv2D / Dense / BatchNormalization,
            or a fused activation other than linear, relu, sigmoid or softmax.
    """
    k = keras()
    ActQuant, WeightQuant = _classes()
    model = as_functional(model)
    if len(model.inputs) != 1:
        raise UsageError(f"model {model.name!r} has {len(model.inputs)} inputs",
                         "int8 simulation supports single-input models")
    calls = walk(model)
    consumers: dict[int, list] = {}
    for call in calls:
        for t in call.inputs:
            consumers.setdefault(id(t), []).append(call.layer)
    src_in = model.inputs[0]
    new_in = k.Input(shape=tuple(src_in.shape[1:]), dtype=src_in.dtype, name="image")
    mapped = {id(src_in): new_in}
    sim = Simulation(model=None, outputs_by_layer={})
    for call in calls:
        layer = call.layer
        kind = class_name(layer)
        if kind == "InputLayer":
            continue
        ins = [mapped[id(t)] for t in call.inputs]
        arg = ins[0] if len(ins) == 1 else ins
        if layer.weights and kind not in _WEIGHTED and kind != "BatchNormalization":
            raise UsageError(f"layer {layer.name!r} ({kind}) has weights the int8 simulation "
                             "does not quantize",
                             "use Conv2D / DepthwiseConv2D / Dense layers (a SeparableConv2D is "
                             "a DepthwiseConv2D followed by a 1x1 Conv2D)")
        if kind in _WEIGHTED:
            act = getattr(layer.activation, "__name__", "linear")
            if act in _FIXED_RANGES:
                # The converter splits it: int8 logits, then a LOGISTIC / SOFTMAX op whose
                # output range is fixed.
                y = WeightQuant(layer, linear=True)(arg)
                q = ActQuant(name=f"{layer.name}_logits_aq")
                sim.quantizers.append(q)
                y = k.layers.Activation(act, name=f"{layer.name}_{act}")(q(y))
                q = ActQuant(fixed=_FIXED_RANGES[act], name=f"{layer.name}_aq")
                sim.quantizers.append(q)
                y = q(y)
                mapped[id(call.outputs[0])] = y
                sim.outputs_by_layer[layer.name] = y
                continue
            if act not in ("linear", "relu"):
                raise UsageError(f"layer {layer.name!r} has a fused {act} activation",
                                 "int8 simulation supports linear, relu, sigmoid and softmax "
                                 "layer activations")
            y = WeightQuant(layer)(arg)
        elif kind == "BatchNormalization":
            if layer.trainable:
                layer.trainable = False     # inference statistics, as the converter folds them
                sim.frozen_bn.append(layer)
            y = layer(arg)
        else:
            y = layer(arg)
        if len(call.outputs) != 1:
            raise UsageError(f"layer {layer.name!r} has {len(call.outputs)} outputs",
                             "int8 simulation supports single-output layers")
        if _needs_quantizer(layer, consumers.get(id(call.outputs[0]), [])):
            q = ActQuant(fixed=_act_range_of(layer), name=f"{layer.name}_aq")
            y = q(y)
            sim.quantizers.append(q)
        mapped[id(call.outputs[0])] = y
        sim.outputs_by_layer[layer.name] = y
    outs = [mapped[id(t)] for t in model.outputs]
    sim.model = k.Model(new_in, outs if len(outs) > 1 else outs[0], name=f"{model.name}_int8sim")
    return sim
