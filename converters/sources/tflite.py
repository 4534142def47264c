"""An existing ``.tflite`` as a source: kept as it is with metadata attached, or re-quantized.

Metadata already in the file is read: edgecnn's own bundle, or the ``metadata.json`` that
Ultralytics appends to its LiteRT exports (a zip after the flatbuffer, like edgecnn's). A float
model can be re-quantized with ai-edge-quantizer, which works on the flatbuffer itself (no
TensorFlow): ``dynamic`` (int8 weights), ``int8`` (int8 weights and activations, calibrated).
A model that is already quantized is only kept (``--quant keep``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.sources.base import (
    SourceMetadata,
    SourceModel,
    image_input,
    parse_props,
)
from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.sourcemeta import ultralytics_props


def bundled_props(data: bytes) -> dict | None:
    """The JSON object Ultralytics appends (``metadata.json`` in a trailing zip), or None."""
    return ultralytics_props(md.split_bundle(data)[1])


def is_float(model: TFLiteModel) -> bool:
    """True when no tensor of the main graph is int8 (nothing has been quantized yet)."""
    details = model.interpreter.get_tensor_details()
    return not any(np.dtype(d["dtype"]) in (np.int8, np.int16) for d in details)


def load(path: Path, layout: str | None = None) -> SourceModel:
    data = md.read_model_file(path)
    model = TFLiteModel(data, threads=1, metadata=None)
    if len(model.inputs) != 1:
        raise UsageError(f"{path.name} has {len(model.inputs)} inputs; edgecnn converts "
                         "single-image models")
    inp = image_input(model.input.name, model.input.shape, layout)
    props = bundled_props(data)
    meta = parse_props(props) if props else SourceMetadata()
    outputs = tuple((o.name, o.shape) for o in model.outputs)

    def run(x: np.ndarray) -> list[np.ndarray]:
        return model.run(x.astype(np.float32))

    return SourceModel(format="tflite", name=path.stem, input=inp, outputs=outputs,
                       metadata=meta, reference=run)


def flatbuffer(path: Path) -> bytes:
    """The model bytes without any trailing metadata bundle (edgecnn's or Ultralytics')."""
    return md.split_bundle(md.read_model_file(path))[0]
