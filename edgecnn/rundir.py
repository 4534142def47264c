"""A run directory: what ``train``, ``prune`` and ``qat`` write and every later step reads.

Layout (relied on by convert, eval, prune, qat, bench and quickstart)::

    RUN/model.keras     best checkpoint (Keras 3 format, loaded with safe_mode=True)
    RUN/run.json        RunInfo below (schema "edgecnn.run/2")
    RUN/labels.txt      one label per line
    RUN/history.csv     per-epoch metrics
    RUN/curves.png      training curves

MODEL arguments accept a run directory or a ``.keras`` file; a bare ``.keras`` file without a
``run.json`` beside it needs the data options given explicitly. A ``run.json`` of the first
format (no schema field, everything after ``seed`` in a free-form ``extra``) still loads.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

from edgecnn.errors import UsageError
from edgecnn.fsutil import write_atomic
from edgecnn.runtime.metadata import DecoderSpec, InputSpec
from edgecnn.runtime.task import Task

RUN_JSON = "run.json"
MODEL_FILE = "model.keras"
RUN_SCHEMA = "edgecnn.run/2"
DEFAULT_VAL_SPLIT = 0.1


@dataclass(frozen=True)
class Split:
    """How the validation images were taken when the dataset names no val split."""

    val_split: float = DEFAULT_VAL_SPLIT   # fraction of the training data held out
    seed: int = 0                          # seed of that draw

    def __post_init__(self) -> None:
        if not (isinstance(self.val_split, (int, float)) and 0.0 <= self.val_split < 1.0):
            raise UsageError(f"val_split must be in [0, 1), got {self.val_split!r}")


@dataclass(frozen=True)
class Provenance:
    """Where a run came from: the command, the run it started from, its initial weights."""

    command: str = ""                  # "train" | "prune" | "qat"
    edgecnn_version: str = ""
    created: str = ""                  # ISO 8601, UTC
    parent: str | None = None          # source run of prune / qat
    weights: str = "scratch"           # "scratch", "imagenet:<backbone>", or a path / run

    @classmethod
    def now(cls, command: str, parent: str | None = None,
            weights: str = "scratch") -> "Provenance":
        from edgecnn import __version__

        return cls(command=command, edgecnn_version=__version__,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   parent=parent, weights=weights)


@dataclass
class RunInfo:
    """What a later step needs to know about a trained model (the ``run.json`` document).

    Attributes:
        task: what the model does.
        labels: class names, in output order.
        imgsz: model input ``(height, width)``.
        channels, color, resize, mean, std: the input contract ``x = (pixel - mean) / std``.
        data, data_dir: the dataset SPEC trained on (calibration and eval default to it).
        split: how val was drawn from it (so eval and calibration use the same held-out images).
        output_activation: classifiers' last activation ("softmax" | "sigmoid" | "none").
        decoder: detectors' output decoding.
        metrics: the run's figures (val metrics, seconds, params ...), flat name -> number.
        config: the options the run was made with (for the record; not read back as options).
        reports: per-step reports of later steps (``pruning``, ``qat``).
        provenance: command, parent run and initial weights.
    """

    task: Task
    arch: str
    labels: list[str]
    imgsz: tuple[int, int]
    channels: int = 3
    color: str = "RGB"
    resize: str = "stretch"
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [255.0])
    data: str = ""
    data_dir: str | None = None
    split: Split = field(default_factory=Split)
    output_activation: str = "softmax"
    decoder: DecoderSpec | None = None
    seed: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        self.task = Task.parse(self.task)
        self.imgsz = (int(self.imgsz[0]), int(self.imgsz[1]))
        if isinstance(self.decoder, dict):
            self.decoder = DecoderSpec.from_dict(self.decoder)

    @property
    def val_split(self) -> float:
        return self.split.val_split

    def derive(self, **changes: Any) -> "RunInfo":
        """A copy with ``changes`` (reports and metrics are copied, not shared)."""
        base = replace(self, metrics=dict(self.metrics), reports=dict(self.reports),
                       config=dict(self.config))
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schema": RUN_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "task":
                value = self.task.value
            elif f.name == "imgsz":
                value = list(value)
            elif f.name == "decoder":
                value = value.to_dict() if value is not None else None
            elif f.name in ("split", "provenance"):
                value = asdict(value)
            doc[f.name] = value
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "RunInfo":
        """Validate and read a ``run.json`` document of schema 1 or 2; UsageError otherwise."""
        if not isinstance(doc, dict):
            raise UsageError("run.json is not a JSON object")
        schema = doc.get("schema")
        if schema is None:
            doc = _from_schema_1(doc)
        elif schema != RUN_SCHEMA:
            raise UsageError(f"run.json has schema {schema!r}; this edgecnn reads {RUN_SCHEMA}",
                             "upgrade edgecnn, or re-run the step that wrote the run")
        doc = {k: v for k, v in doc.items() if k != "schema"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise UsageError(f"run.json has unknown fields: {', '.join(unknown)}")
        doc["split"] = Split(**doc.get("split", {}))
        doc["provenance"] = Provenance(**doc.get("provenance", {}))
        doc["imgsz"] = tuple(doc["imgsz"])
        return cls(**doc)

    def save(self, folder: str | os.PathLike) -> None:
        write_atomic(Path(folder) / RUN_JSON,
                     json.dumps(self.to_dict(), indent=2, default=_json_default))
        write_atomic(Path(folder) / "labels.txt", "\n".join(self.labels) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RunInfo":
        path = Path(folder) / RUN_JSON
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(doc)
        except FileNotFoundError:
            raise UsageError(f"{path} not found", "pass a run directory written by "
                             "'edgecnn train' or 'edgecnn prune'") from None
        except UsageError as err:
            raise UsageError(f"{path}: {err.message}", err.hint) from None
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, ValueError,
                IndexError) as err:
            raise UsageError(f"{path} is not a valid run description: {err}",
                             "re-run the step that wrote it") from None

    def input_spec(self) -> InputSpec:
        return InputSpec(height=self.imgsz[0], width=self.imgsz[1], channels=self.channels,
                         color=self.color, resize=self.resize, mean=tuple(self.mean),
                         std=tuple(self.std))


def _from_schema_1(doc: dict[str, Any]) -> dict[str, Any]:
    """The first run.json format: split, metrics, reports and provenance lived in ``extra``."""
    doc = dict(doc)
    extra = doc.pop("extra", None) or {}
    if not isinstance(extra, dict):
        raise UsageError("run.json field 'extra' is not an object")
    config = dict(extra.get("config") or {})
    if "width" in extra and "width" not in config:
        config["width"] = extra["width"]
    val_split = config.get("val_split", extra.get("val_split", DEFAULT_VAL_SPLIT))
    doc["split"] = {"val_split": float(val_split or DEFAULT_VAL_SPLIT),
                    "seed": int(doc.get("seed", 0) or 0)}
    doc["metrics"] = dict(extra.get("metrics") or {})
    doc["config"] = config
    doc["reports"] = {k: extra[k] for k in ("pruning", "qat") if k in extra}
    command = "qat" if "qat" in extra else "prune" if "pruning" in extra else "train"
    doc["provenance"] = {"command": command, "edgecnn_version": "0.1.0 (run.json schema 1)"}
    return doc


@overload
def dataset_reference(spec: str | os.PathLike) -> str: ...
@overload
def dataset_reference(spec: None) -> None: ...
@overload
def dataset_reference(spec: str | os.PathLike | None) -> str | None: ...


def dataset_reference(spec: str | os.PathLike | None) -> str | None:
    """What run.json records for a dataset SPEC: an absolute path for a path that exists (so
    eval and calibration work from any folder), the SPEC itself for a built-in name."""
    if spec is None or str(spec) == "":
        return None if spec is None else ""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else str(spec)


def _json_default(value: Any) -> Any:
    if isinstance(value, (Path, Task)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} into run.json")


def resolve_model_path(path: str | os.PathLike) -> tuple[Path, RunInfo | None]:
    """(the .keras file, its RunInfo or None) for a run directory or a .keras file."""
    path = Path(path)
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            raise UsageError(f"{path} has no {MODEL_FILE}",
                             "pass a run directory written by 'edgecnn train'")
        return model, RunInfo.load(path)
    if not path.exists():
        raise UsageError(f"model not found: {path}", "check the path")
    if path.suffix != ".keras":
        raise UsageError(f"{path} is not a .keras model or a run directory",
                         "pass the directory 'edgecnn train' wrote, or its model.keras")
    info = RunInfo.load(path.parent) if (path.parent / RUN_JSON).is_file() else None
    return path, info


def load_keras_model(path: str | os.PathLike):
    """(keras.Model, RunInfo | None). Loads with ``safe_mode=True``: no code from the file runs."""
    from edgecnn.lazy import keras

    model_path, info = resolve_model_path(path)
    k = keras()
    try:
        model = k.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot load Keras model {model_path}: {first}",
                         "pass a .keras file written by edgecnn or Keras 3") from None
    return model, info
