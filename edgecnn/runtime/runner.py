"""The runner protocol: what every task runner (Classifier, Detector, ...) offers its callers.

A runner is built from a ``.tflite`` path or a loaded :class:`TFLiteModel` and runs one image
in three public stages, so the camera loop and the benchmark can time each one::

    tensor, context = runner.preprocess(image, "BGR")   # uint8 image -> model input tensor
    raw = runner.infer(tensor)                          # invoke; raw (still quantized) outputs
    results = runner.postprocess(raw, context)          # -> typed records in image pixels
    results = runner(image)                             # the three in one call

``context`` is whatever ``postprocess`` needs to map results back to the image (the
:class:`~edgecnn.runtime.types.Letterbox` for the built-in runners); results are typed records
with ``to_dict()`` (:class:`~edgecnn.runtime.types.Category`,
:class:`~edgecnn.runtime.types.Detection`). Callers (camera, bench, predict, eval, export)
use only these members and never a runner's private fields.

Runners are registered per :class:`Task`; :func:`load` reads the model's metadata and picks
the runner for its task.

Example:
    runner = load("detector_int8.tflite", threads=2, score_threshold=0.4)
    for det in runner(cv2.imread("street.jpg")):
        print(det.to_dict())
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.describe import MetadataOptions, resolve_metadata
from edgecnn.runtime.metadata import Metadata
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.preprocess import Preprocessor
from edgecnn.runtime.task import Task
from edgecnn.runtime.types import Letterbox

ModelSource = str | os.PathLike | bytes | TFLiteModel


@runtime_checkable
class Result(Protocol):
    """A typed result record (Category, Detection)."""

    def to_dict(self) -> dict: ...


@runtime_checkable
class Runner(Protocol):
    """What callers may use of a task runner.

    Attributes:
        task: the task it runs.
        result_key: the JSON key its result list goes under (``categories``, ``detections``).
        model: the loaded model (size, threads, path, the interpreter for invoke-only timing).
        metadata: the model's edgecnn metadata.
        labels: class names, index = class id.
    """

    task: Task
    result_key: str
    model: TFLiteModel
    metadata: Metadata
    labels: tuple[str, ...]

    def preprocess(self, image: np.ndarray, color: str = "BGR") -> tuple[np.ndarray, Any]: ...

    def infer(self, tensor: np.ndarray) -> Any: ...

    def postprocess(self, raw: Any, context: Any) -> list: ...

    def __call__(self, image: np.ndarray, color: str = "BGR") -> list: ...


def open_model(model: ModelSource, threads: int | None = None,
               verify: bool = True) -> TFLiteModel:
    """``model`` itself if it is loaded, else the ``.tflite`` at that path or in those bytes
    (``verify``: see :class:`TFLiteModel`). A run directory gets a message saying how to make
    the ``.tflite`` from it."""
    if isinstance(model, TFLiteModel):
        return model
    if isinstance(model, (bytes, bytearray)):
        return TFLiteModel(model, threads=threads, verify=verify)
    path = Path(model)
    if path.is_dir():
        raise UsageError(*_directory_message(path))
    return TFLiteModel(path, threads=threads, verify=verify)


def _directory_message(path: Path) -> tuple[str, str]:
    tflites = sorted(p.name for p in path.glob("*.tflite"))
    if tflites:
        return (f"{path} is a folder, not a .tflite model",
                f"pass one of the models in it: {', '.join(tflites[:4])}")
    if (path / "run.json").is_file():
        return (f"{path} is a training run, not a .tflite model",
                f"convert it first: edgecnn convert {path} --quant int8, then pass the "
                ".tflite it writes")
    return f"{path} is a folder, not a .tflite model", "pass a .tflite file"


class TaskRunner:
    """Base of the built-in runners: model loading, task check, preprocessing, ``__call__``.

    Subclasses set ``task``, ``result_key`` and ``Options`` (a frozen dataclass with a
    ``threads`` field) and implement :meth:`infer` and :meth:`postprocess`.

    Args:
        model: a ``.tflite`` path or a loaded :class:`TFLiteModel`.
        options: the runner's options (``threads`` is used only when loading from a path).
        metadata: use this instead of the model's own metadata.
    """

    task: ClassVar[Task]
    result_key: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, model: ModelSource, options: Any = None,
                 metadata: Metadata | None = None):
        self.options = options if options is not None else self.Options()
        self.model = open_model(model, threads=getattr(self.options, "threads", None))
        self.metadata = meta = metadata or resolve_metadata(self.model)
        if meta.task != self.task:
            raise UsageError(f"model task is {meta.task.value!r}, not {self.task.value!r}",
                             "use runtime.load (or 'edgecnn predict'), which picks the runner "
                             "for the model's task")
        self.labels: tuple[str, ...] = tuple(meta.labels)
        self.preprocessor = Preprocessor(meta.input, self.model.input)

    def preprocess(self, image: np.ndarray, color: str = "BGR") -> tuple[np.ndarray, Letterbox]:
        """uint8 image (``color``: BGR, RGB or GRAY) -> ``(input tensor, Letterbox)``."""
        return self.preprocessor(image, color)

    def infer(self, tensor: np.ndarray) -> Any:
        raise NotImplementedError

    def postprocess(self, raw: Any, context: Letterbox) -> list:
        raise NotImplementedError

    def __call__(self, image: np.ndarray, color: str = "BGR") -> list:
        tensor, context = self.preprocess(image, color)
        return self.postprocess(self.infer(tensor), context)


_RUNNERS: dict[Task, Any] = {}   # Task -> runner class


def register_runner(task: Task, *, replace: bool = False):
    """Class decorator: the runner :func:`load` builds for models of ``task``.

    The class is called as ``cls(model, cls.Options(**options), metadata=...)`` with a loaded
    :class:`TFLiteModel` and must satisfy :class:`Runner`. ``replace=True`` swaps out the
    registered runner (tests, experiments); register the old class again to restore it.
    """
    task = Task.parse(task)

    def add(cls: type) -> type:
        if task in _RUNNERS and _RUNNERS[task] is not cls and not replace:
            raise TypeError(f"task {task.value!r} already has runner {_RUNNERS[task].__name__}")
        _RUNNERS[task] = cls
        return cls

    return add


def runner_class(task: Task | str) -> Any:
    """The registered runner of ``task``; UsageError naming the tasks with a runner."""
    task = Task.parse(task)
    _load_builtins()
    if task not in _RUNNERS:
        raise UsageError(f"no runner for task {task.value!r}",
                         f"this edgecnn runs: {', '.join(t.value for t in _RUNNERS)}")
    return _RUNNERS[task]


def _load_builtins() -> None:
    """Import the built-in runners: importing registers them (lazily: they import this)."""
    import edgecnn.runtime.classifier
    import edgecnn.runtime.detector  # noqa: F401 - imported to register the runner


def make_options(cls: Any, task: Task, options: dict[str, Any]) -> Any:
    """``cls.Options(**options)`` without the ``None`` values (= the model's own setting);
    an option the task does not have is a UsageError, not silently ignored."""
    known = [f.name for f in fields(cls.Options)]
    given = {k: v for k, v in options.items() if v is not None}
    if "threads" not in known:  # threads belong to the model; a runner need not keep them
        given.pop("threads", None)
    unknown = [k for k in given if k not in known]
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        raise UsageError(f"option {unknown[0]} ({flag}) does not apply to {task.value} models",
                         f"{task.value} models take: {', '.join(known)}")
    return cls.Options(**given)


def load(model: ModelSource, threads: int | None = None, *, verify: bool = True,
         metadata: Metadata | None = None, described: MetadataOptions | None = None,
         **options: Any) -> Runner:
    """The runner for the model's task, read from its metadata.

    Args:
        model: a ``.tflite`` path, its bytes, or a loaded :class:`TFLiteModel`.
        threads: interpreter threads (when loading from a path or bytes).
        verify: refuse a file whose flatbuffer does not match its metadata's SHA-256
            (``False``: ``--no-verify``).
        metadata: use this instead of the model's own metadata.
        described: what the user says about the model (``--task``, ``--labels``, ...): it
            completes or overrides the metadata the file carries, edgecnn's or Ultralytics'
            (:func:`~edgecnn.runtime.describe.resolve_metadata`).
        **options: fields of the runner's options (``top_k`` for classifiers,
            ``score_threshold``, ``iou_threshold``, ``max_detections``, ``classes`` for
            detectors, ...); ``None`` keeps the model's own value.

    Raises:
        UsageError: no metadata and no options describing the model, a folder instead of a
            file, an option the task lacks.
    """
    tfl = open_model(model, threads=threads, verify=verify)
    meta = metadata or resolve_metadata(tfl, described)
    cls = runner_class(meta.task)
    return cls(tfl, make_options(cls, meta.task, {"threads": threads, **options}),
               metadata=meta)
