"""The real-time loop: capture, preprocess, infer, postprocess, draw, write; timed per stage.

``run(model, source, options)`` is the whole camera command without the argument parsing.

Threads (``pipeline=True``, the default)::

    capture thread                          caller's thread
    read/decode frame n+1                   infer frame n, postprocess, draw, write,
    (+ preprocess it, for files/memory)     display, stop checks

For a file or memory source every frame is processed and the capture thread runs ahead by a
few frames (bounded queue), decoding and preprocessing them while the interpreter runs; the
interpreter and OpenCV release the GIL in their C++ work, so the two overlap on two cores. For
a live source the capture thread keeps only the newest frame (stale ones are dropped and
counted) and preprocessing stays on the caller's thread, so no work is spent on frames that
will be dropped. ``pipeline=False`` reads a file on the caller's thread, stage after stage.
One hand-over per frame, not one per stage: with a sub-millisecond int8 model a thread
wake-up is not small next to a stage (docs/BENCHMARKS.md, section camera).

Nothing a single frame does can end the loop: an exception in any stage is counted, its
message kept (first few distinct ones), and the loop goes on; only ``max_consecutive_errors``
failures in a row stop it, so a model that fails on every frame does not spin forever.
SIGINT and SIGTERM set a stop flag; outputs are finalized in a ``finally``.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from edgecnn.camera import overlay
from edgecnn.camera.capture import Capture, CaptureOptions, Frame, InlineCapture
from edgecnn.camera.sources import FrameSource
from edgecnn.camera.stages import FrameContext, FrameStage, Publisher
from edgecnn.camera.stats import Histogram
from edgecnn.camera.summary import Summary
from edgecnn.camera.writer import JsonLinesSink, VideoSink
from edgecnn.runtime.runner import Runner

STAGES = ("preprocess", "inference", "postprocess", "draw", "write")


@dataclass(frozen=True)
class LoopOptions:
    """What a camera run does besides inference.

    Attributes:
        max_frames: stop after this many processed frames.
        duration: stop after this many seconds.
        draw: draw results and stats on the frame (needed for a useful ``save``/``display``).
        save: video output path (written atomically, playable after Ctrl-C).
        json: JSON Lines output path, ``-`` for stdout.
        display: show a window (needs OpenCV with GUI support; checked by the CLI).
        realtime: treat a file like a camera: pace at its FPS and drop stale frames.
        pipeline: overlap preprocessing, inference and output in threads.
        color: channel order of the source's frames (OpenCV delivers ``BGR``).
        max_consecutive_errors: stop after this many failing frames in a row.
        handle_signals: turn SIGINT/SIGTERM into a clean stop (main thread only).
        capture: options of the capture thread (queue, back-off).
        stages: per-frame steps after postprocessing, in order (tracking and counting,
            events; :mod:`edgecnn.camera.stages`); each one's time is a stage timing.
        publisher: receives every annotated frame and its record (the ``--serve`` hub).
    """

    max_frames: int | None = None
    duration: float | None = None
    draw: bool = True
    save: str | None = None
    json: str | None = None
    display: bool = False
    realtime: bool = False
    pipeline: bool = True
    color: str = "BGR"
    max_consecutive_errors: int = 100
    handle_signals: bool = True
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    stages: tuple[FrameStage, ...] = ()
    publisher: Publisher | None = None


class _Item:
    __slots__ = ("frame", "tensor", "ctx", "raw", "timings", "error", "record")

    def __init__(self, frame: Frame):
        self.frame = frame
        self.tensor: Any = None   # the runner's types: tensor, context, raw outputs
        self.ctx: Any = None
        self.raw: Any = None
        self.timings: dict[str, float] = {}
        self.error: str | None = None
        self.record: dict | None = None


class _ErrorLog:
    """Thread-safe count of failing frames and the first few distinct messages."""

    def __init__(self, keep: int = 5):
        self.count = 0
        self.messages: list[str] = []
        self.keep = keep
        self._lock = threading.Lock()

    def add(self, stage: str, err: BaseException) -> str:
        msg = f"{stage}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        with self._lock:
            self.count += 1
            if len(self.messages) < self.keep and msg not in self.messages:
                self.messages.append(msg)
        return msg


def _timed(item: _Item, stage: str, errors: _ErrorLog, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - one bad frame must not end the loop
        item.error = errors.add(stage, err)
        return None
    finally:
        item.timings[stage] = (time.perf_counter() - start) * 1000.0


class _Loop:
    """State of one run: the runner (the runtime's protocol), capture, outputs, statistics."""

    def __init__(self, runner: Runner, capture: Capture | InlineCapture, options: LoopOptions):
        self.runner = runner
        self.capture = capture
        self.options = options
        self.stop = threading.Event()
        self.stopped_by = ""
        self.errors = _ErrorLog()
        self.stage_names = (*STAGES, *(st.name for st in options.stages))
        # Fixed memory for runs of any length: per-stage histograms, not per-frame lists.
        self.stage_ms: dict[str, Histogram] = {s: Histogram() for s in (*self.stage_names,
                                                                          "total", "latency")}
        self.intervals_ms = Histogram()
        self.last_out: float | None = None
        self.frames = 0
        self.consecutive_errors = 0
        self.video: VideoSink | None = None
        self.jsonl: JsonLinesSink | None = None
        self.fps_ema: float | None = None
        self.last_stage_ms: dict[str, float] = {}
        self.stats_band = overlay.StatsBand()
        self.t0 = time.perf_counter()

    def request_stop(self, reason: str) -> None:
        if not self.stopped_by:
            self.stopped_by = reason
        self.stop.set()

    # -- stages -------------------------------------------------------------------------
    def do_pre(self, item: _Item) -> None:
        out = _timed(item, "preprocess", self.errors,
                     lambda: self.runner.preprocess(item.frame.image, self.options.color))
        if item.error is None:
            item.tensor, item.ctx = out

    def do_infer(self, item: _Item) -> None:
        if item.error is None:
            item.raw = _timed(item, "inference", self.errors,
                              lambda: self.runner.infer(item.tensor))
            item.tensor = None

    def do_output(self, item: _Item) -> None:
        """Postprocess, draw, write, display; runs on the caller's thread."""
        results = frame_ctx = None
        if item.error is None:
            results = _timed(item, "postprocess", self.errors,
                             lambda: self.runner.postprocess(item.raw, item.ctx))
        if item.error is None and self.options.stages:
            frame_ctx = FrameContext(item.frame.index, item.frame.t, item.frame.image, results)
            for stage in self.options.stages:
                _timed(item, stage.name, self.errors, lambda: stage.process(frame_ctx))
                if item.error is not None:
                    break
            results = frame_ctx.results
        if item.error is None and self.options.draw:
            _timed(item, "draw", self.errors, lambda: self._draw(item, results, frame_ctx))
        if item.error is None:
            _timed(item, "write", self.errors, lambda: self._write(item, results, frame_ctx))
        if item.error is not None:
            self.consecutive_errors += 1
            if self.consecutive_errors >= self.options.max_consecutive_errors:
                self.request_stop(f"{self.consecutive_errors} consecutive frame errors")
            return
        self.consecutive_errors = 0
        now = time.perf_counter()
        item.timings["total"] = sum(item.timings.get(s, 0.0) for s in self.stage_names)
        item.timings["latency"] = (now - self.t0 - item.frame.t) * 1000.0
        for name, ms in item.timings.items():
            self.stage_ms[name].add(ms)
        if self.last_out is not None:
            dt = now - self.last_out
            self.intervals_ms.add(dt * 1000.0)
            inst = 1.0 / dt if dt > 0 else 0.0
            self.fps_ema = inst if self.fps_ema is None else 0.9 * self.fps_ema + 0.1 * inst
        self.last_out = now
        self.last_stage_ms = {"pre": item.timings.get("preprocess", 0.0),
                              "infer": item.timings.get("inference", 0.0),
                              "post": item.timings.get("postprocess", 0.0)}
        self.frames += 1
        if self.options.publisher is not None:
            self._publish(self.options.publisher, item)
        if self.options.display:
            self._show(item.frame.image)
        if self.options.max_frames is not None and self.frames >= self.options.max_frames:
            self.request_stop("max frames")

    def _draw(self, item: _Item, results, frame_ctx: FrameContext | None) -> None:
        overlay.draw_results(item.frame.image, results)
        if frame_ctx is not None:
            for stage in self.options.stages:
                stage.draw(item.frame.image, frame_ctx)
        self.stats_band.draw(item.frame.image, self.fps_ema, self.last_stage_ms)

    def _write(self, item: _Item, results, frame_ctx: FrameContext | None) -> None:
        if self.video is not None:
            self.video.write(item.frame.image)
        if self.jsonl is not None or self.options.publisher is not None:
            record: dict[str, Any] = {"frame": item.frame.index, "t": round(item.frame.t, 4)}
            record[self.runner.result_key] = [r.to_dict() for r in results]
            if frame_ctx is not None:
                record.update(frame_ctx.record)
            record["fps"] = round(self.fps_ema or 0.0, 2)
            record["timings_ms"] = {k: round(v, 3) for k, v in item.timings.items()}
            item.record = record
            if self.jsonl is not None:
                self.jsonl.write(record)

    def _publish(self, publisher: Publisher, item: _Item) -> None:
        """Hand the annotated frame to the publisher (it only stores a reference)."""
        stats = self.capture.stats
        status = {"frames": self.frames, "read": stats.read, "dropped": stats.dropped,
                  "reconnects": stats.reconnects, "errors": self.errors.count,
                  "fps": self.fps_ema}
        try:
            publisher.publish(item.frame.image, item.record or {}, status)
        except Exception as err:  # noqa: BLE001 - a publisher must never end the loop
            self.errors.add("publish", err)

    def _show(self, image: np.ndarray) -> None:
        import cv2

        cv2.imshow("edgecnn camera", image)
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            self.request_stop("key pressed")

    # -- drivers ------------------------------------------------------------------------
    def _next_frame(self) -> Frame | None | Literal[False]:
        """A frame, None at end of input, or False when nothing arrived yet."""
        try:
            frame = self.capture.get(timeout=0.1)
        except TimeoutError:
            return False
        return frame

    def _check_duration(self) -> None:
        d = self.options.duration
        if d is not None and time.perf_counter() - self.t0 >= d:
            self.request_stop("duration")

    def run_frames(self) -> None:
        """The loop: next frame, preprocess (unless the capture thread did), infer, output."""
        while not self.stop.is_set():
            self._check_duration()
            if self.stop.is_set():
                break
            frame = self._next_frame()
            if frame is False:
                continue
            if frame is None:
                self.request_stop(self.capture.stats.end_reason or "end of input")
                break
            item = _Item(frame)
            if frame.prepare_error is not None:
                item.error = self.errors.add("preprocess", frame.prepare_error)
                item.timings["preprocess"] = frame.prepare_ms
            elif frame.prepared is not None:
                item.tensor, item.ctx = frame.prepared
                item.timings["preprocess"] = frame.prepare_ms
            else:
                self.do_pre(item)
            self.do_infer(item)
            self.do_output(item)


def run(model: Runner, source: FrameSource, options: LoopOptions = LoopOptions(), *,
        stop_event: threading.Event | None = None) -> Summary:
    """Run ``model`` on every (or the newest) frame of ``source`` until a stop condition.

    Args:
        model: a runner (``edgecnn.runtime.load``, or anything following the
            :class:`~edgecnn.runtime.runner.Runner` protocol).
        source: an open frame source (``open_source(...)``); released at the end.
        options: outputs and stop conditions.
        stop_event: set it from another thread to stop the run (tests, embedding apps).

    Returns:
        The :class:`Summary`; outputs are finalized before it is returned.
    """
    capture_opts = options.capture
    if options.realtime and not capture_opts.realtime:
        from dataclasses import replace

        capture_opts = replace(capture_opts, realtime=True)
    live = source.live or capture_opts.realtime
    capture: Capture | InlineCapture
    if options.pipeline:
        # Decoding and (for every-frame sources) preprocessing of the next frames run on the
        # capture thread while this thread infers, postprocesses and draws the current one.
        capture = Capture(source, capture_opts,
                          prepare=lambda image: model.preprocess(image, options.color))
    elif live:
        capture = Capture(source, capture_opts)  # a camera must be drained even when sequential
    else:
        capture = InlineCapture(source, capture_opts)
    loop = _Loop(model, capture, options)
    if stop_event is not None:
        loop.stop = stop_event
    # Create the outputs before the first frame so an unwritable path fails fast.
    try:
        if options.save:
            loop.video = VideoSink(options.save, fps=source.fps or 30.0)
        if options.json:
            loop.jsonl = JsonLinesSink(options.json)
    except BaseException:
        if loop.video is not None:
            loop.video.abort()
        source.release()
        raise

    previous: dict[int, Any] = {}
    if options.handle_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            loop.request_stop(f"signal {signal.Signals(signum).name}")

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    loop.t0 = time.perf_counter()
    capture.start(t0=loop.t0)
    summary = None
    try:
        loop.run_frames()
    finally:
        loop.stop.set()
        capture.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        try:
            for stage in options.stages:
                stage.close()
            summary = _summarize(loop, source)
            if loop.jsonl is not None:
                # The last line of the stream: consumers tell it apart by its "summary" key.
                loop.jsonl.write({"summary": summary.to_dict()})
        finally:
            for sink in (loop.video, loop.jsonl):
                if sink is not None:
                    sink.close()
            if options.display:
                import cv2

                cv2.destroyAllWindows()
    return summary


def _summarize(loop: _Loop, source: FrameSource) -> Summary:
    duration = max(1e-9, (loop.last_out if loop.last_out is not None
                          else time.perf_counter()) - loop.t0)
    med = loop.intervals_ms.quantile(0.5) / 1000.0
    stats = loop.capture.stats
    tfl = loop.runner.model
    return Summary(
        frames=loop.frames, read=stats.read, dropped=stats.dropped,
        reconnects=stats.reconnects, reconnect_attempts=stats.reconnect_attempts,
        errors=loop.errors.count, duration_s=round(duration, 4),
        fps_mean=round(loop.frames / duration, 3) if loop.frames else 0.0,
        fps_p50=round(1.0 / med, 3) if med > 0 else 0.0,
        stages_ms={k: v.summary() for k, v in loop.stage_ms.items() if v.count},
        decode_share=round(min(1.0, stats.decode_s / duration), 4),
        stopped_by=loop.stopped_by or stats.end_reason or "stopped",
        source=source.describe(),
        model=str(getattr(tfl, "path", "") or ""),
        threads=getattr(tfl, "threads", None),
        pipelined=loop.options.pipeline,
        error_messages=tuple(loop.errors.messages + ([stats.last_error] if stats.last_error
                                                     else [])),
        extras=_extras(loop.options),
    )


def _extras(options: LoopOptions) -> dict:
    """What the stages and the publisher report for the summary."""
    out = {stage.name: stage.summary() for stage in options.stages}
    if options.publisher is not None:
        out["serve"] = options.publisher.summary()
    return out
