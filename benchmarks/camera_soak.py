"""Camera soak: a million frames through the real loop, resident memory sampled all along.

A camera on a Pi runs for days; anything the loop keeps per frame grows without end (per-frame
timings were ~270 bytes a frame, 0.7 GB a day at 30 FPS). This runs ``edgecnn.camera.loop.run``
on an endless in-memory source (frames cycled from a few distinct images, so every stage
does real work: letterbox, the tiny detector ``tests/golden/tiny_detect.tflite``, decode, NMS,
drawing) for ``--frames`` frames and samples VmRSS every ``--every`` seconds. Growth is
measured from the first sample after ``--warmup`` frames (allocator pools, the interpreter's
arenas and OpenCV's buffers settle by then) to the end.

Usage:
    python benchmarks/camera_soak.py [--frames 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "tests" / "golden" / "tiny_detect.tflite"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def frames(seed: int = 0) -> list[np.ndarray]:
    """Four 96x128 BGR frames with bright squares that move: the detector finds boxes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4):
        image = rng.integers(0, 60, (96, 128, 3), dtype=np.uint8)
        image[20 + 8 * i:52 + 8 * i, 30 + 10 * i:62 + 10 * i] = 255
        out.append(image)
    return out


def soak(n_frames: int, warmup: int, every: float, threads: int) -> dict:
    from edgecnn.camera.loop import LoopOptions, run
    from edgecnn.camera.sources import MemorySource
    from edgecnn.runtime import load

    model = load(MODEL, threads=threads)
    source = MemorySource(frames(), count=n_frames)
    samples: list[tuple[float, int, float]] = []
    done = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not done.wait(every):
            samples.append((round(time.perf_counter() - t0, 1), source.position, rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    summary = run(model, source, LoopOptions(draw=True, handle_signals=False))
    done.set()
    sampler.join()
    samples.append((round(time.perf_counter() - t0, 1), source.position, rss_mb()))
    after = [s for s in samples if s[1] >= warmup]
    base = after[0] if after else samples[0]
    end = samples[-1]
    return {
        "frames": summary.frames, "errors": summary.errors, "stopped_by": summary.stopped_by,
        "seconds": round(time.perf_counter() - t0, 1), "fps_mean": summary.fps_mean,
        "rss_start_mb": round(samples[0][2], 1), "rss_after_warmup_mb": round(base[2], 1),
        "warmup_frames": base[1], "rss_end_mb": round(end[2], 1),
        "rss_max_mb": round(max(s[2] for s in samples), 1),
        "rss_growth_mb": round(end[2] - base[2], 1),
        "stages_ms": summary.stages_ms,
        "samples": samples[:: max(1, len(samples) // 40)] + [samples[-1]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    result = soak(args.frames, args.warmup, args.every, args.threads)
    result["machine"] = {"machine": f"{platform.machine()} {os.cpu_count()} cores",
                         "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
                         "load_avg_start": load_start, "load_avg_end": os.getloadavg()[0]}
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result["frames"] == args.frames and result["rss_growth_mb"] < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
