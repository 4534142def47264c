"""Per-frame stages the camera loop runs after the model, and the hook that publishes frames.

The loop calls, for every frame, each stage's :meth:`FrameStage.process` (after
postprocessing; the stage may replace the results, add keys to the frame's JSON record and
emit events), then :meth:`FrameStage.draw` on the frame it annotates, and finally hands the
annotated frame and its record to a :class:`Publisher` (the HTTP server of ``--serve``).

- :class:`TrackStage`: tracking, line and zone counting (``--track``, ``--line``, ``--zone``),
  with IDs, trails, lines and zones drawn on the frame;
- :class:`EventStage`: hands the frame's events to an :class:`~edgecnn.camera.events.
  EventDispatcher` (``--on-event``, ``--webhook``, ``--hook``) without waiting for it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from edgecnn.camera import overlay_tracks
from edgecnn.runtime.tracking import TrackingOptions, TrackingStage


@dataclass
class FrameContext:
    """What the stages of one frame share.

    Attributes:
        index, t: the frame's index and time (seconds since the start).
        image: the frame (BGR), drawn on later.
        results: the task's results (detections or categories); a stage may replace them.
        record: keys a stage adds to the frame's JSON record (``counts``, ``events``).
        events: event dicts of this frame (``{"type": "cross", ...}``).
    """

    index: int
    t: float
    image: np.ndarray
    results: Any
    record: dict = field(default_factory=dict)
    events: list = field(default_factory=list)


class FrameStage(Protocol):
    """A per-frame step after postprocessing; ``name`` keys its time in the stage timings."""

    name: str

    def process(self, ctx: FrameContext) -> None: ...

    def draw(self, image: np.ndarray, ctx: FrameContext) -> None: ...

    def summary(self) -> dict: ...

    def close(self) -> None: ...


class Publisher(Protocol):
    """Receives every processed frame; must return at once (it runs on the loop's thread)."""

    def publish(self, image: np.ndarray, record: dict, status: dict) -> None: ...

    def summary(self) -> dict: ...

    def close(self) -> None: ...


class TrackStage:
    """Tracking and counting of detections, drawn with IDs, trails, lines and zones.

    Args:
        labels: the detector's class names.
        options: tracker thresholds, lines and zones.
        trail: centres kept per track for the drawn trail.
    """

    name = "track"

    def __init__(self, labels: Sequence[str], options: TrackingOptions = TrackingOptions(),
                 trail: int = 20):
        self.stage = TrackingStage(labels, options)
        self.counting = bool(options.lines or options.zones)
        self.trail = trail
        self.trails: dict[int, collections.deque] = {}
        self.size: tuple[int, int] | None = None

    def process(self, ctx: FrameContext) -> None:
        h, w = ctx.image.shape[:2]
        self.size = (w, h)
        result = self.stage(ctx.results, ctx.index, ctx.t, self.size)
        ctx.results = result.detections
        out = result.tracks
        centres = (out.boxes[:, :2] + out.boxes[:, 2:]) / 2
        for tid, (cx, cy) in zip(out.ids.tolist(), centres.tolist()):
            trail = self.trails.get(tid)
            if trail is None:
                trail = self.trails[tid] = collections.deque(maxlen=self.trail)
            trail.append((int(round(cx)), int(round(cy))))
        for tid in out.removed:
            self.trails.pop(tid, None)
        if self.counting:
            ctx.record["counts"] = self.stage.counts()
            events = [e.to_dict() for e in result.events]
            ctx.record["events"] = events
            ctx.events.extend(events)

    def draw(self, image: np.ndarray, ctx: FrameContext) -> None:
        live = {d.track_id for d in ctx.results}
        overlay_tracks.draw_trails(image, {k: v for k, v in self.trails.items() if k in live})
        if self.counting and self.size is not None:
            counts = self.stage.counts()
            for line, c in zip(self.stage.lines, counts["lines"]):
                overlay_tracks.draw_line(image, line.shape.resolve(self.size), c)
            for zone, c in zip(self.stage.zones, counts["zones"]):
                overlay_tracks.draw_zone(image, zone.shape.resolve(self.size), c)

    def summary(self) -> dict:
        out = {"tracks": self.stage.tracker.next_id - 1, "events": self.stage.events_total}
        if self.counting:
            counts = self.stage.counts()
            for z in counts["zones"]:
                z.pop("dwell_s", None)
            out.update(counts)
        return out

    def close(self) -> None:
        pass


class EventStage:
    """Submits each frame's events to a dispatcher (never blocks the loop)."""

    name = "events"

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def process(self, ctx: FrameContext) -> None:
        if ctx.events:
            self.dispatcher.submit(ctx.events)

    def draw(self, image: np.ndarray, ctx: FrameContext) -> None:
        pass

    def summary(self) -> dict:
        return self.dispatcher.stats()

    def close(self) -> None:
        self.dispatcher.close()
