"""A camera loop running in a thread with the --serve hub, for the server and browser tests."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import numpy as np

from edgecnn.camera.loop import LoopOptions, run
from edgecnn.camera.serve import FrameHub, HttpServer, ServeOptions
from edgecnn.camera.sources import MemorySource
from edgecnn.camera.stages import TrackStage
from edgecnn.runtime import load
from edgecnn.runtime.tracking import TrackingOptions, parse_shape

GOLDEN = Path(__file__).parent / "golden" / "tiny_detect.tflite"


def moving_square_frames(count: int = 40, size=(320, 240), side: int = 60):
    """White squares moving right on black, one frame per step (a loop of ``count``)."""
    w, h = size
    frames = []
    for i in range(count):
        img = np.zeros((h, w, 3), np.uint8)
        x = int(10 + (w - side - 20) * i / (count - 1))
        img[60:60 + side, x:x + side] = 255
        frames.append(img)
    return frames


class LiveLoop:
    """``run()`` on a live MemorySource in a thread, published to a FrameHub and server."""

    def __init__(self, model_path=GOLDEN, options: ServeOptions = ServeOptions(port=0),
                 fps: float = 30.0, score: float = 0.05, track: bool = True, frames=None):
        self.hub = FrameHub()
        self.server = HttpServer(self.hub, options).start()
        self.model = load(model_path, threads=1, score_threshold=score)
        stages = ()
        if track:
            line = parse_shape("gate=0.5,0,0.5,1", "line", "gate")
            stages = (TrackStage(self.model.metadata.labels, TrackingOptions(lines=(line,))),)
        source = MemorySource(frames or moving_square_frames(), live=True, fps=fps)
        self.stop = threading.Event()
        self.summary = None
        self.options = LoopOptions(stages=stages, publisher=self.hub, handle_signals=False)
        self.thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self.thread.start()

    def _run(self, source) -> None:
        self.summary = run(self.model, source, self.options, stop_event=self.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def wait_frames(self, n: int, timeout: float = 20.0) -> None:
        if self.hub.wait_newer(n - 1, timeout) is None:
            raise TimeoutError(f"fewer than {n} frames published")

    def get(self, path: str, headers: dict | None = None, timeout: float = 10.0):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - 127.0.0.1

    def close(self):
        self.stop.set()
        self.thread.join(20)
        self.server.close()
        return self.summary
