"""What a camera running for days meets (issue 15): timing statistics in fixed memory, a
stream that freezes without closing, a file that ends early, gray and BGRA frames from the
library API. The soak itself (a million frames) is ``benchmarks/camera_soak.py``."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.camera.capture import CaptureOptions
from edgecnn.camera.loop import LoopOptions, run
from edgecnn.camera.sources import FrameSource, MemorySource, open_source
from edgecnn.camera.stats import Histogram
from edgecnn.runtime import load

TINY = Path(__file__).resolve().parent / "golden" / "tiny_detect.tflite"


@pytest.fixture(scope="module")
def detector():
    return load(TINY, threads=1)


def _frame(seed: int = 0, size=(48, 64)) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 80, (*size, 3), dtype=np.uint8)
    image[10:30, 20:44] = 255
    return image


# ---- statistics in fixed memory ---------------------------------------------------------------

@pytest.mark.parametrize("values", [
    np.random.default_rng(1).lognormal(0.0, 1.0, 20000),    # a long right tail, like latency
    np.random.default_rng(2).exponential(3.0, 5000),
    np.full(100, 2.5), np.array([0.0, 7.0, 1e9]), np.array([4.2])])
def test_histogram_percentiles_within_one_percent(values):
    h = Histogram()
    for v in values:
        h.add(float(v))
    assert h.count == len(values) and h.mean == pytest.approx(values.mean())
    for q in (0, 10, 50, 90, 99, 100):
        assert h.quantile(q / 100) == pytest.approx(np.percentile(values, q), rel=0.01, abs=1e-9)
    assert h.summary() == {"p50": round(h.quantile(0.5), 3), "p90": round(h.quantile(0.9), 3),
                           "mean": round(h.mean, 3)}


def _camera_bytes_at(detector, marks: tuple[int, ...]) -> tuple[list[int], object]:
    """Bytes held by allocations made in ``edgecnn/camera/`` when the source has delivered
    each of ``marks`` frames, during one run (list appends are traced to the line that grew
    the list)."""
    source = MemorySource(_frame(), count=marks[-1] + 200)
    stop, result = threading.Event(), {}
    thread = threading.Thread(target=lambda: result.update(summary=run(
        detector, source, LoopOptions(draw=False, handle_signals=False), stop_event=stop)))
    sizes = []
    tracemalloc.start()
    try:
        thread.start()
        for mark in marks:
            while source.position < mark and thread.is_alive():
                time.sleep(0.005)
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, "*edgecnn*camera*")])
            sizes.append(sum(st.size for st in snapshot.statistics("filename")))
    finally:
        stop.set()
        thread.join()
        tracemalloc.stop()
    return sizes, result["summary"]


def test_loop_memory_does_not_grow_with_frames(detector):
    """What the loop holds after 2,300 frames is what it held after 300: nothing is kept per
    frame (with per-frame timing lists it was 440-490 KB more, ~230 bytes a frame)."""
    sizes, summary = _camera_bytes_at(detector, (300, 2300))
    assert sizes[1] - sizes[0] < 100_000, sizes
    assert summary.errors == 0 and summary.frames >= 2300 - 10
    for stage in ("preprocess", "inference", "postprocess", "total", "latency"):
        st = summary.stages_ms[stage]
        assert 0 < st["p50"] <= st["p90"] and st["mean"] > 0
    assert summary.fps_p50 > 0


# ---- a stream that freezes without closing ----------------------------------------------------

class _FreezingMJPEG(http.server.BaseHTTPRequestHandler):
    """multipart/x-mixed-replace JPEG frames; the first connection stops sending after
    ``freeze_at`` frames and holds the connection open for ``hold`` seconds."""

    frames: tuple[bytes, ...] = ()
    freeze_at = 15
    hold = 25.0

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        first = not self.server.froze
        self.server.froze = True
        for n, jpg in enumerate(self.frames * 20):   # a tuple, repeated
            if first and n == self.freeze_at:
                time.sleep(self.hold)    # stalled, not closed: no data, no error
                return
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.02)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    froze = False


@pytest.fixture
def freezing_stream():
    _FreezingMJPEG.frames = tuple(cv2.imencode(".jpg", _frame(i, (120, 160)))[1].tobytes()
                                  for i in range(8))
    server = _Server(("127.0.0.1", 0), _FreezingMJPEG)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(120)
def test_frozen_stream_is_reopened_after_the_read_timeout(detector, freezing_stream):
    start = time.perf_counter()
    source = open_source(freezing_stream, read_timeout=1.0)
    summary = run(detector, source, LoopOptions(
        max_frames=40, draw=False, handle_signals=False,
        capture=CaptureOptions(backoff_initial=0.05, backoff_max=0.2)))
    elapsed = time.perf_counter() - start
    assert summary.frames == 40 and summary.stopped_by == "max frames"
    assert summary.reconnects >= 1
    assert elapsed < 12, elapsed     # the server held the frozen connection for 25 s


# ---- a file that ends early -------------------------------------------------------------------

def _video(path: Path, frames: int = 300) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(frames):
        image = np.full((120, 160, 3), 40, np.uint8)
        cv2.circle(image, (i % 160, 60), 20, (255, 255, 255), -1)
        writer.write(image)
    writer.release()
    return path


def test_file_that_ends_early_says_so(detector, tmp_path):
    whole = _video(tmp_path / "whole.avi")
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) // 2])     # the header still says 300 frames
    summary = run(detector, open_source(str(cut)), LoopOptions(draw=False,
                                                               handle_signals=False))
    assert summary.source["frame_count"] == 300
    assert 100 < summary.read < 290
    assert summary.stopped_by == (f"input ended early: {summary.read} of 300 frames read "
                                  "(damaged or truncated file?)")
    full = run(detector, open_source(str(whole)), LoopOptions(draw=False,
                                                              handle_signals=False))
    assert full.read == 300 and full.stopped_by == "end of input"


# ---- gray and BGRA frames from the library API ------------------------------------------------

def test_gray_and_bgra_memory_frames_are_converted_once(detector, tmp_path):
    bgr = _frame()
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    source = MemorySource([gray, bgra, gray[:, :, None], bgr], count=20)
    assert all(f.shape == (48, 64, 3) for f in source.frames)
    out = tmp_path / "out.avi"
    summary = run(detector, source, LoopOptions(save=str(out), handle_signals=False))
    assert summary.errors == 0 and summary.frames == 20


class _GraySource(FrameSource):
    """A user's own source that delivers single-channel frames."""

    kind = "custom"

    def __init__(self, n: int):
        super().__init__("gray")
        self.n, self.i = n, 0

    def read(self):
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((48, 64), 30 * (self.i % 8), np.uint8)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "sequential"])
def test_a_custom_gray_source_is_converted_at_capture(detector, pipeline):
    summary = run(detector, _GraySource(12), LoopOptions(pipeline=pipeline,
                                                         handle_signals=False))
    assert summary.errors == 0 and summary.frames == 12
