"""The decoder interface: raw head outputs of one image -> detections in model-input pixels.

A decoder is a handful of parameters and one vectorized function. A new output layout is one
module with:

- ``Params``: a frozen dataclass of :class:`DecoderParams` whose fields are the layout's keys in
  the metadata's ``decoder`` section, with defaults. Fields named ``output`` or
  ``<role>_output`` are positions in the interpreter's output list; :meth:`Decoder.decode`
  receives those outputs in field order. ``validate()`` adds checks the field types cannot express.
- a :class:`Decoder` subclass, decorated with
  :func:`~edgecnn.runtime.decoders.register_decoder`, with ``type`` (the metadata's
  ``decoder.type``), ``Params``, :meth:`~Decoder.check` (the outputs fit the input size and
  labels, else a UsageError that says which shapes were expected) and
  :meth:`~Decoder.decode`.

Thresholds (``score >= score_threshold``), the optional class filter, NMS
(``iou_threshold``) and ``max_detections`` are the decoder's to apply, with the shared helpers
of :mod:`edgecnn.runtime.postprocess`, so an end-to-end layout can skip NMS. Integer outputs
arrive raw (not dequantized): compare scores in the quantized domain where that is cheaper
(``postprocess.best_class_candidates``) and dequantize only what survives, with
``self.quant[i]``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metaschema as schema
from edgecnn.runtime.decoders.spec import DecoderSpec, is_output_key
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import FLOAT, Quant, RawDetections

INT_RANGE = (-(2 ** 31), 2 ** 31 - 1)
FLOAT_RANGE = (-1e9, 1e9)


def bounds(lo: float, hi: float, length: tuple[int, int] = (1, 64)) -> dict[str, Any]:
    """``Params`` field metadata: the value range (of each item, for a tuple) and, for a tuple,
    its length range.

    Example:
        strides: tuple[int, ...] = field(default=(8, 16), metadata=bounds(1, 1024, (1, 8)))
    """
    return {"range": (lo, hi), "length": length}


@dataclass(frozen=True)
class DecoderParams:
    """Base of every decoder's ``Params``: generic parsing from the JSON section."""

    def validate(self) -> None:
        """Checks beyond the field types and bounds (override; raise UsageError)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def output_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if is_output_key(f.name))


def _coerce(value: Any, kind: Any, key: str, meta: Mapping[str, Any]) -> Any:
    """A JSON value as the field's type (int, float, bool, str or a tuple of one of them),
    refused with the messages of :mod:`edgecnn.runtime.metaschema`."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        lo, hi = meta.get("length", (1, 64))
        if not isinstance(value, (list, tuple)) or not lo <= len(value) <= hi:
            noun = {int: "integers", float: "numbers", bool: "booleans"}.get(item, "texts")
            raise schema.fail(f"'{key}' must be a list of {lo}..{hi} {noun}, "
                              f"got {schema.show(value)}")
        return tuple(_coerce(v, item, f"{key}[{i}]", meta) for i, v in enumerate(value))
    if kind is int:
        default = (0, schema.MAX_OUTPUT_INDEX) if is_output_key(key.split(".")[-1]) else INT_RANGE
        lo, hi = meta.get("range", default)
        return schema.integer(value, key, int(lo), int(hi))
    if kind is float:
        lo, hi = meta.get("range", FLOAT_RANGE)
        return schema.number(value, key, float(lo), float(hi))
    if kind is bool:
        if not isinstance(value, bool):
            raise schema.fail(f"'{key}' must be true or false, got {schema.show(value)}")
        return value
    if kind is str:
        return schema.text(value, key)
    raise TypeError(f"decoder field {key} has an unsupported type {kind}")


ParamsClass = type[DecoderParams]   # before Decoder, whose attribute ``type`` shadows the builtin


class Decoder:
    """Base class of a detection decoder (see the module docstring).

    Args:
        spec: the metadata's decoder section, thresholds already overridden by the caller.
        outputs: the interpreter's output tensors, all of them, in interpreter order.
        input_hw: model input ``(height, width)``.
        labels: class names; ``len(labels)`` is the number of classes.
        classes: optional allowed class ids (the best class is taken among them only).
    """

    type: ClassVar[str] = ""
    Params: ClassVar[ParamsClass] = DecoderParams

    def __init__(self, spec: DecoderSpec, outputs: Sequence[TensorInfo],
                 input_hw: tuple[int, int], labels: Sequence[str],
                 classes: Sequence[int] | None = None):
        if spec.type != self.type:
            raise UsageError(f"decoder {self.type!r} cannot read a {spec.type!r} section")
        self.params = self.parse_params(spec.param_dict)
        self.score_threshold = float(spec.score_threshold)
        self.iou_threshold = float(spec.iou_threshold)
        self.max_detections = int(spec.max_detections)
        if not 0.0 <= self.score_threshold <= 1.0 or not 0.0 <= self.iou_threshold <= 1.0:
            raise UsageError(f"thresholds must be within 0..1 (score {self.score_threshold}, "
                             f"iou {self.iou_threshold})")
        if self.max_detections < 1:
            raise UsageError(f"max_detections must be >= 1, got {self.max_detections}")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.labels = tuple(labels)
        self.classes = None if classes is None else np.asarray(sorted(set(classes)), np.int64)
        self.positions = self._positions(len(outputs))
        used = tuple(outputs[p] for p in self.positions)
        self.quant: tuple[Quant, ...] = tuple(
            Quant(t.scale, t.zero_point) if t.quantized else FLOAT for t in used)
        self.check(used, self.input_hw, self.labels)

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> DecoderParams:
        """The decoder's fields of a JSON section, checked; UsageError names the bad one."""
        hints = typing.get_type_hints(cls.Params)
        specs = {f.name: f for f in fields(cls.Params)}
        unknown = sorted(set(raw) - set(specs))
        if unknown:
            raise UsageError(f"metadata 'decoder' of type {cls.type!r} has unknown field(s) "
                             f"{', '.join(map(repr, unknown[:3]))}",
                             f"its fields are: {', '.join(specs) or 'none'}")
        params = cls.Params(**{k: _coerce(v, hints[k], f"decoder.{k}", specs[k].metadata)
                               for k, v in raw.items()})
        keys = params.output_fields()
        for i, key in enumerate(keys):  # positions must differ: two roles, one tensor is a bug
            twin = next((k for k in keys[i + 1:] if getattr(params, k) == getattr(params, key)),
                        None)
            if twin is not None:
                raise schema.fail(f"'decoder.{key}' and 'decoder.{twin}' must differ")
        params.validate()
        return params

    def _positions(self, count: int) -> tuple[int, ...]:
        out = []
        for key in self.params.output_fields():
            pos = getattr(self.params, key)
            if not 0 <= pos < count:
                raise UsageError(f"decoder.{key} = {pos} but the model has {count} outputs",
                                 "re-run 'edgecnn convert' to rewrite the metadata")
            out.append(pos)
        return tuple(out)

    def check(self, outputs: Sequence[TensorInfo], input_hw: tuple[int, int],
              labels: Sequence[str]) -> None:
        """Raise a UsageError naming the expected shapes unless ``outputs`` fit.

        Args:
            outputs: the tensors this decoder reads, in the order of its ``*_output`` fields.
            input_hw: model input ``(height, width)``.
            labels: class names.
        """
        raise NotImplementedError

    def decode(self, raw: Sequence[np.ndarray]) -> RawDetections:
        """Outputs of one image (raw: integer arrays are quantized) -> detections in
        model-input pixels, best first, at most ``max_detections``."""
        raise NotImplementedError

    def expect_shapes(self, outputs: Sequence[TensorInfo],
                      expected: Mapping[str, tuple[int, ...]], context: str) -> None:
        """Helper for :meth:`check`: each output has exactly its expected shape.

        ``expected`` maps a role name (``boxes``) to its shape, in output-field order;
        ``context`` says what the shapes follow from (``input 64x64, strides [8, 16]``).
        """
        for (role, want), tensor, key in zip(expected.items(), outputs,
                                             self.params.output_fields()):
            if tuple(tensor.shape) != tuple(want):
                raise UsageError(
                    f"{role} output (decoder.{key} = {getattr(self.params, key)}) has shape "
                    f"{list(tensor.shape)}, expected {list(want)} for {context}",
                    "the metadata does not describe this model")
