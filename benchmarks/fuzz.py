"""Fuzz edgecnn's file and image entry points; print a tried / loaded / refused / crashed table.

Each target (``benchmarks/fuzz_targets.py``; adding one is one decorated function) makes one
hostile input per case from a seeded ``random.Random`` and feeds it to an entry point. Cases
run in batches in worker processes, so a native abort kills only a worker: the harness counts
the case as a crash, starts a new worker and goes on. Outcomes per case:

- loaded: accepted (and run); refused: one of the project's own errors (a one-line message);
- crashed: any other exception, or the worker died (signal, abort);
- hang: the case took longer than ``--hang`` seconds (default 10; the worker is killed at 3x).

Peak RSS is the largest of the workers' (the processes that load the inputs). Probe children
forked by the model check are bounded by their own address-space limit (see
``edgecnn/runtime/modelcheck.py``). Reproduce one case with ``--target T --seed S --case N``.

Usage:
    python benchmarks/fuzz.py [--models 10000] [--metadata 2000] [--images 2000]
                              [--datasets 600] [--workers 2] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import select
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def run_case(name: str, seed: int, case: int, work: Path) -> dict:
    """One case in this process: ``{"outcome", "detail", "seconds"}``."""
    from fuzz_targets import TARGETS

    target = TARGETS[name]
    rng = random.Random(seed * 1_000_003 + case)
    start = time.perf_counter()
    try:
        outcome, detail = target.fn(rng, work), ""
    except target.expected as err:
        outcome, detail = "refused", str(err).splitlines()[0][:200] if str(err) else ""
    except Exception as err:  # noqa: BLE001 - that is what a fuzzer looks for
        frames = traceback.extract_tb(err.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        outcome, detail = "crashed", f"{type(err).__name__} at {where}: {str(err)[:200]}"
    return {"outcome": outcome, "detail": detail, "seconds": time.perf_counter() - start}


def worker(name: str, seed: int) -> None:
    """Read case numbers on stdin, answer one JSON line each (with this process's peak RSS)."""
    from fuzz_targets import TARGETS

    for build in TARGETS[name].warm:
        build()
    with tempfile.TemporaryDirectory(prefix="edgecnn-fuzz-") as tmp:
        for line in sys.stdin:
            result = run_case(name, seed, int(line), Path(tmp))
            result["rss_mb"] = peak_rss_mb()
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss
    across exec, so a worker started by a big process (pytest with TensorFlow) would report
    its parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Worker:
    def __init__(self, name: str, seed: int):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seed",
             str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env)
        self.case: int | None = None
        self.started = 0.0

    def send(self, case: int) -> None:
        self.case, self.started = case, time.perf_counter()
        self.proc.stdin.write(f"{case}\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def fuzz(name: str, count: int, seed: int, workers: int, hang_s: float) -> dict:
    """Run ``count`` cases of target ``name``; a row of the table (with every crash listed)."""
    row = {"target": name, "tried": 0, "loaded": 0, "refused": 0, "crashed": 0, "hangs": 0,
           "slowest_s": 0.0, "peak_rss_mb": 0.0, "crashes": [], "seconds": 0.0}
    start = time.perf_counter()
    pending = list(range(count))
    pool = [_Worker(name, seed) for _ in range(min(workers, count))]
    for w in pool:
        if pending:
            w.send(pending.pop(0))
    while any(w.case is not None for w in pool):
        busy = {w.proc.stdout: w for w in pool if w.case is not None}
        ready, _, _ = select.select(list(busy), [], [], 0.5)
        for stream in ready:
            w = busy[stream]
            line = stream.readline()
            _record(row, w, json.loads(line) if line else None, hang_s)
            if not line:                      # the worker died with this case
                w.kill()
                pool[pool.index(w)] = w = _Worker(name, seed)
            w.case = None
            if pending:
                w.send(pending.pop(0))
        for i, w in enumerate(pool):
            if w.case is not None and time.perf_counter() - w.started > 3 * hang_s:
                _record(row, w, {"outcome": "hang", "detail": "killed",
                                 "seconds": time.perf_counter() - w.started}, hang_s)
                w.kill()
                pool[i] = _Worker(name, seed)
                if pending:
                    pool[i].send(pending.pop(0))
    for w in pool:
        w.proc.stdin.close()
        w.proc.wait()
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _record(row: dict, w: _Worker, result: dict | None, hang_s: float) -> None:
    row["tried"] += 1
    if result is None:
        result = {"outcome": "crashed", "detail": f"worker died (exit {w.proc.poll()})",
                  "seconds": time.perf_counter() - w.started}
    seconds = float(result.get("seconds", 0.0))
    row["slowest_s"] = round(max(row["slowest_s"], seconds), 2)
    row["peak_rss_mb"] = round(max(row["peak_rss_mb"], float(result.get("rss_mb", 0.0))), 1)
    if seconds > hang_s or result["outcome"] == "hang":
        row["hangs"] += 1
        row["crashes"].append({"case": w.case, "hang": True, "detail": result.get("detail")})
        return
    row[result["outcome"]] = row.get(result["outcome"], 0) + 1
    if result["outcome"] == "crashed":
        row["crashes"].append({"case": w.case, "detail": result["detail"]})


def table(rows: list[dict]) -> str:
    lines = ["| target | tried | loaded | refused | crashed | hangs > 10 s | slowest | "
             "peak RSS | time |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['tried']} | {r['loaded']} | {r['refused']} | "
                     f"{r['crashed']} | {r['hangs']} | {r['slowest_s']:.2f} s | "
                     f"{r['peak_rss_mb']:.0f} MB | {r['seconds']:.0f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10000)
    parser.add_argument("--metadata", type=int, default=2000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--datasets", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--target", help="with --case: run one case here and print it")
    parser.add_argument("--case", type=int)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seed)
        return 0
    if args.target is not None:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_case(args.target, args.seed, args.case or 0, Path(tmp))))
        return 0
    counts = {"models": args.models, "metadata": args.metadata, "images": args.images,
              "datasets": args.datasets}
    rows = [fuzz(name, n, args.seed, args.workers, args.hang) for name, n in counts.items() if n]
    machine = {"machine": f"{platform.machine()} {os.cpu_count()} cores",
               "python": platform.python_version(), "load_avg": os.getloadavg()[0],
               "date": time.strftime("%Y-%m-%d"), "seed": args.seed}
    if args.json:
        print(json.dumps({"rows": rows, "machine": machine}, indent=1))
    else:
        print(table(rows))
        print(f"\n{machine}")
        for r in rows:
            for c in r["crashes"][:10]:
                print(f"  {r['target']} case {c['case']}: {c['detail']}")
    return 1 if any(r["crashed"] or r["hangs"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
