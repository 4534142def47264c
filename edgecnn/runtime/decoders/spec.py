"""``DecoderSpec``: the metadata's ``decoder`` section, common fields plus a decoder's own.

The JSON section is flat (docs/FORMAT.md)::

    {"type": "anchor_free_ltrb", "strides": [8, 16, 32], "box_output": 0, "score_output": 1,
     "score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 100}

``type``, ``score_threshold``, ``iou_threshold`` and ``max_detections`` are common to every
decoder; every other key is a parameter of the decoder named by ``type`` and is checked by that
decoder's ``Params`` (unknown keys, types, ranges). ``output`` and keys ending in ``_output``
are positions in the interpreter's output list. A section whose type this runtime does not know is kept as it is
(``inspect`` still shows it); running it fails with the list of known types.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from edgecnn.runtime import metaschema

COMMON = ("type", "score_threshold", "iou_threshold", "max_detections")


def is_output_key(key: str) -> bool:
    """``output`` and ``<role>_output`` keys are positions in the interpreter's output list."""
    return key == "output" or key.endswith("_output")


def output_role(key: str) -> str:
    return key.removesuffix("_output")


def _frozen(value: Any) -> Any:
    """JSON value -> hashable value (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    return value


def _json(value: Any) -> Any:
    return [_json(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True, init=False)
class DecoderSpec:
    """The ``decoder`` section of detection metadata.

    Decoder parameters are keyword arguments and read back as attributes, so the anchor-free
    head reads as before (``params`` is reserved; ``dataclasses.replace`` works too):

    Example:
        >>> spec = DecoderSpec(strides=(8, 16), box_output=1, score_output=0)
        >>> spec.strides, spec.outputs
        ((8, 16), {'box': 1, 'score': 0})

    Attributes:
        type: the decoder (a registered module under ``edgecnn/runtime/decoders``).
        score_threshold: keep candidates scoring ``>=`` this (0..1).
        iou_threshold: NMS drops same-class boxes overlapping a better one by IoU ``>`` this.
        max_detections: at most this many detections per image, best first.
        params: the decoder's own fields with its defaults filled in (for a known type).
    """

    type: str
    score_threshold: float
    iou_threshold: float
    max_detections: int
    params: tuple[tuple[str, Any], ...]

    def __init__(self, type: str = "anchor_free_ltrb", score_threshold: float = 0.25,
                 iou_threshold: float = 0.45, max_detections: int = 100, **params: Any):
        from edgecnn.runtime.decoders import find_decoder

        set_ = object.__setattr__
        set_(self, "type", type)
        set_(self, "score_threshold", score_threshold)
        set_(self, "iou_threshold", iou_threshold)
        set_(self, "max_detections", max_detections)
        if isinstance(params.get("params"), tuple):
            # dataclasses.replace(spec, strides=...) passes the stored pairs plus the changes.
            params = {**dict(params.pop("params")), **params}
        cls = find_decoder(type) if isinstance(type, str) else None
        if cls is not None:  # defaults filled in and checked, so equal sections compare equal
            params = cls.parse_params(params).to_dict()
        set_(self, "params", tuple((k, _frozen(v)) for k, v in params.items()))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: decoder parameters read as attributes.
        if not name.startswith("_"):
            for key, value in self.__dict__.get("params", ()):
                if key == name:
                    return value
        raise AttributeError(f"decoder {self.__dict__.get('type')!r} has no field {name!r}")

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def outputs(self) -> dict[str, int]:
        """Output roles -> positions in the interpreter's output list (``box_output`` -> box)."""
        return {output_role(k): v for k, v in self.params if is_output_key(k)}

    def replace(self, **changes: Any) -> DecoderSpec:
        """A copy with some common fields or parameters changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON section: type, the decoder's fields, then the common thresholds."""
        doc: dict[str, Any] = {"type": self.type}
        doc.update((k, _json(v)) for k, v in self.params)
        doc.update(score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                   max_detections=self.max_detections)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DecoderSpec:
        """Read and check a decoder section (common fields by the metadata schema, the rest
        by the decoder); UsageError naming the first bad field."""
        return cls(**metaschema.decoder_fields({"decoder": doc}))


def describe_decoder(doc: Mapping[str, Any]) -> str:
    """One line for people: ``anchor_free_ltrb strides [8, 16, 32], box = output 1, ...``."""
    params = [f"{k} {v}" for k, v in doc.items() if k not in COMMON and not is_output_key(k)]
    outputs = [f"{output_role(k)} = output {v}" for k, v in doc.items() if is_output_key(k)]
    thresholds = (f"score >= {doc.get('score_threshold')}, iou {doc.get('iou_threshold')}, "
                  f"max {doc.get('max_detections')}")
    return f"{doc.get('type')} " + ", ".join([*params, *outputs, thresholds])
