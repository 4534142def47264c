"""``Classifier``: uint8 image in, top-k categories out, driven by the model's metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.metadata import Metadata
from edgecnn.runtime.runner import ModelSource, TaskRunner, register_runner
from edgecnn.runtime.task import Task
from edgecnn.runtime.types import Category


@dataclass(frozen=True)
class ClassifierOptions:
    """Attributes:
        top_k: categories per image, best first.
        threads: interpreter threads (used when the model is given as a path).
        score_threshold: drop categories whose probability is below this.
    """

    top_k: int = 5
    threads: int | None = None
    score_threshold: float = 0.0


def class_probabilities(values: np.ndarray, activation: str) -> np.ndarray:
    """Per-class probabilities from the dequantized output (``output.activation`` rules)."""
    s = values.reshape(-1).astype(np.float32)
    if activation == "none":
        e = np.exp(s - s.max())
        return e / e.sum()
    if activation == "sigmoid" and (s.min() < 0 or s.max() > 1):
        return 1.0 / (1.0 + np.exp(-s))
    return s


def top_k(probs: np.ndarray, labels: Sequence[str], k: int,
          score_threshold: float = 0.0) -> list[Category]:
    """The ``k`` best classes, ties by class index (docs/FORMAT.md); below the threshold dropped."""
    k = max(1, min(int(k), probs.size))
    # A full stable sort (cheap for any label count) makes ties deterministic: equal scores
    # come out by class index, as docs/FORMAT.md and the Kotlin core expect.
    top = np.argsort(-probs, kind="stable")[:k]
    return [Category(int(i), labels[i], float(probs[i])) for i in top
            if probs[i] >= score_threshold]


@register_runner(Task.CLASSIFY)
class Classifier(TaskRunner):
    """Image classifier over a ``.tflite`` with edgecnn metadata (the :class:`Runner` protocol).

    Example:
        clf = Classifier("digits_int8.tflite", ClassifierOptions(top_k=3))
        print(clf(cv2.imread("seven.png"))[0].label)
    """

    task = Task.CLASSIFY
    result_key = "categories"
    Options = ClassifierOptions
    options: ClassifierOptions

    def __init__(self, model: ModelSource, options: ClassifierOptions = ClassifierOptions(),
                 metadata: Metadata | None = None):
        super().__init__(model, options, metadata)
        self.output = self.model.outputs[0]
        n = int(np.prod(self.output.shape[1:]))
        if n != len(self.labels):
            raise UsageError(f"the classifier's output{'s' if len(self.model.outputs) > 1 else ''}"
                             f" {[list(o.shape) for o in self.model.outputs]} do not fit "
                             f"{len(self.labels)} labels: expected one output [1, "
                             f"{len(self.labels)}] (logits or probabilities)",
                             f"pass --labels with {n} names" if len(self.model.outputs) == 1
                             else "use --task detect with a --decoder for several outputs")

    @classmethod
    def from_file(cls, path: str | os.PathLike, options: ClassifierOptions = ClassifierOptions()):
        """Same as ``Classifier(path, options)``."""
        return cls(path, options)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Invoke; the raw output (integers for a quantized output, see :meth:`scores`)."""
        self.model.set_input(tensor)
        self.model.invoke()
        return self.model.get_output(0, dequantize=False)

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """Per-class probabilities from a raw (or already dequantized) output."""
        values = self.model.dequantize(raw, self.output) if raw.dtype.kind in "iu" else raw
        return class_probabilities(values, self.metadata.output_activation)

    def postprocess(self, raw: np.ndarray, context: Any = None) -> list[Category]:
        """Raw output -> top-k :class:`Category` list (``context`` is not needed)."""
        return top_k(self.scores(raw), self.labels, self.options.top_k,
                     self.options.score_threshold)

    def classify(self, image: np.ndarray, color: str = "BGR") -> list[Category]:
        """Same as calling the classifier."""
        return self(image, color)
