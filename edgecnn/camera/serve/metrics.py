"""``/metrics``: the loop's counters in the Prometheus text exposition format (version 0.0.4).

Written by hand (a few dozen lines) instead of depending on ``prometheus_client``: the
device install stays numpy + OpenCV + the interpreter. The tests parse the output with
``prometheus_client``'s own parser.
"""

from __future__ import annotations

from typing import Iterable, Mapping


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, object], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {float(value):.6g}")


def render(status: Mapping, record: Mapping | None, server: Mapping, age_s: float,
           events: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """The exposition text.

    Args:
        status: the loop's counters (``frames``, ``read``, ``dropped``, ``reconnects``,
            ``errors``, ``fps``).
        record: the newest frame's JSON record (stage timings, detections, counts).
        server: :meth:`FrameHub.summary`.
        age_s: seconds since the newest frame.
        events: per sink ``{"sent", "failed", "timeouts", "dropped", "rate_limited"}``.
    """
    w = _Writer()
    for key, name, help_text in (
            ("frames", "edgecnn_frames_total", "Frames processed."),
            ("read", "edgecnn_frames_read_total", "Frames read from the source."),
            ("dropped", "edgecnn_frames_dropped_total",
             "Stale frames dropped to stay on the newest."),
            ("reconnects", "edgecnn_reconnects_total", "Reopenings of a dropped stream."),
            ("errors", "edgecnn_errors_total", "Frames whose processing failed.")):
        w.family(name, "counter", help_text, [({}, status.get(key, 0))])
    w.family("edgecnn_fps", "gauge", "Output frames per second (moving average).",
             [({}, status.get("fps") or 0.0)])
    w.family("edgecnn_last_frame_age_seconds", "gauge", "Seconds since the newest frame.",
             [({}, age_s if age_s != float("inf") else -1)])
    record = record or {}
    w.family("edgecnn_stage_ms", "gauge", "Milliseconds per stage in the newest frame.",
             [({"stage": k}, v) for k, v in record.get("timings_ms", {}).items()])
    w.family("edgecnn_detections", "gauge", "Detections in the newest frame.",
             [({}, len(record.get("detections", [])))])
    counts = record.get("counts") or {}
    w.family("edgecnn_line_crossings_total", "counter", "Line crossings per direction and class.",
             [({"line": line["name"], "direction": d, "label": label}, n)
              for line in counts.get("lines", []) for d in ("in", "out")
              for label, n in line[d].items()])
    zones = counts.get("zones", [])
    w.family("edgecnn_zone_occupancy", "gauge", "Tracks inside each zone per class.",
             [({"zone": z["name"], "label": label}, n)
              for z in zones for label, n in z["occupancy"].items()])
    for key, name, help_text in (
            ("entered", "edgecnn_zone_entries_total", "Zone entries per class."),
            ("exited", "edgecnn_zone_exits_total", "Zone exits per class.")):
        w.family(name, "counter", help_text,
                 [({"zone": z["name"], "label": label}, n)
                  for z in zones for label, n in z[key].items()])
    w.family("edgecnn_events_total", "counter", "Events per sink and outcome.",
             [({"sink": sink, "result": result}, n)
              for sink, c in (events or {}).items() for result, n in c.items()])
    w.family("edgecnn_stream_clients", "gauge", "Clients streaming now.",
             [({}, server.get("clients", 0))])
    for key, help_text in (("clients_total", "Streaming clients served."),
                           ("clients_dropped", "Clients dropped for not reading."),
                           ("clients_rejected", "Clients refused (too many)."),
                           ("unauthorized", "Requests without the right token."),
                           ("bad_requests", "Malformed or unknown requests."),
                           ("jpeg_encoded", "Frames encoded as JPEG.")):
        w.family(f"edgecnn_http_{key}_total", "counter", help_text, [({}, server.get(key, 0))])
    return "\n".join(w.lines) + "\n"
