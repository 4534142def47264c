"""Detection decoders: one module per output layout, found by the metadata's ``decoder.type``.

A decoder turns the raw outputs of one image into detections in model-input pixels
(:class:`~edgecnn.runtime.postprocess.RawDetections`); the
:class:`~edgecnn.runtime.detector.Detector` maps them back through the letterbox. Each module
defines a frozen ``Params`` dataclass (its fields of the metadata's ``decoder`` section, with
defaults) and a :class:`~edgecnn.runtime.decoders.base.Decoder` subclass registered with
:func:`register_decoder`. To add a layout: write ``decoders/<type>.py`` and add its name to
``BUILTIN``; mirror it in ``android_demo/core`` (``Decoders.kt``) and pin it with golden vectors.

This package's ``__init__`` imports nothing heavy: the built-in modules are imported on the
first registry look-up, so :mod:`edgecnn.runtime.metadata` can use :class:`DecoderSpec` without
an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from edgecnn.errors import UsageError
from edgecnn.runtime.decoders.spec import DecoderSpec

if TYPE_CHECKING:
    from edgecnn.runtime.decoders.base import Decoder

__all__ = ["BUILTIN", "DecoderSpec", "decoder_class", "known_decoders", "register_decoder"]

BUILTIN = ("anchor_free_ltrb", "ultralytics_yolo", "ultralytics_end2end", "ssd_postprocess")
_REGISTRY: dict[str, type[Decoder]] = {}
_loaded = False


def register_decoder(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator: make ``cls`` the decoder of metadata with ``decoder.type == cls.type``."""
    name = getattr(cls, "type", "")
    if not name:
        raise TypeError(f"{cls.__name__} must set the class attribute 'type'")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"decoder type {name!r} is already registered by "
                        f"{_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(f"{__name__}.{module}")


def known_decoders() -> tuple[str, ...]:
    """The decoder types this runtime decodes, sorted."""
    _load_builtins()
    return tuple(sorted(_REGISTRY))


def find_decoder(name: str) -> type[Decoder] | None:
    """The decoder class registered for ``name``, or None."""
    _load_builtins()
    return _REGISTRY.get(name)


def decoder_class(name: str) -> type[Decoder]:
    """The decoder class for ``name``; a one-line UsageError naming the known types otherwise."""
    cls = find_decoder(name)
    if cls is None:
        raise UsageError(f"unknown decoder type {name!r}",
                         f"this edgecnn decodes: {', '.join(known_decoders())}")
    return cls
