"""Latency of ``.tflite`` models on this machine: invoke-only or end to end.

All variants (model x thread count) are loaded into one process and measured in round-robin
blocks: ``block`` timed runs of variant A, then of B, ..., then A again, until every variant has
``runs`` timings. Load drift on a shared machine (another process waking up, thermal
throttling on a Pi) then hits every variant alike, so the ratios between them are fair.

Invoke-only times ``interpreter.invoke()`` on a fixed valid input. ``e2e`` also times the real
preprocessing (resize / letterbox + LUT) of representative frames and the real postprocessing
(top-k, or decode + NMS), each stage separately, through the runner the model's task picks
(:func:`edgecnn.runtime.load`; only the runner protocol is used).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgecnn.bench.machine import current_rss_mb, peak_rss_mb, xnnpack_active
from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES, list_images
from edgecnn.quiet import captured_output


@dataclass(frozen=True)
class BenchOptions:
    """What to measure.

    Attributes:
        threads: interpreter thread counts to sweep.
        runs: timed runs per variant.
        warmup: untimed runs per variant before timing (XNNPACK packs weights on the first).
        block: timed runs per variant per round-robin turn.
        e2e: add preprocessing and postprocessing of representative frames.
        images: folder of images for ``e2e`` (default: synthetic 640x480 camera-like frames).
        frame_size: ``(width, height)`` of the synthetic frames.
        max_images: at most this many images read from ``images``.
        verify: refuse a model whose flatbuffer does not match the SHA-256 in its metadata.
    """

    threads: tuple[int, ...] = (1,)
    runs: int = 100
    warmup: int = 10
    block: int = 10
    e2e: bool = False
    images: str | None = None
    frame_size: tuple[int, int] = (640, 480)
    max_images: int = 32
    verify: bool = True

    def validate(self) -> "BenchOptions":
        if not self.threads:
            raise UsageError("no thread counts given", "use e.g. --threads 1,2")
        for t in self.threads:
            if int(t) < 1:
                raise UsageError(f"thread count must be >= 1, got {t}", "use --threads 1 or more")
        if self.runs < 1:
            raise UsageError(f"--runs must be >= 1, got {self.runs}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.block < 1:
            raise UsageError(f"block must be >= 1, got {self.block}")
        if self.images is not None and not self.e2e:
            raise UsageError("--images only applies with --e2e", "add --e2e")
        return self


@dataclass(frozen=True)
class BenchResult:
    """One (model, threads) measurement. Times in milliseconds.

    ``mean_ms`` ... ``max_ms`` describe ``invoke`` alone; with ``e2e``, ``pre_p50_ms``,
    ``post_p50_ms`` and ``e2e_*`` (sum per run of the three stages) are filled in too.
    Records parsed from ``benchmark_model`` (``device`` ``adb:SERIAL``) leave what it does not
    print (p90, p99) as None.
    ``peak_rss_mb`` is the process peak (all variants share one process); ``rss_load_mb`` is
    the resident memory this variant added when loaded and warmed up.
    """

    model: str
    threads: int
    runs: int
    warmup: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float | None
    p99_ms: float | None
    min_ms: float | None
    max_ms: float | None
    fps: float
    init_ms: float
    first_ms: float | None
    size_bytes: int
    peak_rss_mb: float | None
    rss_load_mb: float | None = None
    path: str = ""
    quantization: str = ""
    input_shape: tuple[int, ...] = ()
    xnnpack: bool | None = None
    pre_p50_ms: float | None = None
    post_p50_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p90_ms: float | None = None
    e2e_fps: float | None = None
    device: str = "local"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """mean/std/p50/p90/p99/min/max/fps of a list of milliseconds."""
    a = np.asarray(times_ms, dtype=np.float64)
    p50 = float(np.percentile(a, 50))
    return {"mean_ms": float(a.mean()), "std_ms": float(a.std()), "p50_ms": p50,
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)),
            "min_ms": float(a.min()), "max_ms": float(a.max()),
            "fps": 1000.0 / p50 if p50 > 0 else 0.0}


def representative_frames(options: BenchOptions) -> list[np.ndarray]:
    """Frames for ``e2e``: images from ``options.images``, or synthetic camera-like frames.

    Synthetic frames are smooth gradients with a few solid shapes and sensor-like noise, so
    resizing and NMS do work comparable to a real scene (pure noise or pure black would not).
    """
    import cv2

    if options.images:
        folder = Path(options.images)
        if not folder.is_dir():
            raise UsageError(f"--images {folder} is not a folder", "pass a folder of images")
        files = list_images(folder)
        frames = []
        for p in files[:options.max_images]:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                frames.append(img)
        if not frames:
            raise UsageError(f"no readable images in {folder}",
                             f"put {', '.join(sorted(IMAGE_SUFFIXES))} files there")
        return frames
    w, h = options.frame_size
    rng = np.random.default_rng(0)
    frames = []
    for i in range(8):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([xx / w * 255, yy / h * 255, np.full_like(xx, 40.0 * i)], axis=-1)
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(img, (x, y), (x + int(rng.integers(30, 80)), y + int(rng.integers(30, 80))),
                          color, -1)
        frames.append(img)
    return frames


def time_stages(runner, frame: np.ndarray) -> tuple[float, float, float]:
    """Milliseconds of a runner's ``preprocess``, ``infer`` and ``postprocess`` on one frame."""
    clock = time.perf_counter
    t0 = clock()
    tensor, context = runner.preprocess(frame)
    t1 = clock()
    raw = runner.infer(tensor)
    t2 = clock()
    runner.postprocess(raw, context)
    t3 = clock()
    return (t1 - t0) * 1000.0, (t2 - t1) * 1000.0, (t3 - t2) * 1000.0


class _Variant:
    """One loaded model at one thread count, with its timed closures."""

    def __init__(self, path: Path, threads: int, e2e: bool, verify: bool = True):
        from edgecnn.runtime.model import TFLiteModel

        self.path = path
        self.threads = threads
        rss_before = current_rss_mb()
        with captured_output(fds=(2,)):  # the runtime's "Created XNNPACK delegate" INFO lines
            self.model = TFLiteModel(path, threads=threads, verify=verify)
        self.runner = None
        if e2e:
            from edgecnn.runtime import load

            self.runner = load(self.model)
        self.rss_before = rss_before
        self.rss_load_mb: float | None = None
        self.first_ms: float | None = None
        self.invoke_ms: list[float] = []
        self.pre_ms: list[float] = []
        self.post_ms: list[float] = []
        self.e2e_ms: list[float] = []
        self._fill_inputs()

    def _fill_inputs(self) -> None:
        rng = np.random.default_rng(0)
        for i, info in enumerate(self.model.inputs):
            x: np.ndarray
            if np.issubdtype(info.dtype, np.integer):
                lim = np.iinfo(info.dtype)
                x = rng.integers(lim.min, lim.max, size=info.shape, endpoint=True)
            else:
                x = rng.uniform(0, 1, size=info.shape)
            self.model.set_input(np.asarray(x, dtype=info.dtype), i)

    def warm(self, n: int, frames: list[np.ndarray]) -> None:
        invoke = self.model.interpreter.invoke
        start = time.perf_counter()
        invoke()
        self.first_ms = (time.perf_counter() - start) * 1000.0
        for i in range(max(0, n - 1)):
            if self.runner is not None:
                self.run_e2e(frames[i % len(frames)], record=False)
            else:
                invoke()
        if self.runner is not None:
            self._fill_inputs()
        rss = current_rss_mb()
        if rss is not None and self.rss_before is not None:
            self.rss_load_mb = max(0.0, rss - self.rss_before)

    def run_invoke(self, n: int) -> None:
        invoke = self.model.interpreter.invoke
        clock = time.perf_counter
        times = self.invoke_ms
        for _ in range(n):
            start = clock()
            invoke()
            times.append((clock() - start) * 1000.0)

    def run_e2e(self, frame: np.ndarray, record: bool = True) -> None:
        pre, infer, post = time_stages(self.runner, frame)
        if record:
            self.pre_ms.append(pre)
            self.invoke_ms.append(infer)
            self.post_ms.append(post)
            self.e2e_ms.append(pre + infer + post)

    def result(self, options: BenchOptions, xnnpack: bool | None, peak: float) -> BenchResult:
        meta = self.model.metadata
        stats = {k: round(v, 4) for k, v in latency_stats(self.invoke_ms).items()}
        extra: dict[str, object] = {}
        res = BenchResult(
            model=self.path.name, threads=self.threads, runs=len(self.invoke_ms),
            warmup=options.warmup, mean_ms=stats["mean_ms"], std_ms=stats["std_ms"],
            p50_ms=stats["p50_ms"], p90_ms=stats["p90_ms"], p99_ms=stats["p99_ms"],
            min_ms=stats["min_ms"], max_ms=stats["max_ms"], fps=stats["fps"],
            init_ms=round(self.model.init_ms, 3),
            first_ms=None if self.first_ms is None else round(self.first_ms, 3),
            size_bytes=self.model.size_bytes, peak_rss_mb=round(peak, 1),
            rss_load_mb=None if self.rss_load_mb is None else round(self.rss_load_mb, 2),
            path=str(self.path), quantization=meta.quantization if meta else "",
            input_shape=self.model.input.shape, xnnpack=xnnpack, extra=extra)
        if self.e2e_ms:
            e2e = latency_stats(self.e2e_ms)
            res = replace(res, pre_p50_ms=round(float(np.percentile(self.pre_ms, 50)), 4),
                          post_p50_ms=round(float(np.percentile(self.post_ms, 50)), 4),
                          e2e_p50_ms=round(e2e["p50_ms"], 4), e2e_p90_ms=round(e2e["p90_ms"], 4),
                          e2e_fps=round(e2e["fps"], 2))
        return res


def benchmark(paths: Sequence[str | os.PathLike], options: BenchOptions = BenchOptions(),
              progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Measure every model at every thread count, interleaved; results in input order.

    Args:
        paths: ``.tflite`` files (with metadata for ``e2e``; invoke-only runs any model).
        options: see :class:`BenchOptions`.
        progress: called with a short status line now and then (the CLI prints it to stderr).

    Example:
        for r in benchmark(["float.tflite", "int8.tflite"], BenchOptions(threads=(1, 2))):
            print(r.model, r.threads, r.p50_ms)
    """
    options = options.validate()
    if not paths:
        raise UsageError("no model given", "pass one or more .tflite files")
    frames = representative_frames(options) if options.e2e else []
    variants: list[_Variant] = []
    xnn: dict[Path, bool | None] = {}
    for p in paths:
        path = Path(p)
        for t in options.threads:
            if progress:
                progress(f"loading {path.name} ({t} thread{'s' if t > 1 else ''})")
            v = _Variant(path, int(t), options.e2e, options.verify)
            v.warm(max(1, options.warmup), frames)  # frames is empty only without e2e
            variants.append(v)
        # Only bytes that passed the model check (and probe) reach a second interpreter.
        xnn[path] = xnnpack_active(v.model.flatbuffer, 1)
    rounds = math.ceil(options.runs / options.block)
    done = 0
    for r in range(rounds):
        n = min(options.block, options.runs - done)
        for v in variants:
            if options.e2e:
                for i in range(n):
                    v.run_e2e(frames[(done + i) % len(frames)])
            else:
                v.run_invoke(n)
        done += n
        if progress and (r + 1) % max(1, rounds // 4) == 0:
            progress(f"{done}/{options.runs} runs")
    peak = peak_rss_mb()
    return [v.result(options, xnn[v.path], peak) for v in variants]
