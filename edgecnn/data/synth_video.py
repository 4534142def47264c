"""Synthetic videos with moving shapes and per-frame ground truth, for camera-loop tests.

Objects of the synthetic shape classes glide over a static background, bounce off the frame
edges and turn slowly; they may pass in front of each other. The ground truth of every frame
(visible boxes in pixel xyxy, classes, track ids) is returned and saved as JSON next to the
video (``clip.mp4`` -> ``clip.json``). Only numpy and OpenCV are needed.

Example:
    truth = write_synthetic_video("clip.mp4", frames=60, size=(320, 240), seed=1)
    names, same_truth = load_video_truth("clip.json")
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.synth import (
    DEFAULT_CLASSES,
    _background,
    _draw_clutter,
    _random_color,
    _visible_boxes,
    check_classes,
    draw_object,
    object_polygon,
)
from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_output, write_atomic

# Container suffix -> FourCC that opencv-python(-headless) can write without extra codecs.
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """Ground truth of one frame: ``boxes`` float32 (K, 4) pixel xyxy of the visible pixels,
    ``classes`` int32 (K,), ``track_ids`` int32 (K,) stable across frames."""

    index: int
    boxes: np.ndarray
    classes: np.ndarray
    track_ids: np.ndarray


@dataclass
class _Mover:
    shape: str
    cls: int
    radius: float
    aspect: float
    angle: float
    spin: float
    pos: np.ndarray
    vel: np.ndarray
    color: tuple[int, int, int]
    style: str
    seed: int  # re-seeds draw_object each frame so its random choices do not flicker

    def polygon(self) -> np.ndarray:
        return object_polygon(self.shape, self.pos, self.radius, self.aspect, self.angle)

    def step(self, width: int, height: int) -> None:
        self.pos = self.pos + self.vel
        self.angle = (self.angle + self.spin) % 360.0
        pts = self.polygon()
        lo, hi = pts.min(0), pts.max(0)
        # Bounce: reflect the velocity and push the object back inside the frame.
        for axis, limit in ((0, width), (1, height)):
            if lo[axis] < 0:
                self.vel[axis] = abs(self.vel[axis])
                self.pos[axis] -= lo[axis]
            elif hi[axis] > limit:
                self.vel[axis] = -abs(self.vel[axis])
                self.pos[axis] -= hi[axis] - limit


def truth_path(video_path: str | Path) -> Path:
    """Where the ground-truth JSON of a synthetic video lives."""
    return Path(video_path).with_suffix(".json")


def write_synthetic_video(path: str | Path, frames: int = 90, size: tuple[int, int] = (640, 480),
                          fps: float = 30.0, seed: int = 0, objects: int = 4,
                          classes: tuple[str, ...] = DEFAULT_CLASSES,
                          speed: float = 4.0) -> list[FrameTruth]:
    """Write a video of moving shapes and return its per-frame ground truth.

    Args:
        path: output file; ``.mp4`` (mp4v) or ``.avi`` (MJPG). Written atomically.
        frames: number of frames.
        size: ``(width, height)``.
        fps: frames per second stored in the container.
        seed: everything (background, objects, motion) follows from it.
        objects: number of moving objects.
        classes: shape classes; ``classes[i]`` is class ``i`` in the truth.
        speed: mean object speed in pixels per frame.

    Returns:
        One :class:`FrameTruth` per frame; the same data is saved to :func:`truth_path`.
    """
    path = Path(path)
    classes = check_classes(classes)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise UsageError(f"cannot write video {path.name}", "use a .mp4 or .avi file name")
    width, height = int(size[0]), int(size[1])
    if frames < 1 or width < 32 or height < 32 or fps <= 0:
        raise UsageError("a synthetic video needs frames >= 1, size >= 32x32 and fps > 0")
    rng = np.random.default_rng(seed)
    background = _make_background(rng, width, height)
    # The first objects cover every class once; the rest are random.
    labels = [i if i < len(classes) else int(rng.integers(len(classes))) for i in range(objects)]
    movers = [_new_mover(rng, cls, classes, width, height, speed) for cls in labels]
    truth: list[FrameTruth] = []
    with atomic_output(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps),
                                 (width, height))
        if not writer.isOpened():
            raise UsageError(f"OpenCV cannot write {codec} video to {path}",
                             "try the other container (.avi uses MJPG)")
        try:
            for index in range(frames):
                frame, boxes, keep = _render(background, movers)
                writer.write(frame)
                truth.append(FrameTruth(index, boxes,
                                        np.array([m.cls for m in movers], np.int32)[keep],
                                        np.flatnonzero(keep).astype(np.int32)))
                for mover in movers:
                    mover.step(width, height)
        finally:
            writer.release()
        _check_playback(tmp, frames, (width, height), codec)
    write_atomic(truth_path(path), json.dumps(_truth_json(path, truth, classes, fps, width,
                                                          height)))
    return truth


def _check_playback(path: Path, frames: int, size: tuple[int, int], codec: str) -> None:
    """Fail now, not in a later test, if OpenCV cannot read back what it wrote."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read()
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if not ok or frame.shape[1::-1] != size or count != frames:
        raise UsageError(f"the {codec} video OpenCV wrote does not play back ({count} of "
                         f"{frames} frames)", "try the other container (.avi uses MJPG)")


def load_video_truth(json_path: str | Path) -> tuple[tuple[str, ...], list[FrameTruth]]:
    """Read the JSON written by :func:`write_synthetic_video`: ``(names, truth per frame)``."""
    doc = json.loads(Path(json_path).read_text(encoding="utf-8"))
    truth = [FrameTruth(int(f["index"]), np.asarray(f["boxes"], np.float32).reshape(-1, 4),
                        np.asarray(f["classes"], np.int32), np.asarray(f["track_ids"], np.int32))
             for f in doc["frames"]]
    return tuple(doc["names"]), truth


def _make_background(rng, width: int, height: int) -> np.ndarray:
    side = max(width, height)
    kind = ("gradient", "noise", "stripes")[int(rng.integers(3))]
    image = _background(rng, side, "default", kind)
    image = cv2.addWeighted(image, 0.7, _background(rng, side, "default", "noise"), 0.3, 0)
    idmap = np.zeros((side, side), np.uint8)
    _draw_clutter(image, idmap, rng, "default", (), 4)
    return np.ascontiguousarray(image[:height, :width])


def _new_mover(rng, cls: int, classes, width: int, height: int, speed: float) -> _Mover:
    radius = min(width, height) * rng.uniform(0.06, 0.14)
    angle = rng.uniform(0, 2 * math.pi)
    velocity = np.array([math.cos(angle), math.sin(angle)]) * speed * rng.uniform(0.5, 1.5)
    margin = radius * 1.3
    pos = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
    return _Mover(shape=classes[cls], cls=cls, radius=radius,
                  aspect=math.exp(rng.uniform(-0.3, 0.3)), angle=rng.uniform(0, 360),
                  spin=rng.uniform(-3, 3), pos=pos, vel=velocity,
                  color=_random_color(rng), style=("solid", "outlined")[int(rng.integers(2))],
                  seed=int(rng.integers(2**31)))


def _render(background: np.ndarray, movers: list[_Mover]):
    frame = background.copy()
    idmap = np.zeros(frame.shape[:2], np.uint8)
    regions = []
    for i, mover in enumerate(movers):
        pts = mover.polygon()
        draw_object(frame, idmap, i + 1, pts, mover.color, mover.style,
                    np.random.default_rng(mover.seed), thickness=4)
        regions.append(np.concatenate([pts.min(0) - 4, pts.max(0) + 4]).astype(np.float32))
    boxes, keep = _visible_boxes(idmap, regions)
    return frame, boxes, keep


def _truth_json(path: Path, truth: list[FrameTruth], classes, fps, width, height) -> dict:
    return {
        "video": path.name, "fps": fps, "width": width, "height": height,
        "names": list(classes), "box_format": "xyxy pixels, visible part of each object",
        "frames": [{"index": t.index, "boxes": np.round(t.boxes, 2).tolist(),
                    "classes": t.classes.tolist(), "track_ids": t.track_ids.tolist()}
                   for t in truth],
    }
