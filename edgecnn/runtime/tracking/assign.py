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
    # Column views broadcast (N, 1) against (M,): few temporaries, in-place clipping.
    iw = np.minimum(a[:, 2:3], b[:, 2]) - np.maximum(a[:, 0:1], b[:, 0])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(a[:, 3:4], b[:, 3]) - np.maximum(a[:, 1:2], b[:, 1])
    np.maximum(ih, 0.0, out=ih)
    iw *= ih
    area_a = (a[:, 2:3] - a[:, 0:1]) * (a[:, 3:4] - a[:, 1:2])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - iw
    # An empty union has an empty intersection too: 0 / tiny = 0.
    return iw / np.maximum(union, 1e-12)


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
    if np.bincount(rows).max() == 1 and np.bincount(cols).max() == 1:
        return rows.astype(np.int64), cols.astype(np.int64)
    used_r = np.zeros(score.shape[0], bool)
    used_c = np.zeros(score.shape[1], bool)
    keep = []
    for k, (r, c) in enumerate(zip(rows.tolist(), cols.tolist())):
        if not used_r[r] and not used_c[c]:
            used_r[r] = used_c[c] = True
            keep.append(k)
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)
