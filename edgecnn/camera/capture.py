"""A capture thread between a frame source and inference.

Two policies, chosen from the source:

- **latest** (cameras, streams, or any source with ``realtime=True``): the queue holds at most
  ``queue_size`` frames; when inference is slower than the camera, the oldest waiting frame is
  dropped (and counted) so the next ``get()`` returns the newest frame and latency stays at
  about one inference, not a growing backlog. A finite source read with ``realtime=True`` is
  paced at its nominal FPS, so it behaves like a camera playing the file.
- **every frame** (files and finite memory sources): ``put`` blocks, nothing is dropped.

A live source that stops delivering is reopened with bounded exponential back-off
(``backoff_initial * 2**k`` capped at ``backoff_max``); every successful reopen counts as a
reconnect, every failed attempt as a retry. End of file ends the capture cleanly.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgecnn.camera.sources import FrameSource, to_bgr


@dataclass(frozen=True)
class CaptureOptions:
    """How the capture thread reads its source.

    Attributes:
        realtime: treat any source as live (drop stale frames; pace finite sources at FPS).
        queue_size: frames held for the consumer in the latest-frame policy (>= 1).
        prefetch: frames read ahead in the every-frame policy (bounds memory: a few frames).
        max_reconnect_attempts: reopen attempts after a drop before giving up (0: never reopen).
        backoff_initial: first wait before reopening, seconds.
        backoff_max: cap of the exponential back-off, seconds.
    """

    realtime: bool = False
    queue_size: int = 1
    prefetch: int = 4
    max_reconnect_attempts: int = 10
    backoff_initial: float = 0.1
    backoff_max: float = 5.0


@dataclass(frozen=True)
class Frame:
    """One captured frame: ``index`` counts frames read from the source (dropped ones too).

    ``prepared`` holds what the capture's ``prepare`` hook returned for the image (the model
    input, when the loop preprocesses on the capture thread), ``prepare_ms`` its time and
    ``prepare_error`` the exception it raised, if any.
    """

    index: int
    t: float
    image: np.ndarray
    prepared: Any = None
    prepare_ms: float = 0.0
    prepare_error: BaseException | None = None


@dataclass
class CaptureStats:
    read: int = 0
    dropped: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    read_errors: int = 0
    backoff_s: float = 0.0
    decode_s: float = 0.0
    end_reason: str = ""
    last_error: str = ""


class Capture:
    """Reads ``source`` on a daemon thread; ``get()`` hands frames to the consumer.

    Example:
        with Capture(open_source("0")) as cap:
            while (frame := cap.get()) is not None:
                runner(frame.image)
    """

    def __init__(self, source: FrameSource, options: CaptureOptions = CaptureOptions(),
                 prepare: Callable[[np.ndarray], Any] | None = None):
        self.source = source
        self.options = options
        self.latest = source.live or options.realtime
        # Preprocessing on this thread overlaps it with inference; for a newest-frame source
        # it would be wasted on frames that get dropped, so it is only used for every-frame.
        self.prepare = None if self.latest else prepare
        # Refill when half the read-ahead is left: the consumer still holds a couple of
        # frames of work while this thread wakes up and decodes the next ones.
        self._low_water = max(0, self.options.prefetch // 2)
        self.stats = CaptureStats()
        self._frames: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="edgecnn-capture", daemon=True)
        self._t0 = 0.0

    # -- consumer side -------------------------------------------------------------------
    def start(self, t0: float | None = None) -> "Capture":
        """Start reading; frame times ``t`` are seconds since ``t0`` (default: now)."""
        self._t0 = time.perf_counter() if t0 is None else t0
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (newest in latest-frame mode); None when the source has ended.

        Raises:
            TimeoutError: no frame within ``timeout`` seconds while the source is still alive.
        """
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while not self._frames and not self._done:
                remaining = None if deadline is None else deadline - time.perf_counter()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("no frame yet")
                self._cond.wait(remaining if remaining is not None else 0.5)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            if not self.latest and len(self._frames) <= self._low_water:
                self._cond.notify_all()
            return frame

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.source.release()

    @property
    def finished(self) -> bool:
        return self._done

    def __enter__(self) -> "Capture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- capture thread ------------------------------------------------------------------
    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self.latest:
                while len(self._frames) >= max(1, self.options.queue_size):
                    self._frames.popleft()
                    self.stats.dropped += 1
            elif len(self._frames) >= max(1, self.options.prefetch):
                # Refill in bursts: wait until the consumer has drained to the low-water mark,
                # so it wakes this thread once per few frames instead of after every frame
                # (each wake-up contends for the GIL while the consumer runs Python).
                while len(self._frames) > self._low_water and not self._stop.is_set():
                    self._cond.wait(0.1)
            self._frames.append(frame)
            self._cond.notify_all()

    def _read(self) -> np.ndarray | None:
        start = time.perf_counter()
        try:
            image = self.source.read()
        except Exception as err:  # noqa: BLE001 - a failing driver is a dropped frame, not a crash
            self.stats.read_errors += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"
            image = None
        self.stats.decode_s += time.perf_counter() - start
        return _as_bgr(image)

    def _reconnect(self) -> bool:
        """Reopen a dropped live source with bounded exponential back-off."""
        opts = self.options
        for attempt in range(opts.max_reconnect_attempts):
            delay = min(opts.backoff_max, opts.backoff_initial * (2 ** attempt))
            self.stats.backoff_s += delay
            if self._stop.wait(delay):
                return False
            self.stats.reconnect_attempts += 1
            try:
                ok = self.source.reopen()
            except Exception as err:  # noqa: BLE001 - counted, retried, reported in the summary
                self.stats.last_error = f"{type(err).__name__}: {err}"
                ok = False
            if ok:
                self.stats.reconnects += 1
                return True
        return False

    def _run(self) -> None:
        pace = self.options.realtime and not self.source.live and self.source.fps > 0
        period = 1.0 / self.source.fps if pace else 0.0
        next_t = time.perf_counter()
        try:
            while not self._stop.is_set():
                image = self._read()
                if image is None:
                    if not self.source.live or self.source.ended:
                        self.stats.end_reason = self.source.end_reason(self.stats.read)
                        break
                    if not self._reconnect():
                        if not self._stop.is_set():
                            self.stats.end_reason = "source lost (reconnect attempts exhausted)"
                        break
                    continue
                frame = _make_frame(self.stats.read, time.perf_counter() - self._t0, image,
                                    self.prepare)
                self.stats.read += 1
                self._put(frame)
                if pace:
                    next_t += period
                    delay = next_t - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        break
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()


def _as_bgr(image: np.ndarray | None) -> np.ndarray | None:
    """Any source's gray or BGRA frame (also from a user's own FrameSource) as 3-channel,
    converted once here so that preprocessing and drawing see the same image."""
    if image is None or (image.ndim == 3 and image.shape[2] == 3):
        return image
    return to_bgr(image)


def _make_frame(index: int, t: float, image: np.ndarray,
                prepare: Callable[[np.ndarray], Any] | None) -> Frame:
    if prepare is None:
        return Frame(index, t, image)
    start = time.perf_counter()
    try:
        prepared, error = prepare(image), None
    except Exception as err:  # noqa: BLE001 - the consumer counts it as a failed frame
        prepared, error = None, err
    return Frame(index, t, image, prepared, (time.perf_counter() - start) * 1000.0, error)


class InlineCapture:
    """The :class:`Capture` interface without a thread: ``get()`` reads the source directly.

    For finite sources run sequentially (every frame, nothing to overlap); live sources always
    need the capture thread, which keeps draining the camera while inference runs.
    """

    latest = False

    def __init__(self, source: FrameSource, options: CaptureOptions = CaptureOptions(),
                 prepare: Callable[[np.ndarray], Any] | None = None):
        self.source = source
        self.options = options
        self.prepare = prepare
        self.stats = CaptureStats()
        self._t0 = 0.0
        self._done = False

    def start(self, t0: float | None = None) -> "InlineCapture":
        self._t0 = time.perf_counter() if t0 is None else t0
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        if self._done:
            return None
        start = time.perf_counter()
        try:
            image = self.source.read()
        except Exception as err:  # noqa: BLE001 - a failing file read ends it, reported
            self.stats.read_errors += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"
            image = None
        self.stats.decode_s += time.perf_counter() - start
        image = _as_bgr(image)
        if image is None:
            self._done = True
            self.stats.end_reason = self.source.end_reason(self.stats.read)
            return None
        frame = _make_frame(self.stats.read, time.perf_counter() - self._t0, image, self.prepare)
        self.stats.read += 1
        return frame

    @property
    def finished(self) -> bool:
        return self._done

    def stop(self) -> None:
        self._done = True
        self.source.release()
