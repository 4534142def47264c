"""scikit-learn's bundled 8x8 handwritten digits: the always-offline default dataset."""

from __future__ import annotations

import numpy as np

from edgecnn.lazy import require


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 N x 8 x 8 x 1, y int64). The 0..16 intensities are scaled to 0..255."""
    # scikit-learn alone, not the [train] extra: a Pi evaluating on digits needs no TensorFlow.
    datasets = require("sklearn.datasets", package="scikit-learn", purpose="the digits dataset")
    bunch = datasets.load_digits()
    images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images[..., None], bunch.target.astype(np.int64)
