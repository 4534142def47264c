"""Per-op int8 invoke time of .tflite models, by timing every prefix of the op list.

The Python interpreter has no op profiler, so for a model with ops ``o1 .. oN`` this script
builds N truncated models (``o1..ok``, output = the output of ``ok``), times all of them and
all models given, interleaved in one process (``edgecnn.bench``), and reports the increment
``t(k) - t(k-1)`` as the cost of op ``k``. The first op's increment includes the fixed cost of
an invoke. Increments of a few tenths of a microsecond are within the noise.

Usage:
    python benchmarks/prune_op_profile.py dense_int8.tflite channel_int8.tflite \
        --threads 1,2 --runs 400 --json op_profile.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prefixes(path: Path) -> tuple[list[bytes], list[str]]:
    """Truncated flatbuffers (metadata dropped) and a label per op: type and output shape."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from edgecnn.runtime.metadata import split_bundle

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    flatbuffer, _ = split_bundle(path.read_bytes())
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    ops = model.subgraphs[0].operators
    blobs, labels = [], []
    for k in range(1, len(ops) + 1):
        cut = copy.deepcopy(model)
        graph = cut.subgraphs[0]
        graph.operators = graph.operators[:k]
        graph.outputs = [int(graph.operators[-1].outputs[0])]
        blobs.append(bytes(flatbuffer_utils.convert_object_to_bytearray(cut)))
        op = ops[k - 1]
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        shape = [int(d) for d in model.subgraphs[0].tensors[op.outputs[0]].shape]
        labels.append(f"{kind} {shape}")
    return blobs, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help=".tflite files")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--json", default=None, help="write the profile here")
    args = ap.parse_args()

    from edgecnn.bench.latency import BenchOptions, benchmark

    threads = tuple(int(t) for t in args.threads.split(","))
    doc = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "models": {}}
    with tempfile.TemporaryDirectory(prefix="op_profile_") as tmp:
        files, owners = [], []
        for m, model in enumerate(args.models):
            blobs, labels = prefixes(Path(model))
            doc["models"][model] = {"ops": labels}
            for k, blob in enumerate(blobs):
                path = Path(tmp) / f"m{m}_{k:03d}.tflite"
                path.write_bytes(blob)
                files.append(path)
                owners.append((model, k))
        results = benchmark(files, BenchOptions(threads=threads, runs=args.runs, warmup=20,
                                                block=20))
    for r in results:
        model, k = owners[files.index(Path(r.path))]
        doc["models"][model].setdefault(f"cumulative_us_{r.threads}t", []).append(
            round(1000 * r.p50_ms, 2))
    for model, entry in doc["models"].items():
        print(model)
        header = "".join(f"  cum {t}t   op {t}t" for t in threads)
        print(f"  {'op':<36}{header}")
        for k, label in enumerate(entry["ops"]):
            cells = ""
            for t in threads:
                cum = entry[f"cumulative_us_{t}t"]
                cells += f" {cum[k]:7.1f} {cum[k] - (cum[k - 1] if k else 0):7.1f}"
            print(f"  {label:<36}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
