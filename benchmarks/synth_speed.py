"""Speed of the synthetic scene generator and of reading the dataset back.

Measures, in one process with the variants interleaved:
  * render_scene only (default and heldout variants), images/s;
  * make_synthetic_dataset end to end (render + JPEG encode + label files), images/s;
  * load_detection_dataset on the written dataset (header-only sizes), images/s.
Wall-clock and process CPU time are both reported: on a shared machine the CPU-time rate is
what one free core would deliver.

Usage: python benchmarks/synth_speed.py [--images 1000] [--imgsz 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import cv2

    from edgecnn.data.detection import load_detection_dataset
    from edgecnn.data.synth import make_synthetic_dataset, render_scene

    cv2.setNumThreads(1)  # one core per generator process: the rate that scales with cores
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at start, "
          f"OpenCV {cv2.__version__}, cv2 threads 1")
    render_scene(np.random.default_rng(0), args.imgsz)  # warm caches (photos, noise bank)
    rates: dict[str, list[tuple[float, float]]] = {}
    n = args.images
    tmp = Path(tempfile.mkdtemp(prefix="synth_speed_"))
    try:
        for rep in range(args.repeats):
            for variant in ("default", "heldout"):
                rng = np.random.default_rng(rep)
                wall, cpu = _timed(lambda: [render_scene(rng, args.imgsz, variant=variant)
                                            for _ in range(n)])
                rates.setdefault(f"render {variant}", []).append((n / wall, n / cpu))
            out = tmp / f"ds{rep}"
            wall, cpu = _timed(lambda: make_synthetic_dataset(out, n_train=n, n_val=0,
                                                              imgsz=args.imgsz, seed=rep))
            rates.setdefault("write dataset (default)", []).append((n / wall, n / cpu))
            wall, cpu = _timed(lambda: load_detection_dataset(out / "data.yaml"))
            rates.setdefault("read dataset back", []).append((n / wall, n / cpu))
            print(f"load average after repeat {rep + 1}: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{n} images of {args.imgsz}x{args.imgsz}, {args.repeats} repeats "
          "(best wall rate; CPU-time rate of the same repeat)")
    print("| step | images/s wall | images/s per CPU-second |")
    print("|---|---|---|")
    for name, values in rates.items():
        wall, cpu = max(values)
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
