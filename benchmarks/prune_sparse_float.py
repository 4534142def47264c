"""Does float conversion with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` make a magnitude-pruned
model faster here?

Converts the dense and the magnitude-pruned run directories to float32 ``.tflite`` (the pruned
one twice: plain, and with sparse weight encoding), checks the sparse file computes the same
outputs, and measures invoke latency of the three interleaved in one process at 1 and 2 threads.

Usage:
    python benchmarks/prune_sparse_float.py --dense runs/fm --pruned runs/fm_mag --work /tmp/sp
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dense", required=True)
    ap.add_argument("--pruned", required=True, help="magnitude-pruned run directory")
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()

    import numpy as np

    from converters.keras_tflite import exported_saved_model
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.bench.machine import machine_info
    from edgecnn.lazy import tensorflow
    from edgecnn.rundir import load_keras_model
    from edgecnn.runtime.model import TFLiteModel

    tf = tensorflow()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, run, sparse in (("dense_f32", args.dense, False),
                              ("magnitude_f32", args.pruned, False),
                              ("magnitude_f32_sparse", args.pruned, True)):
        model, _ = load_keras_model(run)
        with exported_saved_model(model) as folder:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(folder))
            if sparse:
                converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
            blob = bytes(converter.convert())
        path = work / f"{name}.tflite"
        path.write_bytes(blob)
        files[name] = path

    x = np.random.default_rng(0).uniform(0, 1, size=(1, *TFLiteModel(files["dense_f32"])
                                                        .inputs[0].shape[1:])).astype("float32")
    outs = {}
    for name, path in files.items():
        m = TFLiteModel(path, threads=1)
        outs[name] = m.run(x)[0]
    max_diff = float(np.abs(outs["magnitude_f32_sparse"] - outs["magnitude_f32"]).max())

    results = benchmark([str(p) for p in files.values()],
                        BenchOptions(threads=(1, 2), runs=args.runs, warmup=20, block=20))
    rows = {name: {"size_bytes": path.stat().st_size} for name, path in files.items()}
    for r in results:
        rows[Path(r.path or r.model).stem][f"p50_ms_{r.threads}t"] = round(r.p50_ms, 4)
    doc = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": machine_info(), "load_average": os.getloadavg(),
           "sparse_vs_plain_max_abs_diff": max_diff, "rows": rows}
    (work / "sparse_float_results.json").write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
