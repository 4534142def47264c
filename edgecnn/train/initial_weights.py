"""``--weights``: where a training run's initial weights come from, checked and loaded.

A source is one of:

- ``imagenet``: the architecture's pretrained backbone (``edgecnn.models.backbones``); the
  new layers (a detector's pyramid and head, a classifier's dense head) start from their
  initialization.
- a run directory or a ``.keras`` model: weights copied layer by layer, by name. Every layer
  of the backbone must be there with the same shape (else: weights of another architecture).
  The class-prediction layers are re-initialized when the classes differ (another class count,
  or other labels in run.json); a detector's pyramid and head start fresh when the source has
  none (an EfficientNet-Lite0 classifier run under ``det_lite0``).
- a ``.weights.h5`` file (Keras ``save_weights``): Keras loads it into this exact structure,
  class count included. Its groups are named by layer type and order, not by layer, so there
  is no telling a head from the rest: a file for another class count is an error that says to
  pass its run directory instead.
- a ``.pth`` / ``.pt`` PyTorch state_dict of EfficientNet-Lite0 (archs on that backbone),
  read without torch and without running code (:mod:`edgecnn.models.backbones.torchfile`).

Example:
    source = parse_weights("runs/kangaroo")        # on TrainConfig creation: no TF, no data
    check_weights_for(source, "det_lite0", Task.DETECT)
    model, report = build_with_weights(entry, source, (256, 256, 3), ["kangaroo"])
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task

IMAGENET = "imagenet"
_FIX = ("use --weights imagenet, a run directory, or a .keras / .weights.h5 / .pth file "
        "(or leave --weights out to train from scratch)")


class WeightsKind(str, Enum):
    IMAGENET = "imagenet"
    RUN = "run"                   # a run directory (model.keras + run.json)
    KERAS = "keras"               # a .keras model file
    KERAS_WEIGHTS = "weights.h5"  # Keras save_weights()
    TORCH = "pth"                 # a PyTorch state_dict


@dataclass(frozen=True)
class WeightsSource:
    """A parsed ``--weights`` value (paths absolute)."""

    kind: WeightsKind
    path: Path | None = None

    @property
    def parent_run(self) -> str | None:
        """The run directory a run started from (run.json's ``provenance.parent``)."""
        return str(self.path) if self.kind is WeightsKind.RUN else None

    @property
    def file(self) -> Path:
        """``path``, for every kind but ``imagenet``."""
        if self.path is None:
            raise UsageError(f"--weights {self.kind.value} names no file or run directory")
        return self.path

    def describe(self, backbone: str | None = None) -> str:
        """What run.json's ``provenance.weights`` records."""
        if self.kind is WeightsKind.IMAGENET:
            return f"imagenet:{backbone}" if backbone else IMAGENET
        return f"{self.kind.value}:{self.path}"


@dataclass
class WeightsReport:
    """What loading did: for run.json's ``reports["weights"]`` and the run's log."""

    source: str
    origin: str = ""                       # where the numbers came from, in words
    parent: str | None = None              # the run directory started from
    loaded_layers: int = 0
    reinitialized: list[str] = field(default_factory=list)   # class layers started fresh
    initialized: list[str] = field(default_factory=list)     # layers the source lacks

    def summary(self) -> str:
        text = f"weights {self.source}"
        if self.loaded_layers:
            text += f": {self.loaded_layers} layers loaded"
        if self.reinitialized:
            text += f", class layers re-initialized ({len(self.reinitialized)})"
        if self.initialized:
            text += f", {len(self.initialized)} new layers initialized"
        return text

    def to_dict(self) -> dict:
        return {"source": self.source, "origin": self.origin,
                "loaded_layers": self.loaded_layers, "reinitialized": list(self.reinitialized),
                "initialized": len(self.initialized)}


def parse_weights(value: str | os.PathLike | None) -> WeightsSource | None:
    """Check a ``--weights`` value without loading anything; None for from scratch.

    Raises:
        UsageError: neither ``imagenet`` nor an existing run directory / weights file.
    """
    if value is None or str(value) == "":
        return None
    text = str(value)
    if text.lower() == IMAGENET:
        return WeightsSource(WeightsKind.IMAGENET)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise UsageError(f"--weights {text}: the folder has no model.keras",
                             "pass a run directory written by 'edgecnn train'")
        return WeightsSource(WeightsKind.RUN, path.resolve())
    if path.is_file():
        name = path.name.lower()
        for suffix, kind in ((".weights.h5", WeightsKind.KERAS_WEIGHTS),
                             (".keras", WeightsKind.KERAS), (".pth", WeightsKind.TORCH),
                             (".pt", WeightsKind.TORCH)):
            if name.endswith(suffix):
                return WeightsSource(kind, path.resolve())
        raise UsageError(f"--weights {text}: unknown weights file type", _FIX)
    raise UsageError(f"unknown --weights value {text!r} (not 'imagenet', and no such file or "
                     "folder)", _FIX)


def check_weights_for(source: WeightsSource | None, arch: str, task: Task) -> None:
    """Fail fast, before any data is read, when ``source`` cannot fit ``arch``.

    Raises:
        UsageError: ``imagenet`` for an architecture without a pretrained backbone, a
            ``.pth`` for one not on EfficientNet-Lite0, or a run of another task or
            architecture.
    """
    from edgecnn.models.backbones.detectors import backbone_of, pretrained_archs

    if source is None:
        return
    backbone = backbone_of(arch)
    if source.kind is WeightsKind.IMAGENET and backbone is None:
        raise UsageError(f"--weights imagenet: {arch} has no pretrained backbone",
                         f"choose one of: {', '.join(pretrained_archs(task.value))}")
    if source.kind is WeightsKind.TORCH and backbone != "efficientnet_lite0":
        raise UsageError(f"--weights {source.file.name}: a PyTorch state_dict is read for "
                         f"EfficientNet-Lite0 only, and {arch} is not built on it",
                         "use --arch det_lite0 or efficientnet_lite0, or pass a .keras file")
    if source.kind is WeightsKind.RUN:
        from edgecnn.rundir import RunInfo

        info = RunInfo.load(source.file)
        if info.task is not task:
            raise UsageError(f"--weights {source.path}: a {info.task.value} run cannot start "
                             f"a {task.value} model", "pass a run of the same task")
        same_backbone = backbone is not None and backbone_of(info.arch) == backbone
        if info.arch != arch and not same_backbone:
            raise UsageError(f"--weights {source.path}: the weights of a {info.arch} run do "
                             f"not fit {arch}", f"use --arch {info.arch}, or pass weights of a "
                             f"{arch} run")


def source_box_head(source: WeightsSource | None) -> bool | None:
    """Whether the detector run ``source`` names has the integral box head; None when the
    source is not a detector run (nothing to follow: ImageNet, a file, a classifier run)."""
    if source is None or source.kind is not WeightsKind.RUN:
        return None
    from edgecnn.rundir import RunInfo

    info = RunInfo.load(source.file)
    if info.task is not Task.DETECT:
        return None
    return bool(info.config.get("integral_boxes"))   # runs before the flag were all dense


def build_with_weights(entry, source: WeightsSource | None, input_shape, labels,
                       **kwargs) -> tuple[Any, WeightsReport]:
    """Build registry ``entry`` for ``labels`` and load its initial weights from ``source``.

    Args:
        kwargs: further builder options (``width``).

    Raises:
        UsageError: the weights do not fit (another architecture, a class count a weights
            file cannot change), cannot be read, or are not available (package missing,
            offline without Keras' cached file).
    """
    from edgecnn.models.backbones.detectors import backbone_of

    num_classes = len(labels)
    if source is None:
        model = entry.builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
        return model, WeightsReport("scratch")
    backbone = backbone_of(entry.name)
    if source.kind is WeightsKind.IMAGENET:
        from edgecnn.models.backbones import backbone_info
        from edgecnn.train.engine.backbone import head_layer

        model = entry.builder(input_shape=input_shape, num_classes=num_classes,
                              weights=IMAGENET, **kwargs)
        report = WeightsReport(source.describe(backbone),
                               backbone_info(str(backbone)).weights_source)
        # The builder loaded every backbone layer; the task head is new.
        weighted = [layer for layer in model.layers if layer.weights]
        report.initialized = [layer.name for layer in weighted if head_layer(layer)]
        report.loaded_layers = len(weighted) - len(report.initialized)
        return model, report
    model = entry.builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
    report = WeightsReport(source.describe(), parent=source.parent_run)
    if source.kind is WeightsKind.KERAS_WEIGHTS:
        _load_keras_weights_file(model, source.file, entry.name)
        report.loaded_layers = sum(1 for layer in model.layers if layer.weights)
        report.origin = "Keras weights file"
        return model, report
    weights, source_labels, report.origin = _layer_weights(source)
    transfer(model, weights, report, entry.name, str(source.path),
             keep_head=source_labels is None or list(source_labels) == list(labels))
    return model, report


def _layer_weights(source: WeightsSource) -> tuple[dict, list | None, str]:
    """({layer name: weights}, the source's labels if known, origin) of a model source."""
    if source.kind is WeightsKind.TORCH:
        from edgecnn.models.backbones import efficientnet_lite as el
        from edgecnn.models.backbones.torchfile import load_state_dict

        state = load_state_dict(source.file)
        return el.keras_weights_from_torch(state), None, "PyTorch state_dict"
    from edgecnn.rundir import load_keras_model

    model, info = load_keras_model(source.file)
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    labels = list(info.labels) if info is not None else None
    origin = f"{info.arch} run" if info is not None else f"Keras model {model.name}"
    return weights, labels, origin


def class_layer(layer) -> bool:
    """The layers whose shape depends on the class count: a detector's per-level class
    predictions and a classifier's dense head."""
    return layer.name == "classifier" or (layer.name.startswith("head")
                                           and layer.name.endswith("_cls_pred"))


def transfer(model, weights: dict, report: WeightsReport, arch: str, origin: str,
             keep_head: bool = True) -> None:
    """Copy ``weights`` ({layer name: arrays}) into ``model``'s layers of the same name.

    Class layers whose shape differs, or every class layer when ``keep_head`` is False, keep
    their initialization; head layers the source lacks too. Anything else missing or
    misshapen means the weights are for another architecture.
    """
    import numpy as np

    from edgecnn.train.engine.backbone import head_layer

    for layer in model.layers:
        current = layer.get_weights()
        if not current:
            continue
        source = weights.get(layer.name)
        shapes = [w.shape for w in current]
        fits = source is not None and [tuple(np.shape(w)) for w in source] == shapes
        if class_layer(layer) and (not keep_head or not fits):
            report.reinitialized.append(layer.name)
            continue
        if source is None and head_layer(layer):
            report.initialized.append(layer.name)
            continue
        if source is None or not fits:
            got = [tuple(np.shape(w)) for w in source] if source is not None else "no such layer"
            raise UsageError(f"--weights {origin} is for another architecture: {arch} layer "
                             f"{layer.name} needs {shapes}, the weights have {got}",
                             f"pass weights of a {arch} run trained with the same --width "
                             f"and box head (--integral-boxes / --dense-boxes), or train "
                             f"without --weights")
        layer.set_weights([np.asarray(w, dtype=c.dtype) for w, c in zip(source, current)])
        report.loaded_layers += 1
    if report.loaded_layers == 0:
        raise UsageError(f"--weights {origin} has no layer of {arch}",
                         f"pass weights of a {arch} run")


def _load_keras_weights_file(model, path: Path, arch: str) -> None:
    """``model.load_weights(path)`` with the two ways it fails told apart."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            stored = []
            f.visititems(lambda name, obj: stored.append(tuple(obj.shape))
                         if isinstance(obj, h5py.Dataset) else None)
    except OSError as err:
        raise UsageError(f"--weights {path} is not a readable Keras weights file "
                         f"({str(err)[:80]})", "pass a file written by model.save_weights") \
            from None
    wanted = Counter(tuple(w.shape) for w in model.weights)
    have = Counter(stored)
    if wanted != have:
        head = Counter(tuple(w.shape) for layer in model.layers if class_layer(layer)
                       for w in layer.weights)
        missing, extra = wanted - have, have - wanted
        if missing and not missing - head and sum(extra.values()) == sum(missing.values()):
            classes = {shape[-1] for shape in extra}
            raise UsageError(f"--weights {path.name} holds a head for {min(classes)} "
                             f"classes, the dataset has {_classes_of(model)}",
                             "pass the run directory or .keras model it came from (its head "
                             "is then re-initialized), or train on the dataset it was made for")
        raise UsageError(f"--weights {path.name} is for another architecture: its tensors do "
                         f"not match {arch}", f"pass weights of a {arch} model")
    try:
        model.load_weights(path)
    except Exception as err:  # noqa: BLE001 - Keras and h5py raise many types
        raise UsageError(f"--weights {path.name} does not load into {arch}: "
                         f"{str(err).splitlines()[0][:120]}",
                         f"pass weights of a {arch} model") from None


def _classes_of(model) -> int:
    for layer in model.layers:
        if class_layer(layer):
            return int(layer.weights[-1].shape[-1])
    return 0
