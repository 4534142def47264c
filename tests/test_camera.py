"""The camera loop end to end on real videos written here, real models and the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_models import model_path, write_square_video
from conftest import assert_one_line_error
from edgecnn.camera.loop import LoopOptions, run
from edgecnn.camera.sources import MemorySource, SourceError, open_source
from edgecnn.runtime import load
from edgecnn.runtime.metadata import split_bundle


def _hidden(folder: Path) -> list[str]:
    """Hidden entries of ``folder`` other than the manifest that records edgecnn's outputs."""
    from edgecnn.fsutil import MANIFEST

    return [p.name for p in folder.glob(".*") if p.name != MANIFEST]


@pytest.fixture
def detector_file(request) -> Path:
    return model_path(request.config, "bright_detector.tflite")


@pytest.fixture
def detector_int8_file(request) -> Path:
    return model_path(request.config, "bright_detector_int8.tflite")


@pytest.fixture
def classifier_file(request) -> Path:
    return model_path(request.config, "brightness_classifier.tflite")


def _jsonl(path: Path) -> tuple[list[dict], dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    frames = [r for r in records if "frame" in r]
    summaries = [r["summary"] for r in records if "summary" in r]
    assert len(summaries) == 1 and "summary" in records[-1]
    return frames, summaries[0]


def _inside(point, box, tol=2.0) -> bool:
    x, y = point
    return box[0] - tol <= x <= box[2] + tol and box[1] - tol <= y <= box[3] + tol


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "sequential"])
def test_file_every_frame_tracked_saved_and_logged(tmp_path, detector_int8_file, pipeline):
    video = tmp_path / "square.mp4"
    truth = write_square_video(video, frames=40)
    out, log = tmp_path / "out.mp4", tmp_path / "frames.jsonl"
    summary = run(load(detector_int8_file, threads=1), open_source(str(video)),
                  LoopOptions(save=str(out), json=str(log), pipeline=pipeline))

    assert summary.frames == summary.read == 40
    assert summary.dropped == 0 and summary.errors == 0 and summary.reconnects == 0
    assert summary.stopped_by == "end of input"
    assert summary.pipelined is pipeline
    for stage in ("preprocess", "inference", "postprocess", "draw", "write", "total"):
        st = summary.stages_ms[stage]
        assert 0 < st["p50"] <= st["p90"]
    assert summary.fps_mean > 0 and summary.fps_p50 > 0
    assert summary.source["kind"] == "file" and summary.source["frame_count"] == 40

    frames, logged_summary = _jsonl(log)
    assert [r["frame"] for r in frames] == list(range(40))
    assert logged_summary["frames"] == 40
    assert all(r["t"] >= 0 for r in frames)
    for rec, box in zip(frames, truth):
        assert rec["detections"], rec
        assert set(rec["timings_ms"]) >= {"preprocess", "inference", "postprocess"}
        for det in rec["detections"]:
            x1, y1, x2, y2 = det["box"]
            # Every detection sits on the moving square of that very frame.
            assert _inside(((x1 + x2) / 2, (y1 + y2) / 2), box), (rec["frame"], det, box)

    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) \
        == (320, 240)
    ok, first = cap.read()
    cap.release()
    assert ok
    # The overlay is in the saved video: the black background now has coloured box lines.
    assert (first[:, :, 0].astype(int) - first[:, :, 2].astype(int) > 60).any()
    assert not _hidden(tmp_path)  # no temp files left behind


def test_classifier_shows_topk_per_frame(tmp_path, classifier_file):
    dark = np.full((120, 160, 3), 20, np.uint8)
    bright = np.full((120, 160, 3), 230, np.uint8)
    log = tmp_path / "c.jsonl"
    summary = run(load(classifier_file, threads=1), MemorySource([dark, bright], count=10),
                  LoopOptions(json=str(log)))
    assert summary.frames == 10
    frames, _ = _jsonl(log)
    tops = [r["categories"][0]["label"] for r in frames]
    assert tops == ["dark", "bright"] * 5


def test_max_frames_and_duration_stop_the_loop(detector_file):
    frame = np.zeros((240, 320, 3), np.uint8)
    model = load(detector_file, threads=1)
    s1 = run(model, MemorySource(frame), LoopOptions(max_frames=25))
    assert s1.frames == 25 and s1.stopped_by == "max frames"
    start = time.perf_counter()
    s2 = run(model, MemorySource(frame, live=True, fps=100), LoopOptions(duration=0.5))
    elapsed = time.perf_counter() - start
    assert s2.stopped_by == "duration"
    assert 0.4 < elapsed < 3.0
    assert 3 <= s2.frames <= 60  # ~50 when the machine is idle; fewer under heavy load


class _SlowDevice:
    """The real detector on a slower device: each inference takes at least ``delay`` s."""

    def __init__(self, detector, delay: float):
        self.inner, self.delay = detector, delay
        self.task, self.result_key = detector.task, detector.result_key
        self.model, self.metadata, self.labels = detector.model, detector.metadata, detector.labels

    def __call__(self, image, color="BGR"):
        tensor, context = self.preprocess(image, color)
        return self.postprocess(self.infer(tensor), context)

    def preprocess(self, image, color="BGR"):
        return self.inner.preprocess(image, color)

    def infer(self, tensor):
        time.sleep(self.delay)
        return self.inner.infer(tensor)

    def postprocess(self, raw, context):
        return self.inner.postprocess(raw, context)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "sequential"])
def test_live_source_drops_stale_frames_and_processes_the_newest(tmp_path, detector_file,
                                                                 pipeline):
    frames = []
    for i in range(8):  # frame i has its index written in the top-left pixel
        f = np.zeros((240, 320, 3), np.uint8)
        f[0, 0] = i
        frames.append(f)
    source = MemorySource(frames, count=160, live=True, fps=200)
    log = tmp_path / "live.jsonl"
    summary = run(_SlowDevice(load(detector_file, threads=1), 0.03), source,
                  LoopOptions(json=str(log), pipeline=pipeline, draw=False))
    # Inference (30 ms) is ~6x slower than the camera (5 ms): most frames must be dropped, and
    # every frame read is either processed, dropped, or was still in flight at the end.
    assert summary.dropped > summary.frames
    in_flight = summary.read - summary.frames - summary.dropped
    assert 0 <= in_flight <= 3
    logged, _ = _jsonl(log)
    indices = [r["frame"] for r in logged]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    # Newest-frame policy: consecutive processed frames skip the ones that went stale.
    assert np.median(np.diff(indices)) >= 2  # ~6 on an idle machine


def test_realtime_file_is_paced_like_a_camera(tmp_path, detector_file):
    video = tmp_path / "clip.avi"
    write_square_video(video, frames=30, fps=50.0)
    start = time.perf_counter()
    summary = run(load(detector_file, threads=1), open_source(str(video)),
                  LoopOptions(realtime=True))
    elapsed = time.perf_counter() - start
    assert elapsed > 0.45  # 30 frames at 50 FPS take 0.6 s when paced, ~0.05 s when not
    assert summary.frames + summary.dropped <= 30


# -- the CLI -----------------------------------------------------------------------------------

def test_cli_camera_saves_video_and_jsonl(tmp_path, run_cli, detector_file):
    video = tmp_path / "in.mp4"
    write_square_video(video, frames=20)
    out, log = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    res = run_cli("camera", detector_file, "--source", video, "--save", out, "--json", log,
                  "--threads", "1")
    assert res.exit_code == 0, res.err
    assert "frames 20 (read 20, dropped 0)" in res.err
    frames, summary = _jsonl(log)
    assert len(frames) == 20 == summary["frames"]
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 20


def test_cli_json_to_stdout_and_max_frames(tmp_path, run_cli, classifier_file):
    video = tmp_path / "in.avi"
    write_square_video(video, frames=20)
    res = run_cli("camera", classifier_file, "--source", video, "--json", "--max-frames", "7",
                  "--no-draw", "--quiet")
    assert res.exit_code == 0, res.err
    lines = [json.loads(x) for x in res.out.splitlines() if x.startswith("{")]
    frames = [r for r in lines if "frame" in r]
    assert len(frames) == 7 and lines[-1]["summary"]["stopped_by"] == "max frames"
    assert frames[0]["categories"][0]["label"] in ("dark", "bright")


def test_cli_bad_inputs_are_one_line_errors(tmp_path, run_cli, detector_file):
    video = tmp_path / "in.avi"
    write_square_video(video, frames=3)
    not_model = tmp_path / "notes.tflite"
    not_model.write_text("hello")
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(split_bundle(detector_file.read_bytes())[0])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")

    assert_one_line_error(run_cli("camera", not_model, "--source", video), "not a TFLite model")
    assert_one_line_error(run_cli("camera", bare, "--source", video), "metadata")
    assert_one_line_error(run_cli("camera", detector_file, "--source", tmp_path / "none.mp4"),
                          "none.mp4")
    assert_one_line_error(run_cli("camera", detector_file, "--source", "/dev/video99"),
                          "/dev/video99")
    assert_one_line_error(run_cli("camera", detector_file, "--source", "v4l2src ! appsink"),
                          "GStreamer")
    assert_one_line_error(run_cli("camera", detector_file, "--source", video, "--save",
                                  a_file / "out.mp4"), "out")
    assert_one_line_error(run_cli("camera", detector_file, "--source", video, "--save",
                                  tmp_path / "out.gif"), ".gif")
    assert_one_line_error(run_cli("camera", detector_file, "--source", video, "--threads", "0"),
                          "--threads")
    from edgecnn.camera.sources import opencv_has_gui

    if not opencv_has_gui():  # the base install's opencv-python-headless
        assert_one_line_error(run_cli("camera", detector_file, "--source", video, "--display"),
                              "GUI")
    assert not _hidden(tmp_path)


def test_source_error_lists_every_attempt():
    with pytest.raises(SourceError) as err:
        open_source("98")
    msg = str(err.value)
    assert "V4L2" in msg and "any backend" in msg


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_video_is_playable(tmp_path, detector_file, sig):
    video = tmp_path / "long.avi"
    write_square_video(video, frames=150, fps=25.0)  # 6 s when played in real time
    out, log = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "camera", str(detector_file), "--source", str(video),
         "--realtime", "--save", str(out), "--json", str(log), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Wait until frames flow (the temp video has data), then interrupt.
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        temps = list(tmp_path.glob(".o.*.mp4"))
        if temps and temps[0].stat().st_size > 20_000:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"stopped by signal {sig.name}" in err
    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, _ = cap.read()
    assert ok and 0 < n < 150
    frames, summary = _jsonl(log)
    assert summary["frames"] == len(frames) == n
    assert not _hidden(tmp_path)


def test_golden_int8_detector_on_synthetic_shapes_video(tmp_path, run_cli):
    """The committed tiny int8 detector (tests/golden) on the synthetic shapes video writer."""
    from edgecnn.data.synth_video import write_synthetic_video

    golden = Path(__file__).parent / "golden" / "tiny_detect.tflite"
    video = tmp_path / "shapes.avi"
    truth = write_synthetic_video(video, frames=24, size=(320, 240), fps=24.0, seed=3)
    log = tmp_path / "g.jsonl"
    res = run_cli("camera", golden, "--source", video, "--json", log, "--threads", "2",
                  "--score", "0.05", "--save", tmp_path / "g.mp4")
    assert res.exit_code == 0, res.err
    frames, summary = _jsonl(log)
    assert len(frames) == len(truth) == summary["frames"] == 24
    labels = {"circle", "square", "triangle"}
    for rec in frames:
        for det in rec["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= 320 and 0 <= y1 <= y2 <= 240
            assert det["label"] in labels and det["score"] >= 0.05
    assert cv2.VideoCapture(str(tmp_path / "g.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 24


def test_cli_help(run_cli):
    res = run_cli("camera", "--help")
    assert res.exit_code == 0
    for opt in ("--source", "--save", "--json", "--max-frames", "--duration", "--realtime",
                "--display", "--headless", "--threads", "--no-draw", "--score-threshold"):
        assert opt in res.out
