"""Faults the camera loop must survive: streams that drop, drivers that raise, bad frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

from camera_models import model_path, write_square_video
from edgecnn.camera.capture import Capture, CaptureOptions
from edgecnn.camera.loop import LoopOptions, run
from edgecnn.camera.sources import FrameSource, open_source
from edgecnn.runtime import load

FAST_BACKOFF = CaptureOptions(backoff_initial=0.01, backoff_max=0.04, max_reconnect_attempts=6)


class FlakyStream(FrameSource):
    """A live stream over a real video file that drops after ``fail_after`` frames.

    While dropped, ``reopen()`` fails ``failed_reopens`` times and then reopens the file (the
    stream "comes back"). ``mode`` says how the drop looks: ``none`` (read returns nothing, as
    ``cv2.VideoCapture.read`` does when a network stream dies) or ``raise`` (the driver raises).
    """

    kind = "stream"
    live = True

    def __init__(self, path, fail_after: int, failed_reopens: int, mode: str = "none",
                 drops: int = 1, total: int | None = None):
        super().__init__(f"flaky:{path}")
        self.path = str(path)
        self.inner = open_source(self.path)
        self.fail_after = fail_after
        self.failed_reopens = failed_reopens
        self.mode = mode
        self.drops_left = drops
        self.total = total
        self.delivered = 0
        self.since_open = 0
        self.down = False
        self.reopen_calls = 0
        self.size = self.inner.size
        self.fps = self.inner.fps

    def read(self):
        if self.total is not None and self.delivered >= self.total:
            self.ended = True
            return None
        if self.down:
            return None
        if self.drops_left and self.since_open >= self.fail_after:
            self.down = True
            self.drops_left -= 1
            if self.mode == "raise":
                raise OSError("stream connection reset")
            return None
        frame = self.inner.read()
        if frame is None:  # loop the file like an endless stream
            self.inner.reopen()
            frame = self.inner.read()
        self.delivered += 1
        self.since_open += 1
        return frame

    def reopen(self):
        self.reopen_calls += 1
        if self.reopen_calls <= self.failed_reopens:
            return False
        self.down = False
        self.since_open = 0
        return self.inner.reopen()

    def release(self):
        self.inner.release()


@pytest.fixture
def detector(request):
    return load(model_path(request.config, "bright_detector.tflite"), threads=1)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    write_square_video(path, frames=20)
    return path


@pytest.mark.parametrize("mode", ["none", "raise"])
def test_dropped_stream_is_reopened_with_counted_backoff(video, detector, mode, tmp_path):
    source = FlakyStream(video, fail_after=12, failed_reopens=3, mode=mode, total=40)
    log = tmp_path / "f.jsonl"
    summary = run(detector, source, LoopOptions(json=str(log), capture=FAST_BACKOFF,
                                                draw=False))
    # 3 failed reopens, then success: 4 attempts, 1 reconnect; then the stream ends normally.
    assert summary.reconnects == 1
    assert summary.reconnect_attempts == 4
    assert source.reopen_calls == 4
    assert summary.read == 40
    assert summary.stopped_by == "end of input"
    assert summary.errors == 0
    records = [json.loads(x) for x in log.read_text().splitlines()]
    frames = [r["frame"] for r in records if "frame" in r]
    # a live source hands over its newest frame: under load some are dropped, none are lost,
    # and frames read after the reconnect reach the model
    assert len(frames) == summary.frames and summary.frames + summary.dropped == 40
    assert max(frames) >= 12
    if mode == "raise":
        assert any("stream connection reset" in m for m in summary.error_messages)


def test_backoff_doubles_and_is_capped(video):
    source = FlakyStream(video, fail_after=2, failed_reopens=5, total=6)
    cap = Capture(source, FAST_BACKOFF).start()
    got = []
    while (frame := cap.get(timeout=10)) is not None:
        got.append(frame.index)
    cap.stop()
    # waits: 0.01, 0.02, 0.04, 0.04 (capped), 0.04, 0.04 -> 6 attempts, the 6th succeeds
    assert cap.stats.reconnect_attempts == 6 and cap.stats.reconnects == 1
    assert cap.stats.backoff_s == pytest.approx(0.01 + 0.02 + 0.04 * 4)
    # A live source hands over the newest frame: what was not taken was dropped, never lost.
    assert cap.stats.read == 6
    assert got == sorted(got) and got[-1] == 5
    assert len(got) + cap.stats.dropped == 6


def test_stream_that_never_returns_ends_with_source_lost(video, detector):
    source = FlakyStream(video, fail_after=5, failed_reopens=10**6)
    summary = run(detector, source, LoopOptions(capture=FAST_BACKOFF))
    assert summary.read == 5 and summary.frames + summary.dropped == 5
    assert summary.reconnects == 0
    assert summary.reconnect_attempts == FAST_BACKOFF.max_reconnect_attempts
    assert summary.stopped_by.startswith("source lost")


def test_cli_reports_lost_stream_after_summary(video, request, run_cli, monkeypatch):
    """A stream lost for good: the summary is printed, then one error line, exit 1."""
    import edgecnn.camera.sources as sources

    model = model_path(request.config, "bright_detector.tflite")
    monkeypatch.setattr(sources, "open_source",
                        lambda spec, **kw: FlakyStream(spec, fail_after=3, failed_reopens=99))
    res = run_cli("camera", model, "--source", video, "--threads", "1", "--reconnect", "2")
    assert res.exit_code == 1, res.err
    assert "read 3," in res.err and "(2 attempts)" in res.err
    assert res.err.strip().splitlines()[-1].startswith("error: source lost")


def test_bad_frames_are_counted_and_the_loop_goes_on(detector, tmp_path):
    from edgecnn.camera.sources import MemorySource

    good = np.zeros((240, 320, 3), np.uint8)
    bad = np.zeros((240, 320, 3), np.float32)  # wrong dtype: preprocessing raises for it
    frames = [good, good, bad, good, good]
    log = tmp_path / "e.jsonl"
    summary = run(detector, MemorySource(frames, count=25), LoopOptions(json=str(log)))
    assert summary.errors == 5
    assert summary.frames == 20
    assert summary.stopped_by == "end of input"
    assert any("uint8" in m for m in summary.error_messages)
    records = [json.loads(x) for x in log.read_text().splitlines() if '"frame"' in x]
    assert [r["frame"] for r in records] == [i for i in range(25) if i % 5 != 2]


def test_every_frame_failing_stops_after_the_limit(detector):
    from edgecnn.camera.sources import MemorySource

    bad = np.zeros((16, 16), np.float64)
    summary = run(detector, MemorySource(bad), LoopOptions(max_consecutive_errors=30))
    assert summary.frames == 0
    assert summary.errors >= 30
    assert summary.stopped_by == "30 consecutive frame errors"


def test_unwritable_outputs_fail_before_any_frame(detector, video, tmp_path):
    from edgecnn.errors import UsageError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    source = open_source(str(video))
    with pytest.raises(UsageError, match="does not exist"):
        run(detector, source, LoopOptions(save=str(blocker / "o.mp4")))
    assert source.cap is None  # released
