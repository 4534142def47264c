"""Association of tracks with detections: pairwise IoU and a greedy assignment.

ByteTrack solves each association with the Jonker-Volgenant solver of ``lap``; the device
install has neither ``lap`` nor scipy. Greedy matching by descending IoU gives the optimal
assignment whenever each track has one clearly best detection, which is the common case at
camera frame rates; ``benchmarks/serve_track.py`` compares it with scipy's optimal
``linear_sum_assignment`` on the synthetic clips (docs/DECISIONS.md, "Tracker association").
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of xyxy boxes (zero-area union -> 0)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(score: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(rows, cols)`` taken by descending ``score``, each row and column at most once.

    Only pairs with ``score >= threshold`` are considered; ties keep row-major order, so the
    result is deterministic.

    Returns:
        Two int arrays of equal length: matched row and column indices.
    """
    rows, cols = np.nonzero(score >= threshold)
    if rows.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    order = np.argsort(-score[rows, cols], kind="stable")
    rows, cols = rows[order], cols[order]
    # Fast path: no row or column appears twice among the candidates.
    if np.unique(rows).size == rows.size and np.unique(cols).size == cols.size:
        return rows.astype(np.int64), cols.astype(np.int64)
    used_r = np.zeros(score.shape[0], bool)
    used_c = np.zeros(score.shape[1], bool)
    keep = []
    for k, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        if not used_r[r] and not used_c[c]:
            used_r[r] = used_c[c] = True
            keep.append(k)
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)
