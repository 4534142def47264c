"""A constant-velocity Kalman filter on boxes, batched over all tracks at once.

State per track: ``[cx, cy, w, h, vcx, vcy, vw, vh]`` (centre, size and their per-frame
velocities); measurement: ``[cx, cy, w, h]``. The noise model is ByteTrack's / BoT-SORT's
(``KalmanFilterXYWH``): standard deviations proportional to the box's width and height, so one
set of weights works for near and far objects. Every function works on stacks of ``T`` tracks
(``mean (T, 8)``, ``cov (T, 8, 8)``) with numpy broadcasting: one call per frame, not one per
track, which is what keeps a frame of 50 tracks well under a millisecond in Python.
"""

from __future__ import annotations

import numpy as np

# Standard deviations relative to the box size (ByteTrack's values, tuned on MOT17).
STD_POSITION = 1.0 / 20.0
STD_VELOCITY = 1.0 / 160.0

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x_{k+1} = x_k + v_k (one frame per step)


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
    """New tracks from ``(T, 4)`` xywh measurements: zero velocity, wide velocity variance."""
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = np.concatenate([_size_std(z[:, 2:], 2 * STD_POSITION),
                          _size_std(z[:, 2:], 10 * STD_VELOCITY)], axis=1)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std ** 2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for every track."""
    if len(mean) == 0:
        return mean, cov
    wh = mean[:, 2:4]
    q = np.concatenate([_size_std(wh, STD_POSITION), _size_std(wh, STD_VELOCITY)], axis=1) ** 2
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T
    idx = np.arange(8)
    cov[:, idx, idx] += q
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray,
           measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``T`` tracks with one xywh measurement each (``(T, 4)``)."""
    if len(mean) == 0:
        return mean, cov
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
    r = _size_std(mean[:, 2:4], STD_POSITION) ** 2
    s = cov[:, :4, :4].copy()  # H P H^T with H = [I 0]
    idx = np.arange(4)
    s[:, idx, idx] += r
    # Kalman gain K = P H^T S^-1; S is symmetric, so K^T = S^-1 (H P).
    gain = np.linalg.solve(s, cov[:, :4, :]).transpose(0, 2, 1)
    innovation = z - mean[:, :4]
    mean = mean + np.einsum("tij,tj->ti", gain, innovation)
    cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return mean, cov
