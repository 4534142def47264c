"""Tracking and counting as one per-frame post-processing step.

:class:`TrackingStage` takes a frame's detections and returns them with track IDs, plus the
events of the frame (line crossings, zone entries and exits) and running counts. It is what
``edgecnn camera --track --line ... --zone ...`` runs after the detector, and what any other
caller with a sequence of frames can run (``TrackingStage(labels)(detections, i, t, size)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edgecnn.runtime.tracking.counting import Event, LineCounter, Shape, ZoneCounter
from edgecnn.runtime.tracking.tracker import (ByteTracker, TrackerOptions, TrackOutput,
                                              attach_ids, detection_arrays)
from edgecnn.runtime.types import Detection


@dataclass(frozen=True)
class TrackingOptions:
    """What the stage does besides tracking.

    Attributes:
        tracker: the association thresholds.
        lines: counting lines (:func:`edgecnn.runtime.tracking.counting.parse_shape`).
        zones: counting zones.
        line_margin: hysteresis of the line counters in pixels (a box wobbling by less than
            this on the line does not count twice; 3 px measured best on the synthetic
            clips, benchmarks/serve_track.py).
    """

    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    lines: tuple[Shape, ...] = ()
    zones: tuple[Shape, ...] = ()
    line_margin: float = 3.0


@dataclass(frozen=True, eq=False)
class StageResult:
    """One frame after tracking: tracked detections (``track_id`` set), events, raw tracks."""

    detections: list[Detection]
    events: list[Event]
    tracks: TrackOutput


class TrackingStage:
    """A :class:`ByteTracker` and the counters of one stream.

    Args:
        labels: class names, index = class id (for counts and events).
        options: tracker thresholds, lines and zones.
    """

    def __init__(self, labels: Sequence[str], options: TrackingOptions = TrackingOptions()):
        self.labels = tuple(labels)
        self.options = options
        self.tracker = ByteTracker(options.tracker)
        self.lines = [LineCounter(s, options.line_margin) for s in options.lines]
        self.zones = [ZoneCounter(s) for s in options.zones]
        self.events_total = 0

    def __call__(self, detections: Sequence[Detection], frame: int, t: float,
                 size: tuple[int, int]) -> StageResult:
        """Track one frame.

        Args:
            detections: the detector's output for this frame (image pixels).
            frame: frame index; ``t``: its time in seconds (events and dwell times use it).
            size: ``(width, height)`` of the frame.
        """
        out = self.tracker.update(*detection_arrays(detections), image_size=size)
        tracked = attach_ids(detections, out)
        events: list[Event] = []
        if self.lines or self.zones:
            centres = (out.boxes[:, :2] + out.boxes[:, 2:]) / 2
            ids, classes = out.ids.tolist(), out.classes.tolist()
            counters: list[LineCounter | ZoneCounter] = [*self.lines, *self.zones]
            for counter in counters:
                events += counter.update(ids, centres, classes, self.labels, frame, t, size,
                                         out.removed)
        self.events_total += len(events)
        return StageResult(tracked, events, out)

    def counts(self) -> dict:
        """``{"lines": [...], "zones": [...]}`` of every counter so far (JSON-ready)."""
        return {"lines": [c.to_dict() for c in self.lines],
                "zones": [z.to_dict() for z in self.zones]}

    def tracks_active(self) -> int:
        return int(np.count_nonzero(self.tracker.active_ids))
