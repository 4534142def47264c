"""Float-vs-quantized agreement: how much a converted model departs from its source model.

Pure numpy on outputs already computed, so it serves both the converter (Keras vs ``.tflite``)
and benchmarks (float ``.tflite`` vs int8 ``.tflite``) without importing TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.errors import UsageError


@dataclass(frozen=True)
class Agreement:
    """Agreement of a candidate model's outputs with a reference's on the same inputs.

    For classifiers ``top1`` is the fraction of samples where both pick the same class and
    ``max_prob_diff`` the largest absolute difference of any class probability; for detectors
    those are None and ``mean_abs_diff``/``max_abs_diff`` cover the raw head outputs.
    """

    samples: int
    mean_abs_diff: float
    max_abs_diff: float
    top1: float | None = None
    max_prob_diff: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        if self.top1 is not None:
            return (f"top-1 agreement {self.top1 * 100:.1f}% on {self.samples} held-out samples, "
                    f"max prob diff {self.max_prob_diff:.4f}")
        return (f"mean abs diff {self.mean_abs_diff:.4f} (max {self.max_abs_diff:.4f}) on "
                f"{self.samples} held-out samples")


def classification_agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Agreement of two ``(N, classes)`` probability arrays."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    cand = np.asarray(candidate, np.float64).reshape(len(candidate), -1)
    if ref.shape != cand.shape:
        raise UsageError(f"cannot compare outputs of shapes {ref.shape} and {cand.shape}")
    if len(ref) == 0:
        raise UsageError("no samples to compare")
    diff = np.abs(ref - cand)
    top1 = float(np.mean(ref.argmax(1) == cand.argmax(1)))
    return Agreement(len(ref), float(diff.mean()), float(diff.max()), top1, float(diff.max()))


def output_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]
                     ) -> Agreement:
    """Agreement of paired multi-output results (e.g. a detector's boxes and scores).

    ``reference[i]`` and ``candidate[i]`` hold output ``i`` stacked over samples.
    """
    if len(reference) != len(candidate) or not reference:
        raise UsageError("reference and candidate have different numbers of outputs")
    diffs = []
    for r, c in zip(reference, candidate):
        r, c = np.asarray(r, np.float64), np.asarray(c, np.float64)
        if r.shape != c.shape:
            raise UsageError(f"cannot compare outputs of shapes {r.shape} and {c.shape}")
        diffs.append(np.abs(r - c).reshape(-1))
    d = np.concatenate(diffs)
    return Agreement(len(reference[0]), float(d.mean()), float(d.max()))
