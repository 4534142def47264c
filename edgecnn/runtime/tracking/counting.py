"""Counting by track: crossings of lines and occupancy / dwell time of polygon zones.

A track is counted at one point, the centre of its Kalman-filtered box (steadier than the raw
detection, so a box that jitters on a line does not count twice). Coordinates are image
pixels, or fractions of the width and height when every value is within 0..1 (``0.5,0,0.5,1``
is a vertical line through the middle of any frame size); fractions are resolved on the first
frame.

Line directions: ``in`` is a move from the left of the line to its right as seen looking
from its first point to its second in image coordinates (y down); for a line drawn left to
right, ``in`` is downwards. A track whose centre moves between two frames along a segment that
meets the line and changes side counts once; frames in which the track was not seen are
bridged (the segment runs from where it was last seen).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np

from edgecnn.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


class EventKind(str, Enum):
    CROSS = "cross"
    ENTER = "enter"
    EXIT = "exit"


@dataclass(frozen=True)
class Event:
    """Something a track did: crossed a line, entered or left a zone.

    Attributes:
        kind: ``cross``, ``enter`` or ``exit``.
        frame: index of the frame it happened in; ``t`` its time in seconds since the start.
        track_id, class_index, label: the track and its class.
        name: the line's or zone's name.
        direction: ``in`` or ``out`` for a crossing, else empty.
        dwell_s: seconds spent in the zone, for ``exit``.
    """

    kind: EventKind
    frame: int
    t: float
    track_id: int
    class_index: int
    label: str
    name: str
    direction: str = ""
    dwell_s: float | None = None

    def to_dict(self) -> dict:
        where = "line" if self.kind is EventKind.CROSS else "zone"
        out = {"type": self.kind.value, "frame": self.frame, "t": round(self.t, 4),
               "track_id": self.track_id, "index": self.class_index, "label": self.label,
               where: self.name}
        if self.direction:
            out["direction"] = self.direction
        if self.dwell_s is not None:
            out["dwell_s"] = round(self.dwell_s, 3)
        return out


@dataclass(frozen=True)
class Shape:
    """A named line (2 points) or zone (>= 3 points); ``fractions``: coordinates in 0..1."""

    name: str
    points: tuple[tuple[float, float], ...]
    fractions: bool = False

    def resolve(self, size: tuple[int, int]) -> np.ndarray:
        """``(K, 2)`` pixel coordinates for a frame of ``(width, height)``."""
        pts = np.asarray(self.points, dtype=np.float64)
        return pts * np.asarray(size, np.float64) if self.fractions else pts


def parse_shape(spec: str, kind: str, default_name: str) -> Shape:
    """``[NAME=]x1,y1,x2,y2[,...]`` from the command line as a :class:`Shape`.

    Args:
        spec: the option's value.
        kind: ``line`` (exactly 2 points) or ``zone`` (a polygon of 3 or more points).
        default_name: used when ``spec`` has no ``NAME=``.

    Raises:
        UsageError: not numbers, wrong count, a degenerate line or polygon, or a bad name.
    """
    option = f"--{kind}"
    name, _, coords = spec.rpartition("=")
    name = name.strip() or default_name
    if not _NAME.match(name):
        raise UsageError(f"{option} name {name!r} is not a simple name",
                         "use letters, digits, _ . - (up to 32), e.g. door=0,240,640,240")
    try:
        values = [float(v) for v in coords.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise UsageError(f"{option} {spec!r} is not a list of numbers",
                         f"write {option} x1,y1,x2,y2{',...' if kind == 'zone' else ''}"
                         ) from None
    if not all(math.isfinite(v) for v in values):
        raise UsageError(f"{option} {spec!r} has a non-finite number")
    if kind == "line" and len(values) != 4:
        raise UsageError(f"{option} needs 4 numbers x1,y1,x2,y2, got {len(values)}",
                         "e.g. --line 0,240,640,240")
    if kind == "zone" and (len(values) < 6 or len(values) % 2):
        raise UsageError(f"{option} needs an even count of at least 6 numbers (3 points), "
                         f"got {len(values)}", "e.g. --zone 100,100,300,100,300,300,100,300")
    points = tuple(zip(values[0::2], values[1::2]))
    fractions = all(0.0 <= v <= 1.0 for v in values)
    pts = np.asarray(points)
    if kind == "line" and np.allclose(pts[0], pts[1]):
        raise UsageError(f"{option} {spec!r} has two equal points", "a line needs length")
    if kind == "zone" and abs(_polygon_area(pts)) <= 0.0:
        raise UsageError(f"{option} {spec!r} encloses no area",
                         "give the corners of a polygon in order")
    if any(v < 0 for v in values):
        raise UsageError(f"{option} {spec!r} has a negative coordinate",
                         "use image pixels (>= 0) or fractions 0..1")
    return Shape(name, points, fractions)


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which ``(N, 2)`` points lie inside ``polygon`` (even-odd rule)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = points[:, :1], points[:, 1:]
    ax, ay = polygon[:, 0][None, :], polygon[:, 1][None, :]
    bx, by = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddle = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = ax + (y - ay) * (bx - ax) / (by - ay)
    return np.count_nonzero(straddle & (x < cross_x), axis=1) % 2 == 1


def _per_label(counts: dict[str, int], label: str) -> None:
    counts[label] = counts.get(label, 0) + 1


class LineCounter:
    """Crossings of one line, per direction and class, by track.

    Args:
        shape: the line (:func:`parse_shape` with ``kind="line"``).
        margin: a centre within this many pixels of the line keeps the side it had
            (hysteresis for boxes that hover on the line).
    """

    def __init__(self, shape: Shape, margin: float = 0.0):
        self.shape = shape
        self.margin = float(margin)
        self.p: np.ndarray | None = None
        self.counts: dict[str, dict[str, int]] = {"in": {}, "out": {}}
        self._last: dict[int, tuple[float, float, float]] = {}   # id -> (x, y, side)

    def update(self, ids: Sequence[int], centres: np.ndarray, classes: Sequence[int],
               labels: Sequence[str], frame: int, t: float, size: tuple[int, int],
               removed: Sequence[int] = ()) -> list[Event]:
        """Advance one frame with the centres of the tracks seen in it; returns crossings."""
        if self.p is None:
            self.p = self.shape.resolve(size)
        (x1, y1), (x2, y2) = self.p
        length = math.hypot(x2 - x1, y2 - y1)
        centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        # Signed distance to the line: > 0 on its right (image coordinates, y down).
        dist = ((x2 - x1) * (centres[:, 1] - y1) - (y2 - y1) * (centres[:, 0] - x1)) / length
        events = []
        for tid, (cx, cy), d, cls in zip(ids, centres.tolist(), dist.tolist(), classes):
            prev = self._last.get(tid)
            side = 0.0 if abs(d) <= self.margin else math.copysign(1.0, d)
            if prev is None:
                self._last[tid] = (cx, cy, side)
                continue
            if side == 0.0:
                continue  # on the line (within the margin): nothing decided yet
            if prev[2] != 0.0 and prev[2] != side and _segments_meet(prev[0], prev[1], cx, cy,
                                                                      x1, y1, x2, y2):
                direction = "in" if side > 0 else "out"
                _per_label(self.counts[direction], labels[cls])
                events.append(Event(EventKind.CROSS, frame, t, int(tid), int(cls), labels[cls],
                                    self.shape.name, direction))
            self._last[tid] = (cx, cy, side)
        for tid in removed:
            self._last.pop(tid, None)
        return events

    def to_dict(self) -> dict:
        return {"name": self.shape.name, "in": dict(self.counts["in"]),
                "out": dict(self.counts["out"])}


def _segments_meet(ax, ay, bx, by, cx, cy, dx, dy) -> bool:
    """Whether segment AB meets segment CD (touching counts)."""
    def orient(px, py, qx, qy, rx, ry):
        return (qx - px) * (ry - py) - (qy - py) * (rx - px)

    return (orient(cx, cy, dx, dy, ax, ay) * orient(cx, cy, dx, dy, bx, by) <= 0
            and orient(ax, ay, bx, by, cx, cy) * orient(ax, ay, bx, by, dx, dy) <= 0)


class ZoneCounter:
    """Occupancy, entries, exits and dwell time of one polygon zone, per class, by track.

    A track enters when its centre is first seen inside and exits when it is seen outside or
    the tracker drops it (``removed``); a track that is briefly lost stays counted inside.
    """

    def __init__(self, shape: Shape):
        self.shape = shape
        self.polygon: np.ndarray | None = None
        self.entered: dict[str, int] = {}
        self.exited: dict[str, int] = {}
        self.inside: dict[int, tuple[float, int]] = {}   # id -> (t entered, class)
        self.labels: Sequence[str] = ()
        self.t = 0.0

    def update(self, ids: Sequence[int], centres: np.ndarray, classes: Sequence[int],
               labels: Sequence[str], frame: int, t: float, size: tuple[int, int],
               removed: Sequence[int] = ()) -> list[Event]:
        """Advance one frame; returns the ``enter`` / ``exit`` events."""
        if self.polygon is None:
            self.polygon = self.shape.resolve(size)
        self.labels, self.t = labels, t
        flags = inside_polygon(centres, self.polygon).tolist() if len(ids) else []
        events = []
        for tid, cls, now_in in zip(ids, classes, flags):
            tid, cls = int(tid), int(cls)
            was_in = tid in self.inside
            if now_in and not was_in:
                self.inside[tid] = (t, cls)
                _per_label(self.entered, labels[cls])
                events.append(Event(EventKind.ENTER, frame, t, tid, cls, labels[cls],
                                    self.shape.name))
            elif was_in and not now_in:
                events.append(self._exit(tid, frame, t))
        for tid in removed:
            if int(tid) in self.inside:
                events.append(self._exit(int(tid), frame, t))
        return events

    def _exit(self, tid: int, frame: int, t: float) -> Event:
        t_in, cls = self.inside.pop(tid)
        label = self.labels[cls]
        _per_label(self.exited, label)
        return Event(EventKind.EXIT, frame, t, tid, cls, label, self.shape.name,
                     dwell_s=t - t_in)

    def occupancy(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, cls in self.inside.values():
            _per_label(out, self.labels[cls])
        return out

    def to_dict(self) -> dict:
        return {"name": self.shape.name, "occupancy": self.occupancy(),
                "entered": dict(self.entered), "exited": dict(self.exited),
                "dwell_s": {str(tid): round(self.t - t_in, 3)
                            for tid, (t_in, _) in self.inside.items()}}
