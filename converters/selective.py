"""Selective int8: chosen layers left in float inside a full-int8 model.

Some layers lose far more to int8 than the rest: EfficientNet-Lite0's stem conv and block 0's
depthwise conv fold batch-norm gains up to 54 into their kernels, so their int8 grid is ~10x
coarser than elsewhere (docs/DECISIONS.md). This module converts the way the converter's own
post-training quantization does (calibrate, then ``mlir_quantize``), passing the output tensors
of those layers as the quantizer's *denylisted nodes*: they stay float, with a DEQUANTIZE
before and a QUANTIZE after them, and every other op is int8. It is the quantization
debugger's ``get_nondebug_quantized_model()`` with the recipe's int8 I/O types, which the
debugger always leaves float.

Layers are named as in Keras (``stem_conv``, ``block0_dw``); a name selects every quantized
op whose output tensor mentions it as a path component (the converter fuses a conv with its
batch norm and activation, and names the fused tensor after all of them). ``worst=N`` picks
the N ops with the highest ``rmse/scale`` of the per-layer debugger report instead.

Example:
    data = convert_selective(saved, Recipe.parse("int8"), representative,
                             layers=("stem_conv", "block0_dw"))
    data.flatbuffer, data.float_tensors
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from converters.recipes import IOType, Recipe
from edgecnn.errors import UsageError
from edgecnn.lazy import tensorflow
from edgecnn.quiet import captured_output

# Ops that carry no arithmetic of their own: never worth keeping in float.
_PLUMBING = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "CONCATENATION", "PAD"}


@dataclass(frozen=True)
class SelectiveResult:
    flatbuffer: bytes
    float_tensors: tuple[str, ...]     # output tensors of the ops left in float
    float_layers: tuple[str, ...]      # what was asked for (layer names, or the N worst ops)


def parse_float_layers(text: str | None) -> tuple[str, ...]:
    """``--float-layers a,b`` -> ``("a", "b")``; UsageError on an empty or malformed name."""
    if not text:
        return ()
    names = tuple(n.strip() for n in str(text).split(","))
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_.\-]+", n)]
    if bad:
        raise UsageError(f"--float-layers: {bad[0]!r} is not a layer name",
                         "give Keras layer names separated by commas, e.g. stem_conv,block0_dw")
    return names


def convert_selective(saved_model: Path, recipe: Recipe,
                      representative_dataset: Callable[[], Iterator[list]] | None,
                      layers: tuple[str, ...] = (), worst: int = 0,
                      verbose: bool = False) -> SelectiveResult:
    """Full-int8 conversion of ``saved_model`` with ``layers`` (or the ``worst`` N ops) float.

    Raises:
        UsageError: not an int8 recipe, a layer name that matches no quantized op, or the
            converter failing.
    """
    if not recipe.needs_calibration or representative_dataset is None:
        raise UsageError("--float-layers / --float-worst need --quant int8",
                         "float recipes keep every layer in float already")
    if worst < 0:
        raise UsageError(f"--float-worst must be >= 0, got {worst}")
    calibrated = _calibrated_model(saved_model, representative_dataset, verbose)
    ops = _quantizable_ops(calibrated)
    nodes: list[str] = []
    for name in layers:
        hits = [t for t in ops if _mentions(t, name)]
        if not hits:
            raise UsageError(f"--float-layers: no quantized op of the model comes from layer "
                             f"{name!r}", "name Keras layers of this model (see its summary) "
                             "or use --float-worst N")
        nodes += [t for t in hits if t not in nodes]
    asked = tuple(layers)
    if worst:
        ranked = _worst_tensors(saved_model, representative_dataset, worst, verbose)
        nodes += [t for t in ranked if t not in nodes]
        asked += tuple(f"worst:{t}" for t in ranked)
    return SelectiveResult(_quantize(calibrated, recipe, nodes, verbose), tuple(nodes), asked)


def _calibrated_model(saved_model: Path, representative_dataset, verbose: bool) -> bytes:
    """The float model with calibration statistics (what the quantizer starts from)."""
    from converters.keras_tflite import make_converter

    with captured_output(enabled=not verbose) as log:
        try:
            converter = make_converter(saved_model, Recipe.parse("int8", "float"),
                                       representative_dataset)
            converter.experimental_mlir_quantizer = True
            converter._experimental_calibrate_only = True   # the debugger's way
            return bytes(converter.convert())
        except Exception as err:  # noqa: BLE001 - the converter raises many types
            raise UsageError(f"calibration for selective int8 failed: "
                             f"{_first_line(err) or log.last_error_line()}",
                             "rerun with --verbose") from None


def _quantize(calibrated: bytes, recipe: Recipe, nodes: list[str], verbose: bool) -> bytes:
    """``mlir_quantize`` as the converter calls it, plus the denylisted nodes."""
    tf = tensorflow()
    from tensorflow.lite.python.convert import mlir_quantize

    io_type = tf.int8 if recipe.io is IOType.INT8 else tf.float32
    with captured_output(enabled=not verbose) as log:
        try:
            return bytes(mlir_quantize(calibrated, disable_per_channel=False,
                                       input_data_type=io_type, output_data_type=io_type,
                                       denylisted_nodes=list(nodes) or None))
        except Exception as err:  # noqa: BLE001 - the quantizer raises many types
            raise UsageError(f"selective int8 quantization failed: "
                             f"{_first_line(err) or log.last_error_line()}",
                             "rerun with --verbose") from None


def _quantizable_ops(calibrated: bytes) -> list[str]:
    """Output tensor names of the arithmetic ops of the calibrated float model."""
    tf = tensorflow()
    interpreter = tf.lite.Interpreter(model_content=calibrated)
    tensors = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    names = []
    for op in interpreter._get_ops_details():  # the debugger reads ops so too
        if op["op_name"] in _PLUMBING:
            continue
        names += [tensors[i] for i in op["outputs"] if i in tensors]
    return names


def _mentions(tensor_name: str, layer: str) -> bool:
    """Whether a (possibly fused, ``;``-joined) tensor name comes from Keras layer ``layer``
    (the SavedModel export scopes layer ``stem_conv`` as ``.../stem_conv_1/...``)."""
    return any(re.search(rf"(^|/){re.escape(layer)}(_\d+)?(/|$)", part)
               for part in tensor_name.split(";"))


def _worst_tensors(saved_model: Path, representative_dataset, n: int,
                   verbose: bool) -> list[str]:
    from converters.debug import run_quantization_debugger

    layers = run_quantization_debugger(saved_model, Recipe.parse("int8", "float"),
                                       representative_dataset, verbose)
    import math

    ranked = sorted((e for e in layers if not math.isnan(e.rmse_over_scale)),
                    key=lambda e: -e.rmse_over_scale)
    return [e.tensor_name for e in ranked[:n]]


def _first_line(err: BaseException) -> str:
    for line in str(err).strip().splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""
