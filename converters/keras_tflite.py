"""Keras 3 model -> TFLite flatbuffer through a SavedModel with a fixed batch-1 signature.

``TFLiteConverter.from_keras_model`` is fragile with Keras 3, so the model is exported with
``model.export(..., format="tf_saved_model")`` and converted from that folder. The batch size is
fixed to 1 in the signature: the runtime feeds one camera frame at a time, and a static shape
lets the converter fold every reshape and lets XNNPACK plan its buffers once.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgecnn.quiet import captured_output
from converters.recipes import Recipe
from edgecnn import interrupts
from edgecnn.errors import UsageError
from edgecnn.lazy import tensorflow

INPUT_NAME = "image"


def model_input_shape(model) -> tuple[int, int, int]:
    """(height, width, channels) of a single-input NHWC Keras model; UsageError otherwise."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise UsageError(f"the model has {len(inputs)} inputs; edgecnn converts single-image "
                         "models", "export a model with one NHWC image input")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise UsageError(f"model input shape {shape} is not a fixed-size NHWC image",
                         "build the model with a fixed input size, e.g. (96, 96, 3)")
    return int(shape[1]), int(shape[2]), int(shape[3])


@contextlib.contextmanager
def exported_saved_model(model, verbose: bool = False) -> Iterator[Path]:
    """Export ``model`` to a temporary SavedModel folder (batch 1), removed afterwards."""
    tf = tensorflow()
    h, w, c = model_input_shape(model)
    signature = [tf.TensorSpec((1, h, w, c), tf.float32, name=INPUT_NAME)]
    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as tmp:
        folder = Path(tmp) / "saved_model"
        with captured_output(enabled=not verbose) as log:
            try:
                model.export(str(folder), format="tf_saved_model", input_signature=signature,
                             verbose=verbose)
            except Exception as err:  # noqa: BLE001 - TF raises many types
                # TF turns a Ctrl-C/SIGTERM inside the export into an error of its own: report
                # the interrupt, not a broken model
                interrupts.check()
                raise UsageError(f"cannot export the Keras model to a SavedModel: "
                                 f"{_first_line(err) or log.last_error_line()}",
                                 "rerun with --verbose for the exporter's log") from None
        yield folder


def make_converter(saved_model: Path, recipe: Recipe,
                   representative_dataset: Callable[[], Iterator[list]] | None = None):
    """A ``tf.lite.TFLiteConverter`` over ``saved_model``, configured for ``recipe``."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    recipe.configure(converter, tf, representative_dataset)
    return converter


def convert_saved_model(saved_model: Path, recipe: Recipe,
                        representative_dataset: Callable[[], Iterator[list]] | None = None,
                        verbose: bool = False) -> bytes:
    """Convert a SavedModel folder to TFLite flatbuffer bytes with ``recipe``."""
    with captured_output(enabled=not verbose) as log:
        try:
            converter = make_converter(saved_model, recipe, representative_dataset)
            return bytes(converter.convert())
        except UsageError:
            raise
        except Exception as err:  # noqa: BLE001 - the converter raises many types
            interrupts.check()   # an interrupt TF wrapped in an error of its own
            detail = _first_line(err)
            raise UsageError(f"TFLite conversion ({recipe.name}) failed: "
                             f"{detail or log.last_error_line() or type(err).__name__}",
                             "rerun with --verbose for the converter's log") from None


def convert_keras(model, recipe: Recipe,
                  representative_dataset: Callable[[], Iterator[list]] | None = None,
                  verbose: bool = False) -> bytes:
    """Keras model -> TFLite flatbuffer bytes (no metadata attached).

    Example:
        data = convert_keras(model, Recipe.parse("float16"))
    """
    with exported_saved_model(model, verbose) as folder:
        return convert_saved_model(folder, recipe, representative_dataset, verbose)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("<"):
            return line[:300]
    return ""
