"""What every source module returns: a typed description of a foreign model.

A foreign model is described by its single image input (shape and layout), its outputs, and
the metadata its file carries (ONNX ``metadata_props``, Ultralytics' keys, a ``.tflite``'s
bundled JSON). The input layout and the metadata keys are read by
:mod:`edgecnn.runtime.sourcemeta`, which the device side shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecnn.runtime.sourcemeta import (
    ImageInput,
    Layout,
    SourceMetadata,
    image_input,
    parse_props,
)

__all__ = ["ImageInput", "Layout", "SourceMetadata", "SourceModel", "image_input",
           "parse_props"]


@dataclass(frozen=True)
class SourceModel:
    """A loaded foreign model, ready for a conversion route.

    ``reference(x)`` runs the source framework on a float batch in the source's own layout and
    returns its outputs (numpy, in order); it is None when that framework is not installed.
    """

    format: str
    name: str
    input: ImageInput
    outputs: tuple[tuple[str, tuple[int, ...]], ...]
    metadata: SourceMetadata
    reference: Callable[[np.ndarray], list[np.ndarray]] | None = None
    notes: tuple[str, ...] = ()
