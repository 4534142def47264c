"""``--serve``: real HTTP on 127.0.0.1 against a real camera loop and model.

Routes and their content, the token, and faults: clients that vanish, never read, or send
garbage must not stop or slow the loop, and the server must keep answering.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error

import cv2
import numpy as np
import pytest

from edgecnn.camera.serve import ServeOptions
from serve_helpers import LiveLoop


@pytest.fixture
def live():
    loop = LiveLoop()
    try:
        loop.wait_frames(3)
        yield loop
    finally:
        loop.close()


def _read_sse(resp, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        line = resp.readline()
        assert line, "stream ended"
        if line.startswith(b"data: "):
            out.append(json.loads(line[6:]))
    return out


def _read_mjpeg(resp, n: int) -> list[np.ndarray]:
    images = []
    while len(images) < n:
        line = resp.readline()
        assert line, "stream ended"
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            resp.readline()
            data = resp.read(length)
            images.append(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    return images


def test_routes(live):
    page = live.get("/").read().decode()
    assert "<title>edgecnn camera</title>" in page and "EventSource" in page
    snap = live.get("/snapshot.jpg")
    assert snap.headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snap.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    with live.get("/stream.mjpg") as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        frames = _read_mjpeg(stream, 3)
    assert all(f.shape == (240, 320, 3) for f in frames)
    with live.get("/events") as events:
        assert events.headers["Content-Type"] == "text/event-stream"
        records = _read_sse(events, 3)
    # The same schema as --json: frame, t, detections (with track_id), counts, timings.
    frames_seen = [r["frame"] for r in records]
    assert frames_seen == sorted(frames_seen) and len(set(frames_seen)) == 3
    for rec in records:
        assert {"frame", "t", "detections", "timings_ms", "fps", "counts", "events"} <= set(rec)
        assert "track" in rec["timings_ms"]
        assert all("track_id" in d for d in rec["detections"])
    health = json.loads(live.get("/healthz").read())
    assert health["status"] == "ok" and health["frames"] >= 3


def test_metrics_parse_as_prometheus_text(live):
    from prometheus_client import parser  # the [dev] extra: a real parser of the format
    with live.get("/stream.mjpg") as stream:
        _read_mjpeg(stream, 2)
    text = live.get("/metrics").read().decode()
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    for name in ("edgecnn_frames", "edgecnn_fps", "edgecnn_stage_ms",
                 "edgecnn_frames_dropped", "edgecnn_reconnects", "edgecnn_errors",
                 "edgecnn_line_crossings", "edgecnn_http_jpeg_encoded"):
        assert name in families, sorted(families)
    frames = families["edgecnn_frames"].samples[0].value
    assert frames >= 3
    stages = {s.labels["stage"] for s in families["edgecnn_stage_ms"].samples}
    assert {"preprocess", "inference", "postprocess", "track", "draw"} <= stages
    assert families["edgecnn_http_jpeg_encoded"].samples[0].value >= 2


def test_jpeg_encoded_only_while_watched_and_once_per_frame(live):
    live.wait_frames(live.hub.seq + 5)
    assert live.hub.summary()["jpeg_encoded"] == 0  # nobody watching: no encoding
    streams = [live.get("/stream.mjpg") for _ in range(3)]
    try:
        for s in streams:
            _read_mjpeg(s, 4)
    finally:
        for s in streams:
            s.close()
    encoded = live.hub.summary()["jpeg_encoded"]
    assert 4 <= encoded <= live.hub.seq  # 3 clients x 4 frames, yet at most one per frame


def test_token_protects_every_route():
    loop = LiveLoop(options=ServeOptions(port=0, token="s3cret"), track=False)
    try:
        loop.wait_frames(2)
        for path in ("/", "/stream.mjpg", "/snapshot.jpg", "/events", "/healthz", "/metrics"):
            for suffix, headers in (("", {}), ("?token=wrong", {}),
                                    ("", {"Authorization": "Bearer s3cre"})):
                with pytest.raises(urllib.error.HTTPError) as err:
                    loop.get(path + suffix, headers)
                assert err.value.code == 401, path
        assert loop.get("/healthz?token=s3cret").status == 200
        assert loop.get("/metrics", {"Authorization": "Bearer s3cret"}).status == 200
        page = loop.get("/?token=s3cret").read().decode()
        assert "token" in page  # the page passes the token on to its stream and events
        assert loop.hub.summary()["unauthorized"] == 18
    finally:
        loop.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_faulty_clients_do_not_stop_or_stall_the_loop():
    loop = LiveLoop(options=ServeOptions(port=0, send_timeout=1.0), fps=60.0)
    try:
        loop.wait_frames(3)
        port = loop.server.port
        # Connect and vanish; half a request and vanish; garbage; a stream then vanish.
        _connect(port).close()
        s = _connect(port)
        s.sendall(b"GET /stre")
        s.close()
        g = _connect(port)
        g.sendall(bytes(range(256)) * 4 + b"\r\n\r\n")
        reply = g.recv(200)
        g.close()
        # No HTTP version in that request line: the answer is a bare (HTTP/0.9 style) 400.
        assert b"400" in reply
        v = _connect(port)
        v.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        v.recv(100)
        v.close()
        deadline = time.monotonic() + 10
        while loop.hub.summary()["clients"] and time.monotonic() < deadline:
            time.sleep(0.05)
        dropped = loop.hub.summary()["clients_dropped"]
        # A stream client that never reads: a tiny receive buffer fills, sends block, and the
        # send timeout drops it while the loop goes on.
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        silent = _connect(port)  # connects, never sends a request
        before = loop.hub.seq
        deadline = time.monotonic() + 15
        while loop.hub.summary()["clients_dropped"] <= dropped and time.monotonic() < deadline:
            time.sleep(0.2)
        assert loop.hub.summary()["clients_dropped"] == dropped + 1
        assert loop.hub.seq - before >= 20  # frames kept coming meanwhile
        assert json.loads(loop.get("/healthz").read())["status"] == "ok"
        assert loop.hub.summary()["bad_requests"] >= 1
        stalled.close()
        silent.close()
    finally:
        summary = loop.close()
    assert summary.errors == 0 and summary.frames > 20
