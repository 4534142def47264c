"""The headless-deployment parts of a camera run, built from command-line values.

``edgecnn camera`` calls :func:`check` (every option error is a one-line UsageError before
anything opens), then :func:`start` (binds the server, so a busy port fails before the camera
opens), and passes :attr:`Deployment.stages` / :attr:`Deployment.publisher` to the loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Sequence

from edgecnn.camera.events import (EventDispatcher, EventOptions, check_command, check_webhook,
                                   load_hook)
from edgecnn.camera.serve import FrameHub, HttpServer, ServeOptions, parse_address
from edgecnn.camera.stages import EventStage, FrameStage, TrackStage
from edgecnn.errors import UsageError
from edgecnn.runtime.tracking import Shape, TrackerOptions, TrackingOptions, parse_shape

#: Detections down to this score reach the tracker (ByteTrack's second association).
LOW_SCORE = 0.1
#: The tracker's high threshold without --score-threshold (ByteTrack's default).
HIGH_SCORE = 0.5


@dataclass(frozen=True)
class DeployOptions:
    """The ``--track`` / counting / events / ``--serve`` values of one run (all optional).

    Attributes:
        track: follow detections with stable IDs (implied by lines and zones).
        lines, zones: parsed counting shapes.
        events: where events go.
        serve: the server's options, None for no server.
    """

    track: bool = False
    lines: tuple[Shape, ...] = ()
    zones: tuple[Shape, ...] = ()
    events: EventOptions = field(default_factory=EventOptions)
    serve: ServeOptions | None = None

    @property
    def tracking(self) -> bool:
        return self.track or bool(self.lines or self.zones)


def check(track: bool, lines: Sequence[str], zones: Sequence[str], on_event: str | None,
          webhook: str | None, hooks: Sequence[str], event_rate: float, serve: str | None,
          auth_token: str | None, stream_fps: float) -> DeployOptions:
    """Parse and check the command-line values.

    Raises:
        UsageError: a bad line or zone, URL, command, hook, address, or an event option
            without anything that makes events.
    """
    shapes_l = tuple(parse_shape(s, "line", f"line{i + 1}") for i, s in enumerate(lines))
    shapes_z = tuple(parse_shape(s, "zone", f"zone{i + 1}") for i, s in enumerate(zones))
    names = [s.name for s in (*shapes_l, *shapes_z)]
    if len(set(names)) != len(names):
        raise UsageError(f"line and zone names must differ, got {', '.join(names)}",
                         "name them: --line door=0,240,640,240")
    events = EventOptions(command=check_command(on_event) if on_event else None,
                          webhook=check_webhook(webhook) if webhook else None,
                          hooks=tuple(load_hook(h) for h in hooks), rate=event_rate)
    if events.any and not (shapes_l or shapes_z):
        raise UsageError("--on-event, --webhook and --hook need a --line or --zone",
                         "events are line crossings and zone entries / exits")
    if event_rate <= 0:
        raise UsageError(f"--event-rate must be > 0, got {event_rate}")
    serve_opts = None
    if serve is not None:
        host, port = parse_address(serve)
        if stream_fps <= 0:
            raise UsageError(f"--stream-fps must be > 0, got {stream_fps}")
        serve_opts = ServeOptions(host=host, port=port, token=auth_token or None,
                                  stream_fps=stream_fps)
    elif auth_token:
        raise UsageError("--auth-token needs --serve")
    return DeployOptions(track, shapes_l, shapes_z, events, serve_opts)


def detector_threshold(options: DeployOptions, score: float | None,
                       model_threshold: float) -> tuple[float | None, float]:
    """``(detector score threshold, tracker high threshold)``.

    Tracking wants the low-score detections too (they keep partly hidden objects tracked), so
    the detector runs at ``min(LOW_SCORE, high)``. The tracker's high threshold is
    ``--score-threshold`` when given, else ByteTrack's 0.5 (or the model's own threshold if that is higher): a
    decoder threshold of 0.25 lets too many weak boxes start tracks (measured with the
    8-epoch synthetic detector: MOTA -0.94 at 0.25 against 0.46 at 0.5; docs/BENCHMARKS.md).
    """
    if not options.tracking:
        return score, model_threshold if score is None else score
    high = max(HIGH_SCORE, model_threshold) if score is None else score
    return min(LOW_SCORE, high), high


class Deployment:
    """Stages, publisher and server of one run; :meth:`close` stops the server."""

    def __init__(self, options: DeployOptions):
        self.options = options
        self.hub: FrameHub | None = None
        self.server: HttpServer | None = None
        self.dispatcher: EventDispatcher | None = None
        self.stages: tuple[FrameStage, ...] = ()
        if options.serve is not None:
            self.hub = FrameHub()
            self.server = HttpServer(self.hub, options.serve, self._event_stats)

    def _event_stats(self) -> dict:
        return self.dispatcher.stats() if self.dispatcher is not None else {}

    def attach(self, model, high_score: float) -> None:
        """Build the stages for ``model`` (a Detector when tracking)."""
        if not self.options.tracking:
            return
        meta = getattr(model, "metadata", None)
        if meta is None or meta.task != "detect":
            raise UsageError("--track, --line and --zone need a detection model",
                             "this model classifies; use a detector .tflite")
        tracker = TrackerOptions(high_score=high_score, low_score=min(LOW_SCORE, high_score))
        tracking = TrackingOptions(tracker=tracker, lines=self.options.lines,
                                   zones=self.options.zones)
        stages: list[FrameStage] = [TrackStage(meta.labels, tracking)]
        if self.options.events.any:
            self.dispatcher = EventDispatcher(self.options.events)
            stages.append(EventStage(self.dispatcher))
        self.stages = tuple(stages)

    @property
    def publisher(self) -> FrameHub | None:
        return self.hub

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
            token = " (token required)" if self.server.options.token else ""
            print(f"serving on {self.server.url}{token}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.dispatcher is not None:
            self.dispatcher.close()
