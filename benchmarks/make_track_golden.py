"""Write ``tests/golden/track_golden.json``: the Python tracker's output on a fixed sequence.

The Kotlin core (``android_demo/core``, ``Tracker.kt``) replays the same detections and must
produce the same track IDs, the same detection per track and the same filtered boxes. The
sequence is a synthetic traffic clip (objects entering and leaving, a pillar hiding them) with
ground-truth boxes jittered and 10% dropped, plus low-score clutter, so every association
stage, confirmation, loss, recovery and removal happens. A test rebuilds the JSON in memory
and fails if the committed file differs.

Usage:
    python benchmarks/make_track_golden.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.data.synth_video import VideoScene, jittered_truth, simulate_video  # noqa: E402
from edgecnn.runtime.tracking import ByteTracker, TrackerOptions  # noqa: E402

OUT = ROOT / "tests" / "golden" / "track_golden.json"
SIZE = (320, 240)


def _sequence(frames: int = 150, seed: int = 7):
    scene = VideoScene(frames=frames, size=SIZE, seed=seed, objects=5, speed=4.0,
                       motion="cross", occluders=1)
    truth = [ft for _, ft in simulate_video(scene)]
    rng = np.random.default_rng(seed)
    for _, boxes, scores, classes in jittered_truth(truth, rng):
        # Partly hidden objects score low: a few true boxes drop below the high threshold.
        scores = np.where(rng.random(len(scores)) < 0.15, rng.uniform(0.15, 0.45, len(scores)),
                          scores)
        clutter = int(rng.integers(0, 3))
        xy = rng.uniform(0, 280, (clutter, 2))
        boxes = np.vstack([boxes, np.hstack([xy, xy + rng.uniform(10, 40, (clutter, 2))])])
        scores = np.concatenate([scores, rng.uniform(0.1, 0.4, clutter)])
        classes = np.concatenate([classes, rng.integers(0, 4, clutter)])
        yield np.round(boxes, 3), np.round(scores, 4), classes.astype(np.int64)


def build() -> dict:
    options = TrackerOptions(max_lost_frames=10)
    tracker = ByteTracker(options)
    frames = []
    for boxes, scores, classes in _sequence():
        out = tracker.update(boxes, scores, classes, image_size=SIZE)
        frames.append({
            "boxes": boxes.ravel().tolist(), "scores": scores.tolist(),
            "classes": classes.tolist(),
            "ids": out.ids.tolist(), "det_index": out.det_index.tolist(),
            "filtered": out.boxes.ravel().tolist(), "lost": list(out.lost),
            "removed": list(out.removed)})
    return {"schema": "edgecnn.track_golden/1", "generator": "benchmarks/make_track_golden.py",
            "options": asdict(options), "image_size": list(SIZE),
            "tolerances": {"box": 1e-6}, "frames": frames}


def text() -> str:
    return json.dumps(build(), separators=(",", ":")) + "\n"


def main() -> int:
    from edgecnn.fsutil import write_atomic

    write_atomic(OUT, text())
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
