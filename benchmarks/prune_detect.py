"""Pruning benchmark for a detector: dense vs magnitude vs channel, int8 ``.tflite``, one process.

The detector half of issue 4's targets (the classifier half is ``benchmarks/prune.py``). For a
trained detector run directory (``--dense``, e.g. ``det_s`` from ``benchmarks/detect_synth.py``)
this script

1. prunes it with ``edgecnn.prune.api.prune_model``: magnitude to ``--sparsity`` and channel to
   ``--target-macs``, each fine-tuned with the detector's own losses on the training split;
2. converts dense and pruned runs to full-int8 ``.tflite`` (``converters.convert_model``);
3. measures COCO mAP@0.5 / mAP@0.5:0.95 of each ``.tflite`` on the val split through the
   runtime, file and gzip sizes, and invoke p50 at 1 and 2 threads with the variants
   interleaved in one process (``edgecnn.bench``);
4. writes ``prune_detect.json`` in ``--work`` with the targets checked.

Usage:
    python benchmarks/prune_detect.py --dense WORK/run_det_s_256 \
        --data WORK/synth_default/data.yaml --work /tmp/prune_det --mag-epochs 6 --ch-epochs 10
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = {
    "magnitude": {"map50_drop_pts": 1.5, "gzip_ratio": 0.45},
    "channel": {"map50_drop_pts": 2.5, "p50_ratio_2t": 0.65, "size_ratio": 0.55,
                "macs_ratio": 0.5},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dense", required=True, help="trained detector run directory")
    ap.add_argument("--data", default=None, help="detection dataset SPEC (default: run.json's)")
    ap.add_argument("--work", required=True, help="folder for pruned runs and .tflite files")
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--block", default="1x1", help="magnitude block shape, e.g. 1x4")
    ap.add_argument("--skip-depthwise", action="store_true",
                    help="magnitude: leave the depthwise kernels dense")
    ap.add_argument("--target-macs", type=float, default=0.5)
    ap.add_argument("--mag-epochs", type=int, default=6)
    ap.add_argument("--ch-epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mag-lr", type=float, default=None)
    ap.add_argument("--ch-lr", type=float, default=None)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="reuse pruned runs already in --work")
    args = ap.parse_args()

    from converters import convert_model
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.bench.machine import machine_info
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.prune.api import prune_model
    from edgecnn.prune.options import PruneOptions
    from edgecnn.rundir import RunInfo

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dense = Path(args.dense)
    data = args.data or RunInfo.load(dense).data
    runs = {"dense": dense, "magnitude": work / "magnitude", "channel": work / "channel"}
    reports, seconds = {}, {}
    for method in ("magnitude", "channel"):
        run = runs[method]
        if args.reuse and (run / "run.json").is_file():
            reports[method] = RunInfo.load(run).reports["pruning"]
            continue
        start = time.perf_counter()
        if method == "magnitude":
            options = PruneOptions(method="magnitude", sparsity=args.sparsity, data=data,
                                   epochs=args.mag_epochs, batch=args.batch, lr=args.mag_lr,
                                   block=args.block, skip_depthwise=args.skip_depthwise)
        else:
            options = PruneOptions(method="channel", target_macs=args.target_macs, data=data,
                                   epochs=args.ch_epochs, batch=args.batch, lr=args.ch_lr)
        result = prune_model(dense, run, options)
        reports[method] = result.report
        seconds[method] = round(time.perf_counter() - start, 1)
        print(f"{method}: pruned + fine-tuned in {seconds[method]:.0f}s", flush=True)

    rows = {}
    for name, run in runs.items():
        tfl = work / f"{name}_int8.tflite"
        convert_model(run, tfl, "int8")
        blob = tfl.read_bytes()
        ev = evaluate_detection(tfl, data, threads=2)
        rows[name] = {"tflite": str(tfl), "size_bytes": len(blob),
                      "gzip_bytes": len(gzip.compress(blob, 9)),
                      "int8_map50": ev["map50"], "int8_map": ev["map"]}
        print(f"{name}: int8 mAP50 {ev['map50']:.4f} mAP {ev['map']:.4f}, {len(blob)} bytes, "
              f"gzip {rows[name]['gzip_bytes']}", flush=True)

    results = benchmark([rows[n]["tflite"] for n in runs],
                        BenchOptions(threads=(1, 2), runs=args.runs, warmup=20, block=20))
    for r in results:
        name = Path(r.path or r.model).stem.replace("_int8", "")
        rows[name][f"p50_ms_{r.threads}t"] = round(r.p50_ms, 4)

    base = rows["dense"]
    summary = {}
    for name in ("magnitude", "channel"):
        row = rows[name]
        summary[name] = {
            "map50_drop_pts": round(100 * (base["int8_map50"] - row["int8_map50"]), 2),
            "map_drop_pts": round(100 * (base["int8_map"] - row["int8_map"]), 2),
            "gzip_ratio": round(row["gzip_bytes"] / base["gzip_bytes"], 3),
            "size_ratio": round(row["size_bytes"] / base["size_bytes"], 3),
            "p50_ratio_1t": round(row["p50_ms_1t"] / base["p50_ms_1t"], 3),
            "p50_ratio_2t": round(row["p50_ms_2t"] / base["p50_ms_2t"], 3),
            "macs_ratio": reports[name]["totals"]["macs_ratio"],
            "params_ratio": reports[name]["totals"]["params_ratio"],
        }
        summary[name]["targets"] = {
            key: {"value": summary[name][key], "limit": limit,
                  "met": summary[name][key] <= limit}
            for key, limit in TARGETS[name].items()}

    doc = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": machine_info(), "load_average": os.getloadavg(), "data": str(data),
           "dense_run": str(dense), "prune_seconds": seconds, "rows": rows,
           "summary": summary,
           "pruning": {k: {kk: v for kk, v in r.items() if kk != "layers"}
                       for k, r in reports.items()}}
    (work / "prune_detect.json").write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
