"""What a camera run did: frames, drops, reconnects, errors, FPS and per-stage timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np


def percentiles(values_ms, qs=(50, 90)) -> dict[str, float]:
    """``{"p50": .., "p90": .., "mean": ..}`` of a list of milliseconds (empty -> zeros)."""
    if len(values_ms) == 0:
        return {**{f"p{q}": 0.0 for q in qs}, "mean": 0.0}
    arr = np.asarray(values_ms, dtype=np.float64)
    out = {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}
    out["mean"] = round(float(arr.mean()), 3)
    return out


@dataclass(frozen=True)
class Summary:
    """The report printed when a camera run ends (and written as JSON).

    Attributes:
        frames: frames fully processed (inferred, and drawn / written when asked).
        read: frames the source delivered; ``read - frames - dropped`` were left unprocessed
            at the stop.
        dropped: stale frames the capture thread discarded to stay on the newest frame.
        reconnects: successful reopenings of a dropped stream (``reconnect_attempts`` tries).
        errors: frames whose processing raised (the loop went on); ``error_messages`` holds the
            first few distinct messages.
        fps_mean: ``frames / duration_s``; ``fps_p50``: 1 / median interval between outputs.
        stages_ms: per stage (``capture_wait``, ``preprocess``, ``inference``, ``postprocess``,
            ``draw``, ``write``, ``total``) ``{"p50", "p90", "mean"}`` in milliseconds.
        decode_share: share of the wall time the capture thread spent reading/decoding.
        stopped_by: ``end of input``, ``max frames``, ``duration``, ``signal SIGINT`` ...
        extras: per post-processing stage and the server, what it reports (``track``: tracks,
            events, line and zone counts; ``events``: deliveries per sink; ``serve``: clients).
    """

    frames: int
    read: int
    dropped: int
    reconnects: int
    reconnect_attempts: int
    errors: int
    duration_s: float
    fps_mean: float
    fps_p50: float
    stages_ms: dict
    decode_share: float
    stopped_by: str
    source: dict = field(default_factory=dict)
    model: str = ""
    threads: int | None = None
    pipelined: bool = True
    error_messages: tuple[str, ...] = ()
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["error_messages"] = list(self.error_messages)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def format_text(self) -> str:
        """A short human report, one fact per line."""
        lines = [
            f"frames {self.frames} (read {self.read}, dropped {self.dropped}), "
            f"reconnects {self.reconnects} ({self.reconnect_attempts} attempts), "
            f"errors {self.errors}",
            f"{self.duration_s:.2f} s, FPS mean {self.fps_mean:.2f}, p50 {self.fps_p50:.2f}, "
            f"decode {100 * self.decode_share:.0f}% of wall time; stopped by {self.stopped_by}",
        ]
        for name, st in self.stages_ms.items():
            lines.append(f"  {name:<13} p50 {st['p50']:8.2f} ms   p90 {st['p90']:8.2f} ms")
        for name, value in self.extras.items():
            lines.append(f"  {name}: {json.dumps(value, separators=(', ', ': '))}")
        for msg in self.error_messages:
            lines.append(f"  error: {msg}")
        return "\n".join(lines)
