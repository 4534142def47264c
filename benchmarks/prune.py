"""Pruning benchmark: dense vs magnitude-75% vs channel-50%-MACs, int8 .tflite, one process.

For a trained Fashion-MNIST classifier run directory (``--dense``), this script
1. prunes it twice with ``edgecnn.prune.api.prune_model`` (magnitude 0.75; channel to
   ``--target-macs``), fine-tuning each on the training data;
2. converts the three run directories to full-int8 ``.tflite`` with ``converters.convert_model``;
3. measures test accuracy of each ``.tflite`` with the runtime (``edgecnn.evaluate``), file size
   and gzip-compressed size, and invoke latency at 1 and 2 threads with variants interleaved in
   one process (``edgecnn.bench``);
4. splits each gzip size into its parts (int8 weights, int32 biases, the rest of the
   flatbuffer: quantization parameters and graph, the metadata bundle), each gzipped alone;
5. writes ``prune_results.json`` and a plot of accuracy vs latency and vs size.

Every pruned row (the two made here and any ``--extra`` run) is checked against the targets of
its pruning method.

Usage:
    python benchmarks/prune.py --dense runs/fm_dsnet_s --work /tmp/prune_bench \
        --plot docs/prune_tradeoff.png
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
    "magnitude": {"accuracy_drop_pts": 1.0, "gzip_ratio": 0.45},
    "channel": {"accuracy_drop_pts": 1.5, "p50_ratio_2t": 0.65, "size_ratio": 0.55,
                "macs_ratio": 0.5},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dense", required=True, help="trained classifier run directory")
    ap.add_argument("--work", required=True, help="folder for pruned runs and .tflite files")
    ap.add_argument("--data", default=None, help="dataset SPEC (default: run.json's)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--target-macs", type=float, default=0.5)
    ap.add_argument("--mag-epochs", type=int, default=2)
    ap.add_argument("--ch-epochs", type=int, default=4)
    ap.add_argument("--channel-multiple", type=int, default=1)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="reuse pruned runs already in --work")
    ap.add_argument("--plot", default=None, help="PNG path for the trade-off plot")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=RUN",
                    help="another pruned run directory to measure alongside (no targets)")
    args = ap.parse_args()

    from converters import convert_model
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.bench.machine import machine_info
    from edgecnn.evaluate.classify import evaluate_classifier
    from edgecnn.prune.api import prune_model
    from edgecnn.prune.options import PruneOptions
    from edgecnn.rundir import RunInfo

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dense = Path(args.dense)
    data = args.data or RunInfo.load(dense).data
    runs = {"dense": dense, "magnitude": work / "magnitude", "channel": work / "channel"}
    reports = {}
    for method, run in runs.items():
        if method == "dense":
            continue
        if args.reuse and (run / "run.json").is_file():
            reports[method] = RunInfo.load(run).reports["pruning"]
            continue
        start = time.perf_counter()
        if method == "magnitude":
            options = PruneOptions(method="magnitude", sparsity=args.sparsity, data=data,
                                   data_dir=args.data_dir, epochs=args.mag_epochs)
        else:
            options = PruneOptions(method="channel", target_macs=args.target_macs, data=data,
                                   data_dir=args.data_dir, epochs=args.ch_epochs,
                                   channel_multiple=args.channel_multiple)
        result = prune_model(dense, run, options)
        reports[method] = result.report
        print(f"{method}: pruned + fine-tuned in {time.perf_counter() - start:.0f}s", flush=True)

    for item in args.extra:
        name, _, run = item.partition("=")
        runs[name] = Path(run)
        reports[name] = RunInfo.load(run).reports["pruning"]
    rows = {}
    for name, run in runs.items():
        tfl = work / f"{name}_int8.tflite"
        convert_model(run, tfl, "int8", data_dir=args.data_dir)
        blob = tfl.read_bytes()
        acc = evaluate_classifier(tfl, data, split="test", threads=2, data_dir=args.data_dir)
        keras_acc = evaluate_classifier(run, data, split="test", data_dir=args.data_dir)
        rows[name] = {"tflite": str(tfl), "size_bytes": len(blob),
                      "gzip_bytes": len(gzip.compress(blob, 9)),
                      "gzip_parts": gzip_parts(blob),
                      "int8_test_accuracy": acc.accuracy,
                      "keras_test_accuracy": keras_acc.accuracy}
        print(f"{name}: int8 test accuracy {acc.accuracy:.4f} (keras {keras_acc.accuracy:.4f}), "
              f"{len(blob)} bytes, gzip {rows[name]['gzip_bytes']}", flush=True)

    paths = [rows[n]["tflite"] for n in runs]
    results = benchmark(paths, BenchOptions(threads=(1, 2), runs=args.runs, warmup=20,
                                            block=20))
    for r in results:
        name = Path(r.path or r.model).stem.replace("_int8", "")
        rows[name][f"p50_ms_{r.threads}t"] = round(r.p50_ms, 4)
        rows[name][f"mean_ms_{r.threads}t"] = round(r.mean_ms, 4)

    base = rows["dense"]
    summary = {}
    for name in [n for n in runs if n != "dense"]:
        row = rows[name]
        summary[name] = {
            "accuracy_drop_pts": round(100 * (base["int8_test_accuracy"]
                                              - row["int8_test_accuracy"]), 2),
            "gzip_ratio": round(row["gzip_bytes"] / base["gzip_bytes"], 3),
            "size_ratio": round(row["size_bytes"] / base["size_bytes"], 3),
            "p50_ratio_1t": round(row["p50_ms_1t"] / base["p50_ms_1t"], 3),
            "p50_ratio_2t": round(row["p50_ms_2t"] / base["p50_ms_2t"], 3),
            "macs_ratio": reports[name]["totals"]["macs_ratio"],
            "params_ratio": reports[name]["totals"]["params_ratio"],
        }
        checks = {}
        for key, limit in TARGETS.get(reports[name]["method"], {}).items():
            value = summary[name][key]
            checks[key] = {"value": value, "limit": limit, "met": value <= limit}
        summary[name]["targets"] = checks

    doc = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": machine_info(), "load_average": os.getloadavg(), "data": data,
           "dense_run": str(dense), "rows": rows, "summary": summary,
           "pruning": {k: {kk: v for kk, v in r.items() if kk != "layers"}
                       for k, r in reports.items()}}
    (work / "prune_results.json").write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps({"rows": rows, "summary": summary}, indent=2))
    if args.plot:
        plot(rows, Path(args.plot))
    return 0


def gzip_parts(blob: bytes) -> dict:
    """Raw and gzip -9 bytes of each part of an int8 .tflite, every part compressed alone.

    Parts: ``int8_weights`` (kernel buffers), ``int32_biases``, ``other_buffers``,
    ``flatbuffer_rest`` (everything else in the flatbuffer: per-channel scales and zero points,
    tensor and op tables) and ``metadata`` (the appended bundle). The sum of the gzip sizes is
    close to, not exactly, the whole file's gzip size.
    """
    from ai_edge_litert import schema_py_generated as schema

    from edgecnn.runtime.metadata import split_bundle

    flatbuffer, bundle = split_bundle(blob)
    model = schema.Model.GetRootAs(flatbuffer, 0)
    graph = model.Subgraphs(0)
    parts: dict[str, list[bytes]] = {"int8_weights": [], "int32_biases": [], "other_buffers": []}
    rest = bytearray(flatbuffer)
    spans = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer.DataLength() == 0:
            continue
        data = buffer.DataAsNumpy().tobytes()
        key = {schema.TensorType.INT8: "int8_weights",
               schema.TensorType.INT32: "int32_biases"}.get(tensor.Type(), "other_buffers")
        parts[key].append(data)
        spans.append((buffer._tab.Vector(buffer._tab.Offset(4)), len(data)))  # data's position
    for start, length in sorted(set(spans), reverse=True):
        del rest[start:start + length]
    out = {k: b"".join(v) for k, v in parts.items()}
    out["flatbuffer_rest"] = bytes(rest)
    out["metadata"] = bundle or b""
    return {k: {"raw": len(v), "gzip": len(gzip.compress(v, 9)) if v else 0}
            for k, v in out.items()}


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    colors = {"dense": "tab:blue", "magnitude": "tab:orange", "channel": "tab:green"}
    spare = iter(["tab:red", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan",
                  "tab:pink", "black"] * 4)
    for name, row in rows.items():
        if name not in colors:
            colors[name] = next(spare)
        acc = 100 * row["int8_test_accuracy"]
        axes[0].scatter(row["p50_ms_2t"], acc, color=colors[name], label=name, s=50)
        axes[1].scatter(row["size_bytes"] / 1024, acc, color=colors[name], marker="o", s=50,
                        label=f"{name} .tflite")
        axes[1].scatter(row["gzip_bytes"] / 1024, acc, color=colors[name], marker="x", s=50,
                        label=f"{name} gzip")
    axes[0].set_xlabel("int8 invoke p50, 2 threads (ms)")
    axes[1].set_xlabel("size (KiB): o = .tflite, x = gzip")
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Fashion-MNIST: dense vs pruned (int8)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
