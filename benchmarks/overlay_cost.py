"""What the camera loop's drawing costs per frame, in CPU time of the drawing thread.

The camera loop draws boxes, labels and the stats band on every frame on the thread that runs
inference, so at ~0.5 ms per frame the drawing is part of what separates the loop from the
sequential bound (issue 16; py-spy put ~11% of that thread's samples in drawing). Variants, on
the same 640x480 frame with the same detections, interleaved in rounds:

    previous   ``cv2.rectangle(..., thickness=2)`` per box, a filled rectangle and anti-aliased
               text per label, and ``draw_stats`` (text rendered) every frame: the overlay
               before issue 16.
    current    ``overlay.draw_results`` (nested 1-pixel outlines, labels rendered once per
               distinct string and pasted) and ``StatsBand`` (text re-rendered at most every
               0.25 s, at a simulated 1000 FPS).

CPU time (``time.thread_time``) rather than wall time: it hardly moves when other jobs share
the machine.

    python benchmarks/overlay_cost.py --detections 3 --frames 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecnn.camera import overlay  # noqa: E402
from edgecnn.runtime.types import Category, Detection, Rect  # noqa: E402

FPS = 1000.0     # simulated frame rate for the stats band's refresh clock


def previous(image, detections, fps, stages, _now) -> None:
    for det in detections:
        b = det.box
        color = overlay.class_color(det.category.index)
        x, y = int(b.left), int(b.top)
        cv2.rectangle(image, (x, y), (int(b.right), int(b.bottom)), color, 2)
        _previous_label(image, f"{det.category.label} {det.category.score:.2f}", x, y, color)
    overlay.draw_stats(image, fps, stages)


def _previous_label(image, text, x, y, color, scale=0.5, thickness=1) -> None:
    """The label as it was drawn before: a filled rectangle and anti-aliased text per frame."""
    h_img, w_img = image.shape[:2]
    tw, th, base = overlay._text_size(text, scale, thickness)
    pad = 2
    x = max(0, min(int(x), w_img - tw - 2 * pad))
    if y - th - base - 2 * pad < 0:
        y = th + base + 2 * pad
    y = min(y, h_img)
    cv2.rectangle(image, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), color, cv2.FILLED)
    cv2.putText(image, text, (x + pad, y - base - pad), overlay.FONT, scale,
                overlay._text_color(color), thickness, cv2.LINE_AA)


def current_factory():
    band = overlay.StatsBand()

    def current(image, detections, fps, stages, now) -> None:
        overlay.draw_results(image, detections)
        band.draw(image, fps, stages, now=now)

    return current


def measure(draw, frame: np.ndarray, detections, frames: int) -> float:
    """Mean CPU microseconds per frame; stats values change every frame as in the loop."""
    image = frame.copy()
    start = time.thread_time()
    for i in range(frames):
        fps = 900.0 + (i % 97) * 1.37
        stages = {"pre": 0.15 + (i % 7) * 0.01, "infer": 0.30 + (i % 3) * 0.01,
                  "post": 0.07 + (i % 5) * 0.01}
        draw(image, detections, fps, stages, i / FPS)
    return (time.thread_time() - start) / frames * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detections", type=int, default=3)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    detections = [Detection(Rect(60 + 150 * (i % 4), 80 + 40 * (i // 4), 180 + 150 * (i % 4),
                                 400), Category(i % 3, "kangaroo", 0.5 + 0.01 * i))
                  for i in range(args.detections)]
    variants = {"previous": previous, "current": current_factory()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, draw in variants.items():
            times[name].append(measure(draw, frame, detections, args.frames))
    med = {name: round(statistics.median(v), 1) for name, v in times.items()}
    print(json.dumps({"cpu_us_per_frame_median": med,
                      "saved_us": round(med["previous"] - med["current"], 1),
                      "rounds": {k: [round(x, 1) for x in v] for k, v in times.items()},
                      "detections": args.detections, "load_avg": os.getloadavg(),
                      "command": " ".join(["python", "benchmarks/overlay_cost.py",
                                           *sys.argv[1:]])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
