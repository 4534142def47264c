"""Benchmark on an Android device with LiteRT's official ``benchmark_model`` binary over adb.

``run_adb_benchmark`` pushes the model (and the binary, unless it is already on the device),
runs ``benchmark_model --graph=... --num_threads=N`` through ``adb shell`` and turns its output
into the same :class:`~edgecnn.bench.latency.BenchResult` records as a local run, so one table
compares a Raspberry Pi, a laptop and a phone.

``benchmark_model`` prints (microseconds)::

    count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798
    Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06,
        Inference (avg): 2.95034e+06
    Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859

Newer builds add ``p5=... median=... p95=...`` to the ``count=`` lines; with
``--enable_op_profiling=true`` a "Summary by node type" table follows. The first ``count=``
line with ``first=`` after the warm-up one is the timed run; the last such line of an op
profile belongs to the profiler and is ignored.

adb cannot run in this project's CI (no device); the parser is tested on stored real outputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.bench.latency import BenchResult
from edgecnn.errors import UsageError

REMOTE_DIR = "/data/local/tmp/edgecnn"
_NUM = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
_SUMMARY = re.compile(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
                      + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM)
_COUNT = re.compile(r"(?<![A-Za-z(])count=(\d+) (first=.*)")
_KV = re.compile(r"(\w+)=" + _NUM)
_MEM_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init="
                        + _NUM + r" overall=" + _NUM)
_PEAK_MEM = re.compile(r"Peak memory footprint \(MB\): init=" + _NUM + r" overall=" + _NUM)
_PEAK_PERIODIC = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: "
                            + _NUM)
_THREADS = re.compile(r"(?:Num threads|#threads used for CPU inference): \[(\d+)\]")
_GRAPH = re.compile(r"Graph: \[([^\]]+)\]")
_SIZE = re.compile(r"The input model file size \(MB\): " + _NUM)
_DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)")


@dataclass(frozen=True)
class BenchmarkModelOutput:
    """What ``benchmark_model`` reported. Times in microseconds, as it prints them."""

    init_us: float
    first_us: float
    warmup_avg_us: float
    avg_us: float
    count: int | None = None
    min_us: float | None = None
    max_us: float | None = None
    std_us: float | None = None
    median_us: float | None = None
    p5_us: float | None = None
    p95_us: float | None = None
    threads: int | None = None
    graph: str = ""
    model_mb: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    delegate: str = ""
    delegated_nodes: tuple[int, int] | None = None
    op_summary: dict = field(default_factory=dict)

    def to_result(self, model: str, device: str, size_bytes: int = 0,
                  warmup: int = 0) -> BenchResult:
        """As a local :class:`BenchResult`. Missing percentiles stay None, never invented:
        ``p50_ms`` is the median when printed, else the mean (flagged in ``extra``)."""
        def ms(us: float) -> float:
            return round(us * 1e-3, 4)

        def ms_or_none(us: float | None) -> float | None:
            return None if us is None else ms(us)

        p50 = self.median_us if self.median_us is not None else self.avg_us
        extra = {"source": "benchmark_model", "p50_is_mean": self.median_us is None,
                 "p95_ms": ms_or_none(self.p95_us), "p5_ms": ms_or_none(self.p5_us),
                 "delegate": self.delegate, "delegated_nodes": self.delegated_nodes,
                 "op_summary": self.op_summary}
        return BenchResult(
            model=model, threads=self.threads or 0, runs=self.count or 0, warmup=warmup,
            mean_ms=ms(self.avg_us), std_ms=ms(self.std_us or 0.0), p50_ms=ms(p50),
            p90_ms=None, p99_ms=None, min_ms=ms_or_none(self.min_us),
            max_ms=ms_or_none(self.max_us),
            fps=round(1e6 / p50, 3) if p50 else 0.0, init_ms=ms(self.init_us),
            first_ms=ms(self.first_us), xnnpack=("xnnpack" in self.delegate.lower()) or None,
            size_bytes=size_bytes or int((self.model_mb or 0.0) * 2**20),
            peak_rss_mb=self.memory_overall_mb, rss_load_mb=self.memory_init_mb,
            path=self.graph, device=device, extra=extra)


def _floats(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in _KV.findall(text)}


def _op_summary(text: str) -> dict[str, dict]:
    """``{"CONV_2D": {"count": 15, "avg_ms": 2651.853, "percent": 89.897}, ...}`` of the last
    "Summary by node type" table (the regular runs; the first one covers initialization)."""
    blocks = text.split("Summary by node type")
    if len(blocks) < 2:
        return {}
    ops: dict[str, dict] = {}
    for line in blocks[-1].splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4 or not parts[1].isdigit():
            break
        try:
            ops[parts[0]] = {"count": int(parts[1]), "avg_ms": float(parts[2]),
                             "percent": float(parts[3].rstrip("%"))}
        except ValueError:
            break
    return ops


def parse_benchmark_output(text: str) -> BenchmarkModelOutput:
    """Parse the stdout (or logcat) of ``benchmark_model``.

    Raises:
        UsageError: no "Inference timings in us" line (the run failed; its last lines are
            quoted in the message).
    """
    summary = _SUMMARY.search(text)
    if summary is None:
        tail = " | ".join(ln.strip() for ln in text.strip().splitlines()[-3:])
        raise UsageError("benchmark_model printed no 'Inference timings' line",
                         f"its output ended with: {tail[:300] or '(nothing)'}")
    init_us, first_us, warm_us, avg_us = (float(x) for x in summary.groups())
    # Timed-run statistics: the count= line (with first=) printed closest before the summary.
    detail = None
    for m in _COUNT.finditer(text[:summary.start()]):
        detail = m
    stats = _floats(detail.group(2)) if detail else {}
    count = int(detail.group(1)) if detail else None
    mem = _MEM_DELTA.search(text) or _PEAK_MEM.search(text)
    periodic = _PEAK_PERIODIC.search(text)
    threads = _THREADS.search(text)
    graph = _GRAPH.search(text)
    size = _SIZE.search(text)
    deleg = _DELEGATE.search(text)
    return BenchmarkModelOutput(
        init_us=init_us, first_us=first_us, warmup_avg_us=warm_us, avg_us=avg_us, count=count,
        min_us=stats.get("min"), max_us=stats.get("max"), std_us=stats.get("std"),
        median_us=stats.get("median"), p5_us=stats.get("p5"), p95_us=stats.get("p95"),
        threads=int(threads.group(1)) if threads else None,
        graph=graph.group(1) if graph else "",
        model_mb=float(size.group(1)) if size else None,
        memory_init_mb=float(mem.group(1)) if mem else None,
        memory_overall_mb=(float(periodic.group(1)) if periodic
                           else float(mem.group(2)) if mem else None),
        delegate=deleg.group(3) if deleg else "",
        delegated_nodes=(int(deleg.group(1)), int(deleg.group(2))) if deleg else None,
        op_summary=_op_summary(text))


def _adb(serial: str, *args: str, timeout: float = 600) -> str:
    adb = shutil.which("adb")
    if adb is None:
        raise UsageError("adb is not on PATH",
                         "install Android platform-tools and connect the device (adb devices)")
    try:
        proc = subprocess.run([adb, "-s", serial, *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UsageError(f"adb {' '.join(args[:2])} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise UsageError(f"adb {' '.join(args[:2])} failed on {serial}: "
                         f"{msg[-1] if msg else proc.returncode}",
                         "check 'adb devices' and the --adb serial")
    return proc.stdout + proc.stderr


def run_adb_benchmark(serial: str, binary: str, models: list[str], threads: tuple[int, ...],
                      runs: int = 50, warmup: int = 5,
                      extra_args: tuple[str, ...] = ()) -> list[BenchResult]:
    """Push ``binary`` and ``models`` to the device and benchmark each at each thread count.

    Args:
        serial: the device serial from ``adb devices``.
        binary: local path of ``benchmark_model`` built for the device's ABI (LiteRT's
            nightly ``android_aarch64_benchmark_model``), or a path already on the device
            (starting with ``/data/``).
        models: local ``.tflite`` files.
        threads: thread counts (``--num_threads``).
        runs, warmup: ``--num_runs`` and ``--warmup_runs``.
        extra_args: more flags, e.g. ``--use_gpu=true`` or ``--enable_op_profiling=true``.
    """
    if not binary:
        raise UsageError("--adb needs --benchmark-binary PATH",
                         "download LiteRT's benchmark_model for the device's ABI")
    device_binary = binary
    if not binary.startswith("/data/"):
        if not Path(binary).is_file():
            raise UsageError(f"benchmark binary not found: {binary}", "check the path")
        device_binary = f"{REMOTE_DIR}/benchmark_model"
    for m in models:
        if not Path(m).is_file():
            raise UsageError(f"model file not found: {m}", "check the path")
    _adb(serial, "shell", "mkdir", "-p", REMOTE_DIR)
    if device_binary != binary:
        _adb(serial, "push", binary, device_binary)
        _adb(serial, "shell", "chmod", "755", device_binary)
    results = []
    for m in models:
        remote = f"{REMOTE_DIR}/{Path(m).name}"
        _adb(serial, "push", m, remote)
        for t in threads:
            out = _adb(serial, "shell", device_binary, f"--graph={remote}", f"--num_threads={t}",
                       f"--num_runs={runs}", f"--warmup_runs={warmup}", *extra_args)
            parsed = parse_benchmark_output(out)
            if parsed.threads is None:
                parsed = BenchmarkModelOutput(**{**parsed.__dict__, "threads": int(t)})
            results.append(parsed.to_result(Path(m).name, f"adb:{serial}",
                                            Path(m).stat().st_size, warmup))
    return results
