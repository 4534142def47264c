"""Multi-object tracking and counting: post-processing stages of the device runtime.

- :mod:`.tracker`: :class:`ByteTracker`, ByteTrack-style association with a Kalman filter;
- :mod:`.counting`: line crossings and zone occupancy / dwell per track, with events;
- :mod:`.stage`: :class:`TrackingStage`, tracker and counters as one per-frame step, shared by
  the camera loop and any other caller that has a sequence of frames.

numpy only: no scipy, no ``lap``, nothing the Pi install lacks.
"""

from edgecnn.runtime.tracking.counting import (Event, EventKind, LineCounter, Shape,
                                               ZoneCounter, parse_shape)
from edgecnn.runtime.tracking.stage import StageResult, TrackingOptions, TrackingStage
from edgecnn.runtime.tracking.tracker import (ByteTracker, TrackerOptions, TrackOutput,
                                              attach_ids, detection_arrays)

__all__ = ["ByteTracker", "Event", "EventKind", "LineCounter", "Shape", "StageResult",
           "TrackOutput", "TrackerOptions", "TrackingOptions", "TrackingStage", "ZoneCounter",
           "attach_ids", "detection_arrays", "parse_shape"]
