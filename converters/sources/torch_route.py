"""The route for PyTorch modules (a ``.pt2`` program, or an ONNX graph rebuilt in torch):
litert-torch to a float ``.tflite`` with an NHWC image input, then ai-edge-quantizer.

No TensorFlow: litert-torch lowers ``torch.export`` graphs with its own converter
(``litert-converter``). An NCHW model is wrapped by ``litert_torch.to_channel_last_io`` so the
``.tflite`` takes the NHWC frame the device has (the transposes it adds are folded into the
first convolution). docs/DECISIONS.md, "Foreign models", has the measurements behind the route.
"""

from __future__ import annotations

import tempfile
from typing import Any
from pathlib import Path

import numpy as np

from converters.recipes import Quant, Recipe
from converters.sources.base import ImageInput, Layout
from edgecnn.errors import UsageError
from edgecnn.lazy import require
from edgecnn.quiet import captured_output


def float_tflite(module, image: ImageInput, verbose: bool = False) -> bytes:
    """``module`` (a torch module in eval mode, taking ``image``) -> float32 flatbuffer, NHWC
    input. An ExportedProgram's module is already in eval mode (and refuses ``.eval()``)."""
    torch = require("torch", extra="convert", purpose="converting PyTorch models")
    litert_torch = require("litert_torch", package="litert-torch", extra="convert",
                           purpose="converting PyTorch models")
    x = torch.zeros(image.shape, dtype=torch.float32)
    if image.layout is Layout.NCHW:
        module = litert_torch.to_channel_last_io(module, args=[0])
        x = x.permute(0, 2, 3, 1).contiguous()
    with tempfile.TemporaryDirectory(prefix="edgecnn-litert-") as tmp, \
            captured_output(enabled=not verbose) as log:
        out = Path(tmp) / "float32.tflite"
        try:
            litert_torch.convert(module, (x,)).export(str(out))
        except Exception as err:  # noqa: BLE001 - the lowering raises many types
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:240]
            raise UsageError(f"litert-torch could not convert the model: "
                             f"{first or log.last_error_line()}",
                             "rerun with --verbose for the converter's log") from None
        return out.read_bytes()


def normalized_boxes(module, height: int, width: int):
    """``module`` with the four box channels of its ``[1, 4 + nc, N]`` output divided by the
    input size (see :func:`converters.sources.onnx.normalize_yolo_boxes` for why)."""
    torch = require("torch", extra="convert", purpose="converting PyTorch models")

    module_base: Any = torch.nn.Module   # torch is imported at run time

    class NormalizedBoxes(module_base):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.register_buffer("scale", torch.tensor(
                [1.0 / width, 1.0 / height, 1.0 / width, 1.0 / height]).view(1, 4, 1))

        def forward(self, x):
            y = self.inner(x)
            y = y[0] if isinstance(y, (list, tuple)) else y
            return torch.cat([y[:, :4] * self.scale, y[:, 4:]], dim=1)

    return NormalizedBoxes(module)


def apply_recipe(flat: bytes, recipe: Recipe, calib_x: np.ndarray | None,
                 verbose: bool = False) -> bytes:
    """The recipe on a float flatbuffer: float32 as is, the others by ai-edge-quantizer."""
    if recipe.quant is Quant.FLOAT32:
        return flat
    from converters.quantize import quantize_tflite

    return quantize_tflite(flat, recipe, calib_x, verbose)
