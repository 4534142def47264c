"""Source formats to TFLite: Keras 3 (through SavedModel), with post-training quantization.

Workstation side (needs ``edgecnn[train]``). The public entry point is :func:`convert_model`;
recipes are typed in :mod:`converters.recipes`. Importing this package does not import
TensorFlow: that happens when a conversion runs.

Example:
    from converters import convert_model
    result = convert_model("runs/digits", "digits_int8.tflite", quant="int8")
"""

from converters.recipes import IOType, Quant, Recipe, output_name

__all__ = ["ConversionResult", "IOType", "Quant", "Recipe", "convert_model", "output_name"]


def __getattr__(name: str):
    if name in ("convert_model", "ConversionResult", "measure_agreement"):
        from converters import convert

        return getattr(convert, name)
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
