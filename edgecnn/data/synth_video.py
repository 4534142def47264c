"""Synthetic videos with moving shapes and per-frame ground truth, for camera-loop tests.

Objects of the synthetic shape classes glide over a static background and turn slowly; they
may pass in front of each other. With ``motion="bounce"`` they bounce off the frame edges and
keep their identity for the whole clip; with ``motion="cross"`` they traverse the frame in
straight lines and an object that has left is replaced by a new one entering from an edge (a
new track id), like traffic past a camera. Static ``occluders`` (textured pillars drawn over
everything) hide objects for a few frames. The ground truth of every frame (visible boxes in
pixel xyxy, classes, track ids) is returned and saved as JSON next to the video
(``clip.mp4`` -> ``clip.json``), together with the crossings of any counting ``lines``: how
many times, in each direction, the centre of each track's visible box crossed each line.
Only numpy and OpenCV are needed.

Example:
    truth = write_synthetic_video("clip.mp4", frames=60, size=(320, 240), seed=1)
    names, same_truth = load_video_truth("clip.json")
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.synth import (
    DEFAULT_CLASSES,
    _draw_clutter,
    _visible_boxes,
    check_classes,
    draw_object,
    object_polygon,
)
from edgecnn.data.synth_paint import background as paint_background
from edgecnn.data.synth_paint import random_color
from edgecnn.errors import UsageError
from edgecnn.fsutil import atomic_output, write_atomic

# Container suffix -> FourCC that opencv-python(-headless) can write without extra codecs.
CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
MOTIONS = ("bounce", "cross")


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """Ground truth of one frame: ``boxes`` float32 (K, 4) pixel xyxy of the visible pixels,
    ``classes`` int32 (K,), ``track_ids`` int32 (K,) stable across frames; ``objects``
    float32 (M, 4) ``[track_id, class, cx, cy]`` of every object in the scene, hidden or not,
    at its true centre (None when loaded from a file written before it existed)."""

    index: int
    boxes: np.ndarray
    classes: np.ndarray
    track_ids: np.ndarray
    objects: np.ndarray | None = None


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
    track_id: int = 0

    def polygon(self) -> np.ndarray:
        return object_polygon(self.shape, self.pos, self.radius, self.aspect, self.angle)

    def step(self, width: int, height: int, bounce: bool = True) -> None:
        self.pos = self.pos + self.vel
        self.angle = (self.angle + self.spin) % 360.0
        if not bounce:
            return
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


@dataclass(frozen=True)
class VideoScene:
    """What a synthetic clip shows (everything follows from ``seed``).

    Attributes:
        frames: number of frames.
        size: ``(width, height)``.
        seed: background, objects and motion follow from it.
        objects: number of objects on screen at once.
        classes: shape classes; ``classes[i]`` is class ``i`` in the truth.
        speed: mean object speed in pixels per frame.
        motion: ``bounce`` (objects stay, bouncing off the edges) or ``cross`` (objects
            traverse the frame; each one that leaves is replaced by a new track).
        occluders: static vertical pillars drawn over the objects, hiding them while behind.
        spin: largest turn per frame in degrees.
        edges: with ``cross``, the frame edges objects enter from (``l``, ``r``, ``t``,
            ``b``); ``lr`` makes all traffic roughly horizontal, so a vertical counting line
            is crossed steeply.
    """

    frames: int = 90
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    objects: int = 4
    classes: tuple[str, ...] = DEFAULT_CLASSES
    speed: float = 4.0
    motion: str = "bounce"
    occluders: int = 0
    spin: float = 3.0
    edges: str = "lrtb"

    def check(self) -> VideoScene:
        width, height = int(self.size[0]), int(self.size[1])
        if self.frames < 1 or width < 32 or height < 32:
            raise UsageError("a synthetic video needs frames >= 1 and size >= 32x32")
        if self.motion not in MOTIONS:
            raise UsageError(f"unknown motion {self.motion!r}", f"use one of {', '.join(MOTIONS)}")
        if not 1 <= self.objects <= 250 or self.occluders < 0:
            raise UsageError("a synthetic video needs 1..250 objects and occluders >= 0")
        if not self.edges or set(self.edges) - set("lrtb"):
            raise UsageError(f"edges {self.edges!r} must be letters of 'lrtb'")
        check_classes(self.classes)
        return self


def simulate_video(scene: VideoScene) -> Iterator[tuple[np.ndarray, FrameTruth]]:
    """``(BGR frame, truth)`` for each frame of ``scene``, rendered in memory."""
    scene.check()
    width, height = int(scene.size[0]), int(scene.size[1])
    rng = np.random.default_rng(scene.seed)
    background = _make_background(rng, width, height)
    pillars = _make_occluders(rng, scene.occluders, width, height)
    # The first objects cover every class once; the rest are random.
    classes = scene.classes
    labels = [i if i < len(classes) else int(rng.integers(len(classes)))
              for i in range(scene.objects)]
    bounce = scene.motion == "bounce"
    movers = [_new_mover(rng, cls, scene, width, height) for cls in labels]
    for i, mover in enumerate(movers):
        mover.track_id = i
        if not bounce:  # heading as if it had entered from one of the edges
            mover.vel = _entering_mover(rng, mover.cls, scene, width, height).vel
    next_id = len(movers)
    for index in range(scene.frames):
        frame, boxes, keep = _render(background, movers, pillars)
        objects = np.array([(m.track_id, m.cls, m.pos[0], m.pos[1]) for m in movers],
                           np.float32)
        yield frame, FrameTruth(index, boxes, objects[keep, 1].astype(np.int32),
                                objects[keep, 0].astype(np.int32), objects)
        for i, mover in enumerate(movers):
            mover.step(width, height, bounce)
            if not bounce and _left_frame(mover, width, height):
                movers[i] = _entering_mover(rng, mover.cls, scene, width, height)
                movers[i].track_id = next_id
                next_id += 1


def write_synthetic_video(path: str | Path, frames: int = 90, size: tuple[int, int] = (640, 480),
                          fps: float = 30.0, seed: int = 0, objects: int = 4,
                          classes: tuple[str, ...] = DEFAULT_CLASSES,
                          speed: float = 4.0, motion: str = "bounce", occluders: int = 0,
                          lines: Sequence[Sequence[float]] = (), spin: float = 3.0,
                          edges: str = "lrtb") -> list[FrameTruth]:
    """Write a video of moving shapes and return its per-frame ground truth.

    Args:
        path: output file; ``.mp4`` (mp4v) or ``.avi`` (MJPG). Written atomically.
        frames, size, seed, objects, classes, speed, motion, occluders, spin, edges: the
            :class:`VideoScene`.
        fps: frames per second stored in the container.
        lines: counting lines ``(x1, y1, x2, y2)`` in pixels; their crossings (see
            :func:`line_crossings`) are saved in the truth JSON under ``lines``.

    Returns:
        One :class:`FrameTruth` per frame; the same data is saved to :func:`truth_path`.
    """
    path = Path(path)
    scene = VideoScene(frames, (int(size[0]), int(size[1])), seed, objects, tuple(classes),
                       speed, motion, occluders, spin, edges).check()
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise UsageError(f"cannot write video {path.name}", "use a .mp4 or .avi file name")
    if fps <= 0:
        raise UsageError("a synthetic video needs fps > 0")
    width, height = scene.size
    truth: list[FrameTruth] = []
    with atomic_output(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*codec), float(fps),
                                 (width, height))
        if not writer.isOpened():
            raise UsageError(f"OpenCV cannot write {codec} video to {path}",
                             "try the other container (.avi uses MJPG)")
        try:
            for frame, frame_truth in simulate_video(scene):
                writer.write(frame)
                truth.append(frame_truth)
        finally:
            writer.release()
        _check_playback(tmp, frames, (width, height), codec)
    doc = _truth_json(path, truth, scene.classes, fps, width, height)
    doc["lines"] = [line_crossings(truth, line, scene.classes) for line in lines]
    write_atomic(truth_path(path), json.dumps(doc))
    return truth


def line_crossings(truth: Sequence[FrameTruth], line: Sequence[float],
                   names: Sequence[str] = DEFAULT_CLASSES) -> dict:
    """Ground-truth crossings of a line by the true centres of the objects.

    A crossing is what a tracker can see: between two frames in which the object is visible
    (any frames in between, where it is hidden, are bridged), its centre moves along a
    straight segment; a crossing is counted when that segment meets the line segment and the
    centre changes side. An object hidden behind a pillar while it crosses counts; one hidden
    behind another object for the whole time does not. ``in`` is from the left of the line to its right as
    seen looking from ``(x1, y1)`` to ``(x2, y2)`` in image coordinates (y down): a
    left-to-right horizontal line counts objects moving down as ``in``. A centre exactly on
    the line keeps the side it had.

    Returns:
        ``{"line": [x1, y1, x2, y2], "in": n, "out": n, "by_class": {name: {"in", "out"}},
        "crossings": [[frame, track_id, "in" | "out"], ...]}``.
    """
    x1, y1, x2, y2 = (float(v) for v in line)
    last: dict[int, tuple[float, float, float]] = {}   # track -> (x, y, side)
    counts = {"in": 0, "out": 0}
    by_class: dict[str, dict[str, int]] = {}
    crossings: list[list[int | str]] = []
    for ft in truth:
        if ft.objects is None:
            raise UsageError("this ground truth has no object centres",
                             "write the clip again with this edgecnn")
        visible = set(ft.track_ids.tolist())
        for tid, cls, cx, cy in ft.objects.tolist():
            tid, cls = int(tid), int(cls)
            if tid not in visible:
                continue
            side = (x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)
            prev = last.get(tid)
            if prev is not None and side == 0:
                side = prev[2]
            if prev is not None and prev[2] * side < 0 and _segments_cross(
                    (prev[0], prev[1], cx, cy), (x1, y1, x2, y2)):
                direction = "in" if side > 0 else "out"
                counts[direction] += 1
                per = by_class.setdefault(names[cls], {"in": 0, "out": 0})
                per[direction] += 1
                crossings.append([ft.index, tid, direction])
            last[tid] = (cx, cy, side)
    return {"line": [x1, y1, x2, y2], "in": counts["in"], "out": counts["out"],
            "by_class": by_class, "crossings": crossings}


def jittered_truth(truth: Sequence[FrameTruth], rng: np.random.Generator, jitter: float = 0.05,
                   drop: float = 0.1) -> Iterator[tuple[FrameTruth, np.ndarray, np.ndarray,
                                                         np.ndarray]]:
    """Ground truth as an imperfect detector would report it, for scoring trackers.

    Each box coordinate moves by N(0, ``jitter`` x the box's width or height) and a share
    ``drop`` of the boxes is missing at random; scores are uniform in 0.5..1.

    Yields:
        ``(frame truth, boxes (K, 4), scores (K,), classes (K,))`` per frame.
    """
    for ft in truth:
        boxes = ft.boxes.astype(np.float64)
        keep = rng.random(len(boxes)) >= drop
        wh = boxes[:, 2:] - boxes[:, :2]
        boxes = boxes + rng.normal(0, jitter, boxes.shape) * np.concatenate([wh, wh], 1)
        yield ft, boxes[keep], rng.uniform(0.5, 1.0, int(keep.sum())), ft.classes[keep]


def _segments_cross(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether segment ``a`` meets segment ``b`` (endpoints included)."""
    def orient(px, py, qx, qy, rx, ry):
        return (qx - px) * (ry - py) - (qy - py) * (rx - px)

    d1 = orient(b[0], b[1], b[2], b[3], a[0], a[1])
    d2 = orient(b[0], b[1], b[2], b[3], a[2], a[3])
    d3 = orient(a[0], a[1], a[2], a[3], b[0], b[1])
    d4 = orient(a[0], a[1], a[2], a[3], b[2], b[3])
    return d1 * d2 <= 0 and d3 * d4 <= 0


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
                        np.asarray(f["classes"], np.int32), np.asarray(f["track_ids"], np.int32),
                        None if f.get("objects") is None
                        else np.asarray(f["objects"], np.float32).reshape(-1, 4))
             for f in doc["frames"]]
    return tuple(doc["names"]), truth


def _make_background(rng, width: int, height: int) -> np.ndarray:
    side = max(width, height)
    kind = ("gradient", "noise", "stripes")[int(rng.integers(3))]
    image = paint_background(rng, side, "default", kind)
    image = cv2.addWeighted(image, 0.7, paint_background(rng, side, "default", "noise"), 0.3, 0)
    idmap = np.zeros((side, side), np.uint8)
    _draw_clutter(image, idmap, rng, "default", (), 4)
    return np.ascontiguousarray(image[:height, :width])


def _new_mover(rng, cls: int, scene: VideoScene, width: int, height: int) -> _Mover:
    radius = min(width, height) * rng.uniform(0.06, 0.14)
    angle = rng.uniform(0, 2 * math.pi)
    velocity = np.array([math.cos(angle), math.sin(angle)]) * scene.speed * rng.uniform(0.5, 1.5)
    margin = radius * 1.3
    pos = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
    return _Mover(shape=scene.classes[cls], cls=cls, radius=radius,
                  aspect=math.exp(rng.uniform(-0.3, 0.3)), angle=rng.uniform(0, 360),
                  spin=rng.uniform(-scene.spin, scene.spin), pos=pos, vel=velocity,
                  color=random_color(rng), style=("solid", "outlined")[int(rng.integers(2))],
                  seed=int(rng.integers(2**31)))


def _entering_mover(rng, cls: int, scene: VideoScene, width: int, height: int) -> _Mover:
    """A new object just outside a random edge, heading across the frame."""
    mover = _new_mover(rng, cls, scene, width, height)
    edge = "lrtb".index(scene.edges[int(rng.integers(len(scene.edges)))])
    heading = (0.0, math.pi, math.pi / 2, -math.pi / 2)[edge]  # from left, right, top, bottom
    heading += rng.uniform(-0.5, 0.5)
    speed = float(np.hypot(*mover.vel))
    mover.vel = np.array([math.cos(heading), math.sin(heading)]) * speed
    r = mover.radius * 1.6
    along = (rng.uniform(r, height - r), rng.uniform(r, width - r))
    mover.pos = np.array([(-r, along[0]), (width + r, along[0]), (along[1], -r),
                          (along[1], height + r)][edge], dtype=np.float64)
    return mover


def _left_frame(mover: _Mover, width: int, height: int) -> bool:
    """Fully outside the frame and moving away from it."""
    pts = mover.polygon()
    lo, hi = pts.min(0), pts.max(0)
    return bool((hi[0] < 0 and mover.vel[0] <= 0) or (lo[0] > width and mover.vel[0] >= 0)
                or (hi[1] < 0 and mover.vel[1] <= 0) or (lo[1] > height and mover.vel[1] >= 0))


def _make_occluders(rng, count: int, width: int, height: int) -> list[tuple[int, int, np.ndarray]]:
    """Static textured pillars ``(x0, x1, texture)`` spread over the width."""
    pillars = []
    for i in range(count):
        w = max(4, int(width * rng.uniform(0.05, 0.09)))
        centre = (i + 0.5) / count * width + rng.uniform(-0.1, 0.1) * width / count
        x0 = int(np.clip(centre - w / 2, 0, width - w))
        texture = paint_background(rng, max(w, height), "default", "stripes")[:height, :w]
        pillars.append((x0, x0 + w, np.ascontiguousarray(texture)))
    return pillars


def _render(background: np.ndarray, movers: list[_Mover],
            pillars: Sequence[tuple[int, int, np.ndarray]] = ()):
    frame = background.copy()
    idmap = np.zeros(frame.shape[:2], np.uint8)
    regions = []
    for i, mover in enumerate(movers):
        pts = mover.polygon()
        draw_object(frame, idmap, i + 1, pts, mover.color, mover.style,
                    np.random.default_rng(mover.seed), thickness=4)
        regions.append(np.concatenate([pts.min(0) - 4, pts.max(0) + 4]).astype(np.float32))
    for x0, x1, texture in pillars:
        frame[:, x0:x1] = texture
        idmap[:, x0:x1] = 0
    boxes, keep = _visible_boxes(idmap, regions)
    return frame, boxes, keep


def _truth_json(path: Path, truth: list[FrameTruth], classes, fps, width, height) -> dict:
    return {
        "video": path.name, "fps": fps, "width": width, "height": height,
        "names": list(classes), "box_format": "xyxy pixels, visible part of each object",
        "frames": [{"index": t.index, "boxes": np.round(t.boxes, 2).tolist(),
                    "classes": t.classes.tolist(), "track_ids": t.track_ids.tolist(),
                    "objects": np.round(t.objects, 2).tolist() if t.objects is not None else None}
                   for t in truth],
    }
