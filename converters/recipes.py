"""Quantization recipes as data: what each one does to weights, activations and I/O.

Naming grammar (used in output file names, metadata and reports)::

    float32          weights fp32, activations fp32, I/O fp32
    float16          weights fp16 (dequantized at load), activations fp32, I/O fp32
    dynamic          weights int8, activations fp32 (int8 kernels quantize them on the fly)
    int8             weights int8 (per channel), activations int8, I/O int8
    int8_iofloat     as int8 but the model takes and returns float32 (a QUANTIZE op at the
                     input and a DEQUANTIZE op at the output)

Example:
    recipe = Recipe.parse("int8", io="float")
    recipe.name                      # "int8_iofloat"
    output_name("dsnet_s", recipe)   # "dsnet_s_int8_iofloat.tflite"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from edgecnn.errors import UsageError


class Quant(str, Enum):
    """Post-training quantization recipe."""

    FLOAT32 = "float32"
    DYNAMIC = "dynamic"
    FLOAT16 = "float16"
    INT8 = "int8"

    @classmethod
    def parse(cls, value: "str | Quant") -> "Quant":
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            raise UsageError(f"unknown quantization {value!r}",
                             f"choose one of: {', '.join(q.value for q in cls)}") from None


class IOType(str, Enum):
    """Type of the converted model's input and output tensors."""

    INT8 = "int8"
    FLOAT = "float"

    @classmethod
    def parse(cls, value: "str | IOType") -> "IOType":
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            raise UsageError(f"unknown I/O type {value!r}", "choose int8 or float") from None


@dataclass(frozen=True)
class Recipe:
    """One quantization recipe: the quantization and the I/O tensor type."""

    quant: Quant
    io: IOType = IOType.FLOAT

    @classmethod
    def parse(cls, quant: "str | Quant", io: "str | IOType | None" = None) -> "Recipe":
        """Validate a ``--quant``/``--io`` pair; ``io=None`` picks the recipe's default.

        Full int8 defaults to int8 I/O (the camera frame becomes the input with one table
        look-up); the float recipes only have float I/O.
        """
        q = Quant.parse(quant)
        if io is None:
            return cls(q, IOType.INT8 if q is Quant.INT8 else IOType.FLOAT)
        t = IOType.parse(io)
        if q is not Quant.INT8 and t is IOType.INT8:
            raise UsageError(f"--io int8 needs --quant int8 (a {q.value} model has float I/O)",
                             "drop --io or use --quant int8")
        return cls(q, t)

    @property
    def name(self) -> str:
        if self.quant is Quant.INT8 and self.io is IOType.FLOAT:
            return "int8_iofloat"
        return self.quant.value

    @property
    def needs_calibration(self) -> bool:
        return self.quant is Quant.INT8

    def configure(self, converter, tf, representative_dataset=None) -> None:
        """Set a ``tf.lite.TFLiteConverter``'s options for this recipe."""
        if self.quant is Quant.FLOAT32:
            return
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.quant is Quant.FLOAT16:
            converter.target_spec.supported_types = [tf.float16]
        elif self.quant is Quant.INT8:
            if representative_dataset is None:
                raise UsageError("int8 quantization needs calibration data",
                                 "pass --calib SPEC or convert a run directory")
            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if self.io is IOType.INT8:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8


def output_name(model_name: str, recipe: Recipe) -> str:
    """File name for a converted model: ``<model>_<recipe>.tflite`` (filesystem-safe)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name).strip("._") or "model"
    return f"{safe}_{recipe.name}.tflite"
