"""Re-quantize a float ``.tflite`` with ai-edge-quantizer (works on the flatbuffer, no TensorFlow).

Used for ``.tflite`` sources, which have no SavedModel for the TFLiteConverter's PTQ. Recipes:
``dynamic`` -> ``dynamic_wi8_afp32``; ``float16`` -> weights cast to float16 (the
``float_casting`` algorithm, dequantized at load like the TFLiteConverter's float16);
``int8`` -> ``static_wi8_ai8`` calibrated on the same inputs as every other int8 conversion.
With ``--io float`` the graph input and output stay float32 (Ultralytics' LiteRT exporter does
the same with ``NO_QUANTIZE`` on INPUT/OUTPUT).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from converters.recipes import IOType, Quant, Recipe
from edgecnn import interrupts
from edgecnn.errors import UsageError
from edgecnn.lazy import require
from edgecnn.quiet import captured_output


def quantize_tflite(flatbuffer: bytes, recipe: Recipe, calib_x: np.ndarray | None,
                    verbose: bool = False) -> bytes:
    """``flatbuffer`` (a float model) quantized with ``recipe``; ``calib_x`` NHWC float inputs."""
    require("ai_edge_quantizer", package="ai-edge-quantizer", extra="convert",
            purpose="quantizing a .tflite")
    from ai_edge_quantizer import qtyping, quantizer, recipe as aeq_recipe, recipe_manager

    # ai-edge-quantizer prints its report and progress bars through Python's sys.stdout, which
    # the descriptor-level capture misses when sys.stdout is not fd 1 (a host app, pytest).
    quiet = contextlib.ExitStack()
    if not verbose:
        quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
        quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with tempfile.TemporaryDirectory(prefix="edgecnn-aeq-") as tmp, quiet, \
            captured_output(enabled=not verbose):
        src = Path(tmp) / "float.tflite"
        src.write_bytes(flatbuffer)
        qt = quantizer.Quantizer(str(src))
        if recipe.quant is Quant.DYNAMIC:
            qt.load_quantization_recipe(aeq_recipe.dynamic_wi8_afp32())
            return bytes(qt.quantize().quantized_model)
        if recipe.quant is Quant.FLOAT16:
            manager = recipe_manager.RecipeManager()
            manager.add_weight_only_config(
                regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                algorithm_key=aeq_recipe.AlgorithmName.FLOAT_CASTING)
            qt.load_quantization_recipe(manager.get_quantization_recipe())
            return bytes(qt.quantize().quantized_model)
        if calib_x is None or not len(calib_x):
            raise UsageError("int8 quantization needs calibration images", "pass --calib")
        qt.load_quantization_recipe(aeq_recipe.static_wi8_ai8())
        if recipe.io is IOType.FLOAT:
            for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
                qt.update_quantization_recipe(regex=".*", operation_name=op,
                                              algorithm_key=aeq_recipe.AlgorithmName.NO_QUANTIZE)
        signature, input_name, nchw = _signature(src)
        samples = calib_x.transpose(0, 3, 1, 2) if nchw else calib_x
        try:
            result = qt.calibrate({signature: [{input_name: s[None].astype(np.float32)}
                                               for s in samples]})
            return bytes(qt.quantize(result).quantized_model)
        except Exception as err:  # noqa: BLE001 - the quantizer raises many types
            interrupts.check()   # an interrupt the quantizer wrapped in an error of its own
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise UsageError(f"ai-edge-quantizer failed: {first}",
                             "rerun with --verbose for its log") from None


def _signature(path: Path) -> tuple[str, str, bool]:
    """(signature key, input name, input is NCHW) of a one-input model."""
    from edgecnn.runtime.interpreter import make_interpreter

    interp = make_interpreter(path.read_bytes(), 1)
    signatures = interp.get_signature_list()
    if not signatures:
        raise UsageError("the .tflite has no signature, which ai-edge-quantizer needs",
                         "re-export it with a serving signature")
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    shape = tuple(interp.get_input_details()[0]["shape"])
    return key, name, len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3)
