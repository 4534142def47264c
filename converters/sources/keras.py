"""Keras 3 (``.keras``, loaded with ``safe_mode=True``) and SavedModel folders not trained by
edgecnn: the TFLiteConverter route every edgecnn model takes, with metadata from options."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.recipes import Recipe
from converters.sources.base import SourceMetadata, SourceModel, image_input
from edgecnn.errors import UsageError
from edgecnn.lazy import keras, tensorflow


def _load_keras(path: Path):
    k = keras()
    try:
        return k.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load Keras model {path.name}: {first}",
                         "pass a .keras file saved by Keras 3 (lambda layers are refused)") \
            from None


def _saved_model_signature(path: Path):
    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load SavedModel {path}: {first}") from None
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise UsageError(f"{path} has no serving_default signature",
                         "export it with a serving signature (model.export)")
    return loaded, signature


def load(path: Path, layout: str | None = None) -> SourceModel:
    if path.is_dir():
        loaded, signature = _saved_model_signature(path)
        specs = signature.structured_input_signature[1]
        if len(specs) != 1:
            raise UsageError(f"{path} takes {len(specs)} inputs; edgecnn converts single-image "
                             "models")
        name, spec = next(iter(specs.items()))
        inp = image_input(name, [d for d in spec.shape], layout)
        probe = signature(**{name: np.zeros(inp.shape, np.float32)})
        keys = sorted(probe)

        def run_saved(x: np.ndarray) -> list[np.ndarray]:
            out = signature(**{name: x.astype(np.float32)})
            return [np.asarray(out[k]) for k in keys]

        outputs = tuple((k, tuple(probe[k].shape)) for k in keys)
        return SourceModel("savedmodel", path.name, inp, outputs, SourceMetadata(), run_saved)
    model = _load_keras(path)
    if len(model.inputs) != 1:
        raise UsageError(f"{path.name} has {len(model.inputs)} inputs; edgecnn converts "
                         "single-image models")
    inp = image_input(model.inputs[0].name, list(model.inputs[0].shape), layout)

    def run(x: np.ndarray) -> list[np.ndarray]:
        out = model(x.astype(np.float32), training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o) for o in outs]

    outputs = tuple((f"output_{i}", tuple(int(d or 1) for d in o.shape))
                    for i, o in enumerate(model.outputs))
    return SourceModel("keras", path.stem, inp, outputs, SourceMetadata(), run)


def to_tflite(path: Path, fmt, recipe: Recipe, representative, verbose: bool) -> bytes:
    """The TFLiteConverter route: a SavedModel folder as it is, a .keras through export."""
    from converters.keras_tflite import convert_keras, convert_saved_model

    if path.is_dir():
        return convert_saved_model(path, recipe, representative, verbose)
    return convert_keras(_load_keras(path), recipe, representative, verbose)
