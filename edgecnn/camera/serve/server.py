"""``--serve``: an HTTP server beside the camera loop (standard library only).

Routes: ``/`` (the live page), ``/stream.mjpg`` (MJPEG), ``/snapshot.jpg``, ``/events``
(Server-Sent Events: the ``--json`` record of each frame), ``/healthz`` and ``/metrics``
(Prometheus). ``http.server.ThreadingHTTPServer`` gives each client a thread; the loop never
waits for any of them (:mod:`.hub`). A client that stops reading blocks only its own thread
until the send timeout drops it; one that connects and says nothing is dropped by the same
timeout; a malformed request gets a 400 from the standard library's parser.

With a token, every route wants it: ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (for
the page and the ``<img>`` / ``EventSource`` it opens), compared in constant time.
"""

from __future__ import annotations

import errno
import hmac
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Callable

from edgecnn.camera.serve import metrics
from edgecnn.camera.serve.hub import FrameHub
from edgecnn.errors import UsageError

_BOUNDARY = "edgecnnframe"
# Kernel send buffer of a streaming client: small enough that one that stops reading fills it
# within seconds (then the send timeout drops it), large enough for a few JPEG frames.
_STREAM_SNDBUF = 256 * 1024


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and treats clients.

    Attributes:
        host: address to bind (``127.0.0.1``: this machine only; ``0.0.0.0``: every interface).
        port: TCP port (0: any free one, see :attr:`HttpServer.port`).
        token: required on every route when set.
        max_clients: streaming clients (``/stream.mjpg``, ``/events``) served at once.
        send_timeout: seconds a client may block a send (or stay silent) before it is dropped.
        stream_fps: most frames per second sent to one stream client (JPEG encoding costs
            CPU the loop needs; the page does not need every frame of a fast model).
        stale_after: ``/healthz`` answers 503 when no frame came for this many seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_clients: int = 8
    send_timeout: float = 5.0
    stream_fps: float = 15.0
    stale_after: float = 5.0


def parse_address(spec: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> ``(host, port)``; host defaults to 127.0.0.1 (``[::1]:80`` for IPv6).

    Raises:
        UsageError: not a port number in 0..65535.
    """
    spec = spec.strip()
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", spec
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {spec!r} is not [HOST:]PORT",
                         "e.g. --serve 8080 (this machine) or --serve 0.0.0.0:8080 (network)")
    return host, int(port)


def _page() -> bytes:
    return resources.files("edgecnn.camera.serve").joinpath("page.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    server_version = "edgecnn"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # One timeout for reading the request and for every send: a silent or non-reading
        # client is dropped after it (socket.timeout in the handler).
        self.connection.settimeout(self.server.options.send_timeout)

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # no per-request lines on the camera's stderr

    def send_error(self, code, message=None, explain=None) -> None:
        if code in (HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_URI_TOO_LONG,
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, HTTPStatus.NOT_IMPLEMENTED,
                    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED):
            self.server.hub.count("bad_requests")
        self.close_connection = True
        super().send_error(code, message, explain)

    # -- routing ------------------------------------------------------------------------
    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    def do_POST(self) -> None:  # noqa: N802
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        route = {"/": self._page, "/index.html": self._page, "/stream.mjpg": self._stream,
                 "/snapshot.jpg": self._snapshot, "/events": self._events,
                 "/healthz": self._health, "/metrics": self._metrics}.get(url.path)
        if route is None:
            self.server.hub.count("bad_requests")
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        if not self._authorized(url.query):
            self.server.hub.count("unauthorized")
            self._send(HTTPStatus.UNAUTHORIZED, b"a valid token is required\n", "text/plain",
                       {"WWW-Authenticate": 'Bearer realm="edgecnn"'})
            return
        try:
            route()
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True

    def _authorized(self, query: str) -> bool:
        token = self.server.options.token
        if not token:
            return True
        given = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer "):].strip()
        else:
            given = urllib.parse.parse_qs(query).get("token", [""])[0]
        return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    # -- routes -------------------------------------------------------------------------
    def _page(self) -> None:
        self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")

    def _snapshot(self) -> None:
        hub = self.server.hub
        if hub.seq == 0:
            hub.wait_newer(0, self.server.options.send_timeout)
        got = hub.jpeg()
        if got is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            return
        self._send(HTTPStatus.OK, got[1], "image/jpeg")

    def _health(self) -> None:
        seq, _, status, age = self.server.hub.latest()
        ok = seq > 0 and age <= self.server.options.stale_after
        body = json.dumps({"status": "ok" if ok else "stale", "frames": status.get("frames", 0),
                           "last_frame_age_s": round(age, 3) if seq else None}).encode()
        self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body,
                   "application/json")

    def _metrics(self) -> None:
        hub = self.server.hub
        _, record, status, age = hub.latest()
        events = self.server.event_stats() if self.server.event_stats else None
        text = metrics.render(status, record, hub.summary(), age, events)
        self._send(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _streaming(self, ctype: str, body: Callable[[], None]) -> None:
        hub = self.server.hub
        if not hub.client_started(self.server.options.max_clients):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many clients\n", "text/plain")
            return
        dropped = False
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _STREAM_SNDBUF)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            body()
        except (ConnectionError, socket.timeout, TimeoutError):
            dropped = True
        finally:
            hub.client_ended(dropped)

    def _stream(self) -> None:
        self._streaming(f"multipart/x-mixed-replace; boundary={_BOUNDARY}", self._frames)

    def _frames(self) -> None:
        hub, opts = self.server.hub, self.server.options
        period = 1.0 / opts.stream_fps if opts.stream_fps > 0 else 0.0
        last = 0
        while not hub.closed:
            if hub.wait_newer(last, 1.0) is None:
                continue
            got = hub.jpeg()
            if got is None:
                continue
            last, data = got
            self.wfile.write(f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             f"{len(data)}\r\n\r\n".encode() + data + b"\r\n")
            if period and self.server.stopping.wait(period):
                return

    def _events(self) -> None:
        self._streaming("text/event-stream", self._records)

    def _records(self) -> None:
        hub = self.server.hub
        last = 0
        self.wfile.write(b"retry: 1000\n\n")
        while not hub.closed:
            if hub.wait_newer(last, 10.0) is None:
                self.wfile.write(b": keep-alive\n\n")  # a dead client shows up as a send error
                continue
            got = hub.record_json()
            if got is None:
                continue
            last, data = got
            self.wfile.write(b"data: " + data + b"\n\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def __init__(self, address, options: ServeOptions, hub: FrameHub,
                 event_stats: Callable[[], dict] | None):
        self.options = options
        self.hub = hub
        self.event_stats = event_stats
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class HttpServer:
    """The running server: binds at construction (so a busy port fails before the camera
    opens), serves on a daemon thread after :meth:`start`.

    Example:
        hub = FrameHub()
        server = HttpServer(hub, ServeOptions(port=8080)).start()
        run(model, source, LoopOptions(publisher=hub))
        server.close()
    """

    def __init__(self, hub: FrameHub, options: ServeOptions = ServeOptions(),
                 event_stats: Callable[[], dict] | None = None):
        self.hub = hub
        self.options = options
        try:
            self.httpd = _Server((options.host, options.port), options, hub, event_stats)
        except OSError as err:
            where = f"{options.host}:{options.port}"
            if err.errno == errno.EADDRINUSE:
                raise UsageError(f"cannot serve on {where}: the port is already in use",
                                 "choose another port with --serve, or stop what uses it"
                                 ) from None
            raise UsageError(f"cannot serve on {where}: {err.strerror or err}",
                             "check the host address of --serve") from None
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.2}, name="edgecnn-serve", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.options.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    def start(self) -> "HttpServer":
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, end the streams, free the port."""
        self.hub.close()
        self.httpd.stopping.set()
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
