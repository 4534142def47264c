"""scikit-learn's bundled 8x8 handwritten digits: the always-offline default dataset."""

from __future__ import annotations

import numpy as np

from edgecnn.errors import MissingDependencyError, UsageError
from edgecnn.lazy import require


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 N x 8 x 8 x 1, y int64). The 0..16 intensities are scaled to 0..255."""
    # scikit-learn alone, not the [train] extra: a Pi evaluating on digits needs no TensorFlow;
    # and without scikit-learn the quickstart's idx copy of the digits does (digits_idx/).
    try:
        datasets = require("sklearn.datasets", package="scikit-learn",
                           purpose="the digits dataset")
    except MissingDependencyError as err:
        raise UsageError(err.message, "install it with: pip install scikit-learn; or pass the "
                         "digits as a folder of idx files, e.g. --data quickstart-run/digits_idx "
                         "as the quickstart writes it") from None
    bunch = datasets.load_digits()
    images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images[..., None], bunch.target.astype(np.int64)
