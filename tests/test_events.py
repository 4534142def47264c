"""Event sinks: a real shell command, a real HTTP server on 127.0.0.1, a Python hook.

Failures, hangs, unreachable receivers, rate limits and full queues are counted and warned
about, never raised, and ``submit`` never waits for a receiver.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgecnn.camera.events import EventDispatcher, EventOptions, load_hook
from edgecnn.errors import UsageError

EVENT = {"type": "cross", "frame": 7, "t": 0.25, "track_id": 3, "index": 0, "label": "circle",
         "line": "door", "direction": "in"}


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append((self.headers["Content-Type"], json.loads(body)))
        if self.server.delay:
            time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.got, server.status, server.delay = [], 200, 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_command_gets_event_json_on_stdin(tmp_path):
    out = tmp_path / "events.jsonl"
    d = EventDispatcher(EventOptions(command=f"cat >> '{out}'; echo >> '{out}'"))
    d.submit([EVENT, {**EVENT, "frame": 8}])
    d.close()
    lines = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    assert lines == [EVENT, {**EVENT, "frame": 8}]
    assert d.stats()["on-event command"]["sent"] == 2


def test_failing_and_hanging_commands_are_counted(tmp_path, capfd):
    failing = EventDispatcher(EventOptions(command="exit 3"))
    failing.submit([EVENT] * 4)
    failing.close()
    assert failing.stats()["on-event command"] == {"sent": 0, "failed": 4, "timeouts": 0,
                                                   "dropped": 0, "rate_limited": 0}
    err = capfd.readouterr().err
    assert err.count("warning: on-event command failed") == 3 and "exit status 3" in err
    marker = tmp_path / "survivor"
    hanging = EventDispatcher(EventOptions(command=f"sleep 30; touch '{marker}'", timeout=0.5))
    start = time.monotonic()
    hanging.submit([EVENT])
    assert time.monotonic() - start < 1.0  # submit does not wait for the command
    assert _wait(lambda: hanging.stats()["on-event command"]["timeouts"] == 1)
    hanging.close()
    time.sleep(0.3)
    assert not marker.exists()  # the shell's child was killed with it


def test_webhook_posts_json(receiver):
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    d = EventDispatcher(EventOptions(webhook=url))
    d.submit([EVENT])
    d.close()
    assert receiver.got == [("application/json", EVENT)]
    assert d.stats()["webhook"]["sent"] == 1


def test_webhook_errors_unreachable_and_timeouts_are_counted(receiver, capfd):
    receiver.status = 500
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    d = EventDispatcher(EventOptions(webhook=url))
    d.submit([EVENT])
    d.close()
    assert d.stats()["webhook"]["failed"] == 1
    # A port nobody listens on.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    d = EventDispatcher(EventOptions(webhook=f"http://127.0.0.1:{dead}/"))
    d.submit([EVENT])
    d.close()
    assert d.stats()["webhook"]["failed"] == 1
    receiver.status, receiver.delay = 200, 2.0
    d = EventDispatcher(EventOptions(webhook=url, timeout=0.3))
    d.submit([EVENT])
    assert _wait(lambda: d.stats()["webhook"]["timeouts"] == 1)
    d.close()
    assert "warning: webhook failed" in capfd.readouterr().err


def test_rate_limit_and_full_queue_drop_and_count():
    got = []
    d = EventDispatcher(EventOptions(hooks=(got.append,), rate=1.0, burst=5))
    d.submit([EVENT] * 20)
    d.close()
    assert len(got) == 5 and d.stats()["hook append"]["rate_limited"] == 15
    release = threading.Event()

    def slow(event):
        release.wait(5)

    d = EventDispatcher(EventOptions(hooks=(slow,), rate=1000, burst=1000, queue_size=3))
    start = time.monotonic()
    d.submit([EVENT] * 10)
    assert time.monotonic() - start < 1.0
    release.set()
    d.close()
    stats = d.stats()["hook slow"]
    # One in the worker, three queued, the rest dropped.
    assert stats["dropped"] >= 6 and stats["sent"] + stats["dropped"] == 10


def test_hook_exceptions_are_counted(capfd):
    def broken(event):
        raise ValueError("pin busy")

    d = EventDispatcher(EventOptions(hooks=(broken,)))
    d.submit([EVENT])
    d.close()
    assert d.stats()["hook broken"]["failed"] == 1
    assert "pin busy" in capfd.readouterr().err


def test_load_hook_from_file_and_errors(tmp_path):
    f = tmp_path / "gpio_hook.py"
    f.write_text("seen = []\ndef on_event(e):\n    seen.append(e['type'])\n")
    fn = load_hook(f"{f}:on_event")
    fn(EVENT)
    assert sys.modules.get("gpio_hook") is None and fn.__globals__["seen"] == ["cross"]
    for spec, needle in ((f"{f}:nope", "no function"), ("no_such_module_x:f", "cannot be loaded"),
                         ("justaname", "MODULE:FUNCTION"), (f"{tmp_path}/none.py:f", "not exist")):
        with pytest.raises(UsageError, match=needle):
            load_hook(spec)
