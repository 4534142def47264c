"""Calibration images a detector answers with extreme values, left out of int8 calibration.

A trained detector answers a few images (saturated flat backgrounds, mostly) with activations
that grow through its residual stages: class logits of -2000 where every other image stays
within +-5. Full-range calibration takes the int8 scale of the class convolutions from those
images, the step between two int8 values becomes larger than the whole useful logit range, and
the int8 file loses its ranking (val mAP@0.5 0.094 in Keras, 0.0007 in int8 on one quickstart
run). Leaving those images out restores it (0.120): they then clip, which also removes the
float model's false positives on them. docs/DECISIONS.md has the measurements.
"""

from __future__ import annotations

import numpy as np

LOGITS_LAYER = "scores_logits"   # the detector head's pre-sigmoid class output
OUTLIER_FACTOR = 8.0             # an image is an outlier above this many times the median
BATCH = 32


def image_logit_peaks(kmodel, x: np.ndarray) -> np.ndarray | None:
    """Per image, the largest ``|class logit|`` of the detector (None: no such layer)."""
    from edgecnn.lazy import keras

    try:
        layer = kmodel.get_layer(LOGITS_LAYER)
    except ValueError:
        return None
    probe = keras().Model(kmodel.inputs, layer.output)
    logits = np.asarray(probe.predict(x, batch_size=BATCH, verbose=0))
    return np.abs(logits).reshape(len(x), -1).max(axis=1)


def outlier_mask(peaks: np.ndarray, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """True for the images whose peak exceeds ``factor`` times the median peak.

    Never more than half of the images: if the median itself is extreme, nothing is dropped.
    """
    if len(peaks) == 0:
        return np.zeros(0, bool)
    median = float(np.median(peaks))
    mask = peaks > factor * max(median, 1e-6)
    if mask.sum() * 2 > len(peaks):
        return np.zeros(len(peaks), bool)
    return mask


def robust_detector_calibration(kmodel, x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``x`` without the detector's outlier images, and a note saying what was left out."""
    peaks = image_logit_peaks(kmodel, x)
    if peaks is None:
        return x, None
    mask = outlier_mask(peaks)
    if not mask.any():
        return x, None
    note = (f"calibration: {int(mask.sum())} of {len(x)} images left out: their class logits "
            f"reach {peaks[mask].max():.0f}, more than {OUTLIER_FACTOR:g}x the median "
            f"{np.median(peaks):.1f} (they would set the int8 scale for every image)")
    return x[~mask], note
