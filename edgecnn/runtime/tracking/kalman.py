"""A constant-velocity Kalman filter on boxes, batched over all tracks at once.

State per track: ``[cx, cy, w, h]`` and their per-frame velocities; measurement:
``[cx, cy, w, h]``. The noise model is ByteTrack's / BoT-SORT's (``KalmanFilterXYWH``):
standard deviations proportional to the box's width and height, so one set of weights works
for near and far objects.

With that model every coordinate evolves independently of the others: the transition couples
a coordinate only with its own velocity, and the initial, process and measurement noise are
diagonal. The 8x8 covariance is therefore four independent 2x2 blocks, and this module keeps
just those: ``cov (T, 4, 3)`` holds, per track and coordinate, ``[var(pos), cov(pos, vel),
var(vel)]``. Predict and update become a dozen element-wise operations on ``(T, 4)`` arrays
(no matrix products, no solve), the same numbers as the full matrix form
(``tests/test_tracking.py`` checks it against it), which keeps a frame of 50 tracks cheap in
Python.
"""

from __future__ import annotations

import numpy as np

# Standard deviations relative to the box size (ByteTrack's values, tuned on MOT17).
STD_POSITION = 1.0 / 20.0
STD_VELOCITY = 1.0 / 160.0


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corner boxes to centre, width, height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + wh / 2, wh], axis=1)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Inverse of :func:`xyxy_to_xywh` (works on the first 4 columns of a state)."""
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def _size_std(wh: np.ndarray, weight: float) -> np.ndarray:
    """``(T, 4)`` standard deviations ``weight * [w, h, w, h]``; sizes floored at 1 pixel."""
    wh = np.maximum(wh, 1.0)
    return weight * np.concatenate([wh, wh], axis=1)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from ``(T, 4)`` xywh measurements: zero velocity, wide velocity variance.

    Returns:
        ``mean (T, 8)`` (positions then velocities) and ``cov (T, 4, 3)``.
    """
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    cov = np.zeros((len(z), 4, 3))
    cov[:, :, 0] = _size_std(z[:, 2:], 2 * STD_POSITION) ** 2
    cov[:, :, 2] = _size_std(z[:, 2:], 10 * STD_VELOCITY) ** 2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for every track."""
    if len(mean) == 0:
        return mean, cov
    wh = mean[:, 2:4]
    pp, pv, vv = cov[:, :, 0], cov[:, :, 1], cov[:, :, 2]
    out = np.empty_like(cov)
    out[:, :, 0] = pp + 2 * pv + vv + _size_std(wh, STD_POSITION) ** 2
    out[:, :, 1] = pv + vv
    out[:, :, 2] = vv + _size_std(wh, STD_VELOCITY) ** 2
    mean = mean.copy()
    mean[:, :4] += mean[:, 4:]
    return mean, out


def update(mean: np.ndarray, cov: np.ndarray,
           measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``T`` tracks with one xywh measurement each (``(T, 4)``)."""
    if len(mean) == 0:
        return mean, cov
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    pp, pv, vv = cov[:, :, 0], cov[:, :, 1], cov[:, :, 2]
    s = pp + _size_std(mean[:, 2:4], STD_POSITION) ** 2   # innovation variance
    gain_p, gain_v = pp / s, pv / s
    innovation = z - mean[:, :4]
    mean = mean.copy()
    mean[:, :4] += gain_p * innovation
    mean[:, 4:] += gain_v * innovation
    out = np.empty_like(cov)
    out[:, :, 0] = pp - gain_p * pp
    out[:, :, 1] = pv - gain_p * pv
    out[:, :, 2] = vv - gain_v * pv
    return mean, out


def full_covariance(cov: np.ndarray) -> np.ndarray:
    """``(T, 8, 8)`` covariance in state order ``[cx, cy, w, h, vcx, vcy, vw, vh]``."""
    full = np.zeros((len(cov), 8, 8))
    idx = np.arange(4)
    full[:, idx, idx] = cov[:, :, 0]
    full[:, idx, idx + 4] = full[:, idx + 4, idx] = cov[:, :, 1]
    full[:, idx + 4, idx + 4] = cov[:, :, 2]
    return full
