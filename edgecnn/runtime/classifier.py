"""``Classifier``: uint8 image in, top-k categories out, driven by the model's metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.metadata import Metadata
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.preprocess import Preprocessor
from edgecnn.runtime.types import Category


@dataclass(frozen=True)
class ClassifierOptions:
    top_k: int = 5
    threads: int | None = None
    score_threshold: float = 0.0


class Classifier:
    """Image classifier over a ``.tflite`` with edgecnn metadata.

    ``classify()`` is ``preprocess`` + ``invoke`` + ``postprocess``; the three are public so the
    camera loop and the benchmark can time each stage.

    Example:
        clf = Classifier.from_file("digits_int8.tflite")
        print(clf.classify(cv2.imread("seven.png"))[0].label)
    """

    def __init__(self, model: TFLiteModel, options: ClassifierOptions = ClassifierOptions(),
                 metadata: Metadata | None = None):
        self.model = model
        self.options = options
        self.metadata = metadata or model.require_metadata()
        if self.metadata.task != "classify":
            raise UsageError(f"model task is {self.metadata.task!r}, not 'classify'",
                             "use Detector (or 'edgecnn predict', which picks the right one)")
        self.preprocessor = Preprocessor(self.metadata.input, model.input)
        out = model.outputs[0]
        n = int(np.prod(out.shape[1:]))
        if n != len(self.metadata.labels):
            raise UsageError(f"model has {n} outputs but metadata lists "
                             f"{len(self.metadata.labels)} labels")

    @classmethod
    def from_file(cls, path: str | os.PathLike, options: ClassifierOptions = ClassifierOptions()):
        return cls(TFLiteModel(path, threads=options.threads), options)

    def preprocess(self, image: np.ndarray, color: str = "BGR") -> np.ndarray:
        tensor, _ = self.preprocessor(image, color)
        return tensor

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        self.model.set_input(tensor)
        self.model.invoke()
        return self.model.get_output(0)

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """Per-class probabilities from the dequantized output."""
        s = raw.reshape(-1).astype(np.float32)
        act = self.metadata.output_activation
        if act == "none":
            e = np.exp(s - s.max())
            return e / e.sum()
        if act == "sigmoid" and (s.min() < 0 or s.max() > 1):
            return 1.0 / (1.0 + np.exp(-s))
        return s

    def postprocess(self, raw: np.ndarray) -> list[Category]:
        probs = self.scores(raw)
        k = max(1, min(self.options.top_k, probs.size))
        # A full stable sort (cheap for any label count) makes ties deterministic: equal scores
        # come out by class index, as docs/FORMAT.md and the Kotlin core expect.
        top = np.argsort(-probs, kind="stable")[:k]
        labels = self.metadata.labels
        return [Category(int(i), labels[i], float(probs[i])) for i in top
                if probs[i] >= self.options.score_threshold]

    def classify(self, image: np.ndarray, color: str = "BGR") -> list[Category]:
        return self.postprocess(self.infer(self.preprocess(image, color)))
