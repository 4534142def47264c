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
from edgecnn.runtime.decoders.spec import HINT, DecoderSpec, is_output_key
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import FLOAT, Quant, RawDetections

MAX_OUTPUT_INDEX = 15


@dataclass(frozen=True)
class DecoderParams:
    """Base of every decoder's ``Params``: generic parsing from the JSON section."""

    def validate(self) -> None:
        """Checks beyond the field types (override; raise UsageError)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def output_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if is_output_key(f.name))


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """A JSON value as the field's type (int, float, bool, str or a tuple of one of them)."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)) or not value:
            raise UsageError(f"metadata '{key}' must be a non-empty list of "
                             f"{item.__name__}s, got {value!r}", HINT)
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          bool: isinstance(value, bool), str: isinstance(value, str)}.get(kind)
    if ok is None:
        raise TypeError(f"decoder field {key} has an unsupported type {kind}")
    if not ok:
        raise UsageError(f"metadata '{key}' must be {kind.__name__}, got {value!r}", HINT)
    return kind(value)


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
        names = [f.name for f in fields(cls.Params)]
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise UsageError(f"metadata 'decoder' of type {cls.type!r} has unknown field(s) "
                             f"{', '.join(map(repr, unknown[:3]))}",
                             f"its fields are: {', '.join(names) or 'none'}")
        kwargs = {k: _coerce(v, hints[k], f"decoder.{k}") for k, v in raw.items()}
        params = cls.Params(**kwargs)
        positions = [getattr(params, k) for k in params.output_fields()]
        for key, pos in zip(params.output_fields(), positions):
            if not 0 <= pos <= MAX_OUTPUT_INDEX:
                raise UsageError(f"metadata 'decoder.{key}' must be in 0..{MAX_OUTPUT_INDEX}, "
                                 f"got {pos}", HINT)
        if len(set(positions)) != len(positions):
            raise UsageError(f"metadata decoder outputs {', '.join(params.output_fields())} "
                             f"must be different positions, got {positions}", HINT)
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
