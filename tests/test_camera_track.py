"""``edgecnn camera --track --line --zone --on-event --webhook --serve`` through the real CLI."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from camera_models import model_path
from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def blob_detector(request):
    return model_path(request.config, "blob_detector.tflite")


def _there_and_back(path, frames=48, size=(320, 240), side=64):
    """A white square going right across x = 160 and back: 1 crossing each way."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (w, h))
    half = frames // 2
    xs = [int(20 + (w - side - 40) * i / (half - 1)) for i in range(half)]
    for x in xs + xs[::-1]:
        img = np.zeros((h, w, 3), np.uint8)
        img[80:80 + side, x:x + side] = 255
        writer.write(img)
    writer.release()


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.server.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_track_line_zone_events_in_jsonl(tmp_path, run_cli, blob_detector):
    video = tmp_path / "sq.avi"
    _there_and_back(video)
    log, out = tmp_path / "o.jsonl", tmp_path / "events.jsonl"
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    hook.got = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        res = run_cli("camera", blob_detector, "--source", video, "--json", log,
                      "--line", "gate=160,0,160,240", "--zone", "0.7,0,1,0,1,1,0.7,1",
                      "--on-event", f"cat >> '{out}'; echo >> '{out}'",
                      "--webhook", f"http://127.0.0.1:{hook.server_port}/e", "--threads", "1")
    finally:
        hook.shutdown()
        hook.server_close()
    assert res.exit_code == 0, res.err
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    ids = {d["track_id"] for r in frames for d in r["detections"]}
    assert ids == {1}  # one square, one track, from first frame to last
    assert all(len(r["detections"]) == 1 for r in frames)
    gate = frames[-1]["counts"]["lines"][0]
    assert gate == {"name": "gate", "in": {"blob": 1}, "out": {"blob": 1}}
    zone = frames[-1]["counts"]["zones"][0]
    assert zone["name"] == "zone1" and zone["entered"] == {"blob": 1} == zone["exited"]
    events = [e for r in frames for e in r["events"]]
    assert [(e["type"], e.get("direction")) for e in events] == [
        ("cross", "out"), ("enter", None), ("exit", None), ("cross", "in")]
    assert events[2]["dwell_s"] > 0
    got = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    assert got == events and hook.got == events
    assert summary["extras"]["events"]["webhook"]["sent"] == 4
    assert summary["extras"]["track"]["lines"][0]["in"] == {"blob": 1}


def test_failing_event_command_is_a_warning_not_a_stop(tmp_path, run_cli, blob_detector):
    video = tmp_path / "sq.avi"
    _there_and_back(video)
    res = run_cli("camera", blob_detector, "--source", video, "--line", "160,0,160,240",
                  "--on-event", "exit 7", "--webhook", "http://127.0.0.1:9/none",
                  "--threads", "1")
    assert res.exit_code == 0, res.err
    assert "warning: on-event command failed" in res.err and "exit status 7" in res.err
    assert "warning: webhook failed" in res.err
    assert "frames 48" in res.err


def test_bad_options_are_one_line_errors(tmp_path, run_cli, blob_detector, request):
    video = tmp_path / "sq.avi"
    _there_and_back(video, frames=4)
    base = ("camera", blob_detector, "--source", video)
    for extra, needle in (
            (("--line", "1,2,3"), "4 numbers"),
            (("--zone", "1,2,3,4"), "at least 6"),
            (("--line", "x=1,1,1,1"), "two equal points"),
            (("--on-event", "echo hi"), "need a --line or --zone"),
            (("--line", "0,0,9,9", "--webhook", "ftp://x/y"), "not an http(s) URL"),
            (("--line", "0,0,9,9", "--hook", "nomodule_zz:f"), "cannot be loaded"),
            (("--serve", "localhost:99999"), "[HOST:]PORT"),
            (("--auth-token", "t"), "needs --serve"),
            (("--line", "a=0,0,9,9", "--zone", "a=0,0,9,0,9,9"), "names must differ")):
        assert_one_line_error(run_cli(*base, *extra), needle)
    classifier = model_path(request.config, "brightness_classifier.tflite")
    assert_one_line_error(run_cli("camera", classifier, "--source", video, "--track"),
                          "detection model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert_one_line_error(run_cli(*base, "--serve", str(port)), "already in use")


def test_cli_help_lists_deployment_options(run_cli):
    res = run_cli("camera", "--help")
    for opt in ("--track", "--line", "--zone", "--on-event", "--webhook", "--hook",
                "--event-rate", "--serve", "--auth-token", "--stream-fps"):
        assert opt in res.out
