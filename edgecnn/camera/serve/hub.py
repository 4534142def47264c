"""The hand-over between the camera loop and HTTP clients: newest frame and record only.

The loop calls :meth:`FrameHub.publish` once per frame; it stores references to the annotated
frame and its JSON record under a lock, bumps a sequence number and wakes waiting clients.
Nothing else happens on the loop's thread: no encoding, no copying, no I/O. Clients wait for
a sequence number newer than the one they sent last and take whatever is newest then, so a
slow client skips frames instead of queueing them. The JPEG of a frame is encoded on the
first client thread that asks for it and cached for the others (once per frame however many
clients, and never while nobody watches); the same holds for the record's JSON text.
"""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np


class FrameHub:
    """Latest-value slot for the annotated frame and its record, plus server counters.

    Args:
        jpeg_quality: OpenCV JPEG quality (0..100) of the stream and snapshots.
    """

    def __init__(self, jpeg_quality: int = 80):
        self.jpeg_quality = int(jpeg_quality)
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self.seq = 0
        self._image: np.ndarray | None = None
        self._record: dict | None = None
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._json: tuple[int, bytes] = (0, b"")
        self.status: dict = {}
        self.published_at = 0.0
        self.closed = False
        self.counters = {"jpeg_encoded": 0, "clients_total": 0, "clients_dropped": 0,
                         "clients_rejected": 0, "unauthorized": 0, "bad_requests": 0}
        self.clients = 0
        self._count_lock = threading.Lock()

    # -- loop side ----------------------------------------------------------------------
    def publish(self, image: np.ndarray, record: dict, status: dict) -> None:
        """Make ``image`` (not copied: the loop never draws on it again) the newest frame."""
        with self._cond:
            self._image, self._record, self.status = image, record, status
            self.seq += 1
            self.published_at = time.monotonic()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def summary(self) -> dict:
        with self._count_lock:
            return {**self.counters, "clients": self.clients}

    # -- client side --------------------------------------------------------------------
    def wait_newer(self, seq: int, timeout: float) -> int | None:
        """The newest sequence number once it is above ``seq``; None on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.seq <= seq and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return None if self.closed else self.seq

    def jpeg(self) -> tuple[int, bytes] | None:
        """``(seq, JPEG bytes)`` of the newest frame, encoded at most once per frame."""
        with self._encode_lock:
            with self._cond:
                seq, image = self.seq, self._image
            if image is None:
                return None
            if self._jpeg[0] != seq:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY,
                                                       self.jpeg_quality])
                if not ok:
                    return None
                self._jpeg = (seq, buf.tobytes())
                self.count("jpeg_encoded")
            return self._jpeg

    def record_json(self) -> tuple[int, bytes] | None:
        """``(seq, JSON bytes)`` of the newest record, serialized at most once per frame."""
        with self._encode_lock:
            with self._cond:
                seq, record = self.seq, self._record
            if record is None:
                return None
            if self._json[0] != seq:
                self._json = (seq, json.dumps(record, separators=(",", ":")).encode())
            return self._json

    def latest(self) -> tuple[int, dict | None, dict, float]:
        """``(seq, record, status, seconds since the last frame)`` for metrics and health."""
        with self._cond:
            age = time.monotonic() - self.published_at if self.seq else float("inf")
            return self.seq, self._record, dict(self.status), age

    def count(self, key: str, delta: int = 1) -> None:
        with self._count_lock:
            self.counters[key] = self.counters.get(key, 0) + delta

    def client_started(self, limit: int) -> bool:
        """Register a streaming client; False when ``limit`` are already connected."""
        with self._count_lock:
            if self.clients >= limit:
                self.counters["clients_rejected"] += 1
                return False
            self.clients += 1
            self.counters["clients_total"] += 1
            return True

    def client_ended(self, dropped: bool) -> None:
        with self._count_lock:
            self.clients -= 1
            if dropped:
                self.counters["clients_dropped"] += 1
