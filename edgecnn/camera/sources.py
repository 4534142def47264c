"""Frame sources: one typed object over a camera, a file, a stream, a pipeline or memory.

``open_source(spec)`` decides what ``spec`` is, opens it and returns a :class:`FrameSource`:

============================  ===========================================  =========
spec                          opened with                                  kind
============================  ===========================================  =========
``0``, ``/dev/video0``        ``cv2.VideoCapture(i, CAP_V4L2)`` then ANY   camera
``clip.mp4``                  ``cv2.VideoCapture(path, CAP_FFMPEG)``       file
``rtsp://``, ``http(s)://``   ``cv2.VideoCapture(url, CAP_FFMPEG)``        stream
``a ! b ! appsink``           ``cv2.VideoCapture(s, CAP_GSTREAMER)``       gstreamer
``picamera2``                 ``picamera2.Picamera2`` (if importable)      picamera2
(frames in memory)            :class:`MemorySource`                        memory
============================  ===========================================  =========

A source that cannot be opened raises :class:`SourceError` (a ``UsageError``) listing
everything that was tried, so a user on a headless Pi sees why in one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edgecnn.errors import UsageError

_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt)://", re.IGNORECASE)
_DEV_VIDEO = re.compile(r"^/dev/video(\d+)$")


class SourceError(UsageError):
    """A frame source could not be opened; the message lists what was tried."""


@dataclass(frozen=True)
class SourceRequest:
    """What the user asked of the source; honoured where the backend allows.

    Attributes:
        width, height: requested capture resolution (cameras and pipelines that accept it).
        fps: requested capture rate.
        read_timeout: seconds a stream may deliver nothing before a read fails (and the capture
            reconnects); without it a server that stops sending but keeps the connection
            open freezes the run (FFmpeg's own limit, when it has one, is far longer).
    """

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    read_timeout: float = 10.0


def opencv_video_backends() -> dict[str, bool]:
    """Which OpenCV video I/O backends this build has (from ``cv2.getBuildInformation``).

    Returns:
        e.g. ``{"FFMPEG": True, "GStreamer": False, "V4L/V4L2": True, "GUI": False}``.
    """
    info = cv2.getBuildInformation()
    found: dict[str, bool] = {}
    for key in ("FFMPEG", "GStreamer", "V4L/V4L2", "AVFoundation", "DirectShow", "MSMF"):
        m = re.search(rf"^\s*{re.escape(key)}:\s*(\S+)", info, re.MULTILINE)
        if m:
            found[key] = m.group(1).upper() not in ("NO", "OFF")
    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    found["GUI"] = gui is not None and gui.group(1).upper() not in ("NONE", "NO", "OFF")
    return found


def opencv_has_gstreamer() -> bool:
    return opencv_video_backends().get("GStreamer", False)


def opencv_has_gui() -> bool:
    """True when ``cv2.imshow`` can open a window (opencv-python-headless cannot)."""
    return opencv_video_backends().get("GUI", False)


class FrameSource:
    """Base of all sources. ``read()`` returns a BGR uint8 frame, or None.

    None means end of file for a finite source (``live`` False) and a dropped stream for a live
    one; :class:`edgecnn.camera.capture.Capture` then calls :meth:`reopen` with back-off.

    Attributes:
        kind: ``camera``, ``file``, ``stream``, ``gstreamer``, ``picamera2`` or ``memory``.
        name: the spec the user gave (for messages and the summary).
        live: frames arrive in real time (a camera or a stream), not as fast as we read.
        fps: the source's nominal frame rate, 0 when unknown.
        size: ``(width, height)`` of the frames, ``(0, 0)`` when unknown.
        frame_count: number of frames of a file, None when unknown or infinite.
    """

    kind = "source"
    live = False
    #: Set by a source that knows it has no more frames (a finite live source), so that a
    #: None from read() ends the capture instead of triggering reconnects.
    ended = False

    def __init__(self, name: str):
        self.name = name
        self.fps = 0.0
        self.size = (0, 0)
        self.frame_count: int | None = None

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def reopen(self) -> bool:
        """Try to open the source again after a drop; True when it is readable again."""
        return False

    def end_reason(self, frames_read: int) -> str:
        """Why reading stopped, once ``read()`` returned None for good after ``frames_read``
        frames: a file that declares more frames than it delivered ended early."""
        expected = self.frame_count
        if expected and frames_read + max(2, expected // 100) < expected:
            return (f"input ended early: {frames_read} of {expected} frames read "
                    "(damaged or truncated file?)")
        return "end of input"

    def release(self) -> None:
        """Free the device or file. Safe to call more than once."""

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "live": self.live, "fps": self.fps,
                "width": self.size[0], "height": self.size[1], "frame_count": self.frame_count}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture`` over a camera, file, URL or GStreamer pipeline."""

    def __init__(self, name: str, target: int | str, api: int, kind: str,
                 request: SourceRequest = SourceRequest()):
        super().__init__(name)
        self.kind = kind
        self.live = kind != "file"
        self.target = target
        self.api = api
        self.request = request
        self.cap: cv2.VideoCapture | None = None
        if not self._open():
            raise SourceError(f"cannot open {kind} {name!r}")

    def _open(self) -> bool:
        self.release()
        if self.kind == "stream" and self.request.read_timeout:
            ms = int(self.request.read_timeout * 1000)
            cap = cv2.VideoCapture(self.target, self.api, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            return False
        req = self.request
        # Requests only make sense for devices; a file or URL has the size it has.
        if self.kind == "camera":
            if req.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(req.width))
            if req.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(req.height))
            if req.fps:
                cap.set(cv2.CAP_PROP_FPS, float(req.fps))
            # Keep the driver's own queue short: stale frames are dropped by our capture thread.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.kind == "file":
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = n if n > 0 else None
        return True

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return None
        return to_bgr(frame)

    def reopen(self) -> bool:
        return self._open()

    def read_probe(self) -> bool:
        """Decode one frame to prove a file is a video, then reopen it at frame 0.

        Reopening is exact where seeking back (``CAP_PROP_POS_FRAMES``) is not for all codecs.
        """
        if self.read() is None:
            return False
        return self._open()

    def release(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class Picamera2Source(FrameSource):
    """The Raspberry Pi camera through ``picamera2`` (libcamera), delivering BGR frames."""

    kind = "picamera2"
    live = True

    def __init__(self, name: str = "picamera2", request: SourceRequest = SourceRequest()):
        super().__init__(name)
        from picamera2 import Picamera2  # only on a Pi with python3-picamera2

        self.request = request
        self._cls = Picamera2
        self.cam = None
        if not self._open():
            raise SourceError("picamera2 found no camera")

    def _open(self) -> bool:
        self.release()
        cam = self._cls()
        size = (int(self.request.width or 640), int(self.request.height or 480))
        # libcamera's "RGB888" is B,G,R in memory, i.e. what OpenCV calls BGR.
        config = cam.create_video_configuration(main={"size": size, "format": "RGB888"})
        if self.request.fps:
            frame_us = int(1_000_000 / float(self.request.fps))
            config["controls"] = {"FrameDurationLimits": (frame_us, frame_us)}
        cam.configure(config)
        cam.start()
        self.cam = cam
        self.size = size
        self.fps = float(self.request.fps or 0.0)
        return True

    def read(self) -> np.ndarray | None:
        if self.cam is None:
            return None
        return self.cam.capture_array("main")

    def reopen(self) -> bool:
        try:
            return self._open()
        except Exception:  # noqa: BLE001 - a camera that is still gone is retried later
            return False

    def release(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            finally:
                self.cam = None


class MemorySource(FrameSource):
    """Frames from memory: benchmarks without decode cost, and tests.

    Args:
        frames: one frame (HxW or HxWxC array) or a sequence of frames, cycled in order.
        count: number of frames to deliver before end of stream (None: endless).
        live: behave like a camera (the capture thread drops stale frames).
        fps: when > 0 and live, deliver at most this many frames per second like a camera.
        copy: hand out a copy of each frame, so drawing on it never changes the source
            (the copy is what a real decoder costs at minimum: one frame of memory traffic).
    """

    kind = "memory"

    def __init__(self, frames: np.ndarray | Sequence[np.ndarray], count: int | None = None,
                 live: bool = False, fps: float = 0.0, copy: bool = True, name: str = "memory"):
        super().__init__(name)
        if isinstance(frames, np.ndarray) and frames.ndim in (2, 3):
            frames = [frames]
        # Converted once here, not per frame: a gray or BGRA frame would pass preprocessing and
        # then fail in drawing.
        self.frames = [np.ascontiguousarray(to_bgr(np.asarray(f))) for f in frames]
        if not self.frames:
            raise UsageError("MemorySource needs at least one frame")
        self.count = count
        self.live = live
        self.fps = float(fps)
        self.copy = copy
        h, w = self.frames[0].shape[:2]
        self.size = (w, h)
        self.frame_count = count
        self.position = 0
        self._next_t = 0.0

    def read(self) -> np.ndarray | None:
        if self.count is not None and self.position >= self.count:
            self.ended = True
            return None
        if self.live and self.fps > 0:
            now = time.perf_counter()
            if self._next_t > now:
                time.sleep(self._next_t - now)
            self._next_t = max(now, self._next_t) + 1.0 / self.fps
        frame = self.frames[self.position % len(self.frames)]
        self.position += 1
        return frame.copy() if self.copy else frame


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """A gray (HxW, HxWx1) or 4-channel uint8 frame as 3-channel, channel order kept (gray
    replicated, alpha dropped); anything else is returned as it is, for the loop's stages to
    accept or count as a failed frame.
    """
    if frame.dtype != np.uint8 or 0 in frame.shape[:2]:
        return frame
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's own WARN lines while probing: our error lists the attempts instead."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log.setLogLevel(old)


def _try_opencv(attempts: list[str], name: str, target, api: int, api_name: str, kind: str,
                request: SourceRequest) -> OpenCVSource | None:
    try:
        with _quiet_opencv():
            return OpenCVSource(name, target, api, kind, request)
    except SourceError:
        attempts.append(f"{kind} via OpenCV {api_name}: did not open")
    except cv2.error as err:
        attempts.append(f"{kind} via OpenCV {api_name}: {str(err).strip().splitlines()[-1]}")
    return None


def open_source(spec: str | int | FrameSource, width: int | None = None,
                height: int | None = None, fps: float | None = None,
                read_timeout: float = 10.0) -> FrameSource:
    """Open ``spec`` as the right kind of source (see the module docstring).

    Args:
        spec: camera index (``0`` or ``"0"``), ``/dev/videoN``, a file path, a URL, a GStreamer
            pipeline (contains ``!``), ``picamera2``, or an already open :class:`FrameSource`.
        width, height, fps: capture requests, used where the source accepts them.
        read_timeout: seconds a stream may stay silent before the capture reconnects.

    Raises:
        SourceError: nothing could be opened; the message lists every attempt and a fix.
    """
    if isinstance(spec, FrameSource):
        return spec
    request = SourceRequest(width, height, fps, read_timeout)
    text = str(spec).strip()
    if not text:
        raise SourceError("empty --source", "pass a camera index, /dev/videoN, file, URL or "
                          "GStreamer pipeline")
    attempts: list[str] = []
    if text.lower() in ("picamera2", "picam", "picamera"):
        return _open_picamera2(text, request, attempts)
    if "!" in text:
        return _open_gstreamer(text, request, attempts)
    if _URL.match(text):
        return _open_stream(text, request, attempts)
    camera = _open_camera(text, request, attempts)
    if camera is not None:
        return camera
    if os.path.isdir(text):
        raise SourceError(f"source {text!r} is a directory, not a video",
                          "pass a video file, camera index or URL")
    if os.path.isfile(text):
        return _open_file(text, request, attempts)
    attempts.append("not a camera index, /dev/videoN, URL, GStreamer pipeline or picamera2")
    raise SourceError(f"source {text!r} not found: {'; '.join(attempts)}",
                      "pass an existing video file, a camera index like 0, /dev/video0, an "
                      "rtsp:// or http:// URL, a GStreamer pipeline or picamera2")


def _open_picamera2(text: str, request: SourceRequest, attempts: list[str]) -> FrameSource:
    try:
        return Picamera2Source(text, request)
    except ImportError:
        attempts.append("picamera2: not installed (on Raspberry Pi OS: "
                        "sudo apt install python3-picamera2)")
    except Exception as err:  # noqa: BLE001 - any camera failure becomes one line
        attempts.append(f"picamera2: {type(err).__name__}: {err}")
    raise SourceError(f"cannot open source {text!r}: " + "; ".join(attempts))


def _open_gstreamer(text: str, request: SourceRequest, attempts: list[str]) -> FrameSource:
    if not opencv_has_gstreamer():
        raise SourceError(
            f"{text!r} looks like a GStreamer pipeline but this OpenCV build has no "
            "GStreamer support", "install an OpenCV built with GStreamer (e.g. Debian's "
            "python3-opencv) or use --source picamera2")
    src = _try_opencv(attempts, text, text, cv2.CAP_GSTREAMER, "GStreamer", "gstreamer", request)
    if src:
        return src
    raise SourceError(f"cannot open GStreamer pipeline: {'; '.join(attempts)}",
                      "test it with gst-launch-1.0 and end it with '! appsink'")


def _open_stream(text: str, request: SourceRequest, attempts: list[str]) -> FrameSource:
    for api, api_name in ((cv2.CAP_FFMPEG, "FFMPEG"), (cv2.CAP_ANY, "any backend")):
        src = _try_opencv(attempts, text, text, api, api_name, "stream", request)
        if src:
            return src
    raise SourceError(f"cannot open stream {text!r}: {'; '.join(attempts)}",
                      "check the URL and that the stream is up")


def _open_camera(text: str, request: SourceRequest, attempts: list[str]) -> FrameSource | None:
    """A camera index or /dev/videoN; None if ``text`` is neither (or a file named like one)."""
    dev = _DEV_VIDEO.match(text)
    if text.isdigit():
        index = int(text)
    elif dev:
        index = int(dev.group(1))
    else:
        return None
    targets: list[tuple[int | str, int, str]] = [(index, cv2.CAP_V4L2, "V4L2"),
                                                  (index, cv2.CAP_ANY, "any backend")]
    if dev:
        targets.insert(0, (text, cv2.CAP_V4L2, "V4L2 by path"))
        if not os.path.exists(text):
            attempts.append(f"{text}: no such device")
            targets = []
    for target, api, api_name in targets:
        src = _try_opencv(attempts, text, target, api, api_name, "camera", request)
        if src:
            return src
    if not os.path.exists(text) or dev:
        raise SourceError(f"cannot open camera {text!r}: {'; '.join(attempts)}",
                          "check 'ls /dev/video*' and that no other program uses it, "
                          "or pass a file, URL or GStreamer pipeline")
    return None


def _open_file(text: str, request: SourceRequest, attempts: list[str]) -> FrameSource:
    for api, api_name in ((cv2.CAP_FFMPEG, "FFMPEG"), (cv2.CAP_ANY, "any backend")):
        src = _try_opencv(attempts, text, text, api, api_name, "file", request)
        if src is not None:
            if src.read_probe():
                return src
            src.release()
            attempts.append(f"file via OpenCV {api_name}: opened but no frame decodes")
    raise SourceError(f"cannot read video file {text!r}: {'; '.join(attempts)}",
                      "is it a video OpenCV's FFMPEG can decode?")
