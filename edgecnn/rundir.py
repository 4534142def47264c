"""A run directory: what ``train`` and ``prune`` write and every later step reads.

Layout (relied on by convert, eval, prune, bench and quickstart)::

    RUN/model.keras     best checkpoint (Keras 3 format, loaded with safe_mode=True)
    RUN/run.json        RunInfo below
    RUN/labels.txt      one label per line
    RUN/history.csv     per-epoch metrics
    RUN/curves.png      training curves

MODEL arguments accept a run directory or a ``.keras`` file; a bare ``.keras`` file without a
``run.json`` beside it needs the data options given explicitly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.fsutil import write_atomic

RUN_JSON = "run.json"
MODEL_FILE = "model.keras"


@dataclass
class RunInfo:
    """What a later step needs to know about a trained model."""

    task: str                         # "classify" | "detect"
    arch: str
    labels: list[str]
    imgsz: tuple[int, int]            # (height, width)
    channels: int = 3
    color: str = "RGB"                # "RGB" | "GRAY"
    resize: str = "stretch"           # "stretch" | "letterbox"
    mean: list[float] = field(default_factory=lambda: [0.0])
    std: list[float] = field(default_factory=lambda: [255.0])
    data: str = ""                    # dataset SPEC used for training (for calibration/eval)
    data_dir: str | None = None
    output_activation: str = "softmax"
    decoder: dict | None = None       # detect: DecoderSpec fields
    seed: int = 0
    extra: dict = field(default_factory=dict)   # free-form: metrics, pruning report, ...

    def save(self, folder: str | os.PathLike) -> None:
        doc = asdict(self)
        doc["imgsz"] = list(self.imgsz)
        write_atomic(Path(folder) / RUN_JSON, json.dumps(doc, indent=2))
        write_atomic(Path(folder) / "labels.txt", "\n".join(self.labels) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RunInfo":
        path = Path(folder) / RUN_JSON
        try:
            doc = json.loads(path.read_text())
            doc["imgsz"] = tuple(doc["imgsz"])
            return cls(**doc)
        except FileNotFoundError:
            raise UsageError(f"{path} not found", "pass a run directory written by "
                             "'edgecnn train' or 'edgecnn prune'") from None
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise UsageError(f"{path} is not a valid run description: {err}") from None

    def input_spec(self):
        from edgecnn.runtime.metadata import InputSpec

        return InputSpec(height=self.imgsz[0], width=self.imgsz[1], channels=self.channels,
                         color=self.color, resize=self.resize, mean=tuple(self.mean),
                         std=tuple(self.std))


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
    import edgecnn.models.layers  # noqa: F401 - registers our serializable custom layers
    try:
        model = k.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"cannot load Keras model {model_path}: {first}",
                         "pass a .keras file written by edgecnn or Keras 3") from None
    return model, info
