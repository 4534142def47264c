"""Registry of named model builders (timm-style): ``create_model("dsnet_s", ...)``.

A builder is a plain function ``fn(input_shape, num_classes, **kwargs) -> keras.Model``
registered with :func:`register_model`. Tiny test variants are registered like any model, so
tests build them by name in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgecnn.errors import UsageError


@dataclass(frozen=True)
class Normalization:
    """The input contract ``x = (pixel - mean) / std`` a model's pretrained weights expect.

    One value applies to every channel; three are per RGB channel.
    """

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "classify" or "detect"
    builder: Callable
    description: str = ""
    default_imgsz: int | None = None
    # Set for architectures with pretrained weights: their inputs must be normalized this way
    # (run.json and the .tflite metadata record it). None: edgecnn's default, pixel / 255.
    normalization: Normalization | None = None


_REGISTRY: dict[str, ModelEntry] = {}
# Modules that register builders when imported; imported lazily so listing needs no TF
# until a model is built.
_BUILDER_MODULES = ("edgecnn.models.classify", "edgecnn.models.detect",
                    "edgecnn.models.backbones.classifiers", "edgecnn.models.backbones.detectors")


def register_model(name: str, task: str, description: str = "",
                   default_imgsz: int | None = None,
                   normalization: Normalization | None = None) -> Callable:
    """Decorator: register ``fn`` under ``name`` for ``task``."""

    def wrap(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, task, fn, description or (fn.__doc__ or "").strip()
                                     .split("\n")[0], default_imgsz, normalization)
        return fn

    return wrap


def _load_builders() -> None:
    import importlib

    for module in _BUILDER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def list_models(task: str | None = None) -> list[ModelEntry]:
    _load_builders()
    return [e for e in _REGISTRY.values() if task is None or e.task == task]


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    _load_builders()
    entry = _REGISTRY.get(name)
    if entry is not None and task is not None and entry.task != task:
        what = {"detect": "a detector", "classify": "a classifier"}.get(entry.task, entry.task)
        raise UsageError(f"architecture {name!r} is {what} (task {entry.task}), not {task}",
                         f"use --task {entry.task}, or leave --task out: the architecture "
                         "sets it")
    if entry is None:
        names = ", ".join(e.name for e in list_models(task))
        raise UsageError(f"unknown architecture {name!r} for task {task or 'any'}",
                         f"choose one of: {names}")
    return entry


def create_model(name: str, input_shape: tuple[int, int, int], num_classes: int,
                 task: str | None = None, **kwargs):
    """Build the registered architecture ``name``."""
    return get_entry(name, task).builder(input_shape=input_shape, num_classes=num_classes,
                                         **kwargs)
