"""Box quality of the anchor-free detector: which training knobs raise mAP@0.5:0.95 (issue 16).

Trains the same detector on the same split once per variant, through the CLI exactly as a user
would (``edgecnn train``, then ``edgecnn convert --quant int8``, then ``edgecnn eval`` of the
int8 file on val), and reports the last epoch's figures (``--keep last``: val is the only
held-out split of the kangaroo set, so no checkpoint is chosen on it). Variants run one after
another in fresh processes; their CPU seconds (children's user + system time) are reported
beside the wall time, since CPU time changes little when other jobs share the machine.

Variants (combine with ``+``, e.g. ``mosaic+integral``):
    base      today's defaults (the dense head for ``det_s``, the integral one for the
              EfficientNet-Lite0 detectors)
    integral  ``--integral-boxes``: each box side a distribution over 17 bins, trained with
              distribution focal loss (GFL / YOLOv8's DFL) instead of L1
    dense     ``--dense-boxes``: each box side one value, trained with L1
    mosaic    ``--mosaic 0.5`` (off for the last tenth of the epochs)
    mosaic1   ``--mosaic 1.0`` (every image a mosaic until the last tenth, as YOLOv8 trains)
    mixup     ``--mixup 0.15``
    long      twice the epochs (a longer cosine tail at the same peak)

Examples (the kangaroo split of benchmarks/kangaroo.py):
    python benchmarks/box_quality.py --data W/kangaroo_split --work W/box \\
        --variants base,integral,mosaic,mixup --json box_quality.json
    # the pretrained detector with the knobs that measured better
    python benchmarks/box_quality.py --data W/kangaroo_split --work W/box_lite0 \\
        --arch det_lite0 --width 1 --weights imagenet --variants mosaic+mixup+integral
    # the slim detector taught by a trained det_lite0 run
    python benchmarks/box_quality.py --data W/kangaroo_split --work W/kd_slim \\
        --arch det_lite0_slim --width 1 --weights imagenet --teacher W/box_lite0/integral \\
        --variants base
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

FLAGS = {"base": [], "integral": ["--integral-boxes"], "dense": ["--dense-boxes"],
         "mosaic": ["--mosaic", "0.5"],
         "mosaic1": ["--mosaic", "1.0"], "mixup": ["--mixup", "0.15"], "long": []}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")


def variant(args, name: str, work: Path) -> dict:
    parts = name.split("+")
    unknown = [p for p in parts if p not in FLAGS]
    if unknown:
        sys.exit(f"unknown variant part(s) {unknown}; choose from {sorted(FLAGS)}")
    epochs = args.epochs * (2 if "long" in parts else 1)
    out = work / name
    log = work / f"{name}.log"
    record_path = work / f"{name}.json"
    if args.reuse and record_path.is_file():
        print(f"[{name}] reusing {record_path}", flush=True)
        return json.loads(record_path.read_text())
    flags = [f for p in parts for f in FLAGS[p]]
    train = [sys.executable, "-m", "edgecnn", "train", "--task", "detect", "--data", args.data,
             "--arch", args.arch, "--imgsz", str(args.imgsz), "--epochs", str(epochs),
             "--batch", str(args.batch), "--seed", str(args.seed), "--keep", "last",
             "--overwrite", "--out", str(out), *flags]
    if args.width != 1.0:
        train += ["--width", str(args.width)]
    if args.weights:
        train += ["--weights", args.weights]
    if args.teacher:
        train += ["--teacher", args.teacher]
    print(f"[{name}] {' '.join(train[2:])}", flush=True)
    load_before = os.getloadavg()
    cpu0, wall0 = children_cpu(), time.perf_counter()
    run(train, log)
    cpu, wall = children_cpu() - cpu0, time.perf_counter() - wall0
    int8 = out / "model_int8.tflite"
    run([sys.executable, "-m", "edgecnn", "convert", str(out), "--quant", "int8",
         "--overwrite", "-o", str(int8)], log)
    evaluated = subprocess.run([sys.executable, "-m", "edgecnn", "eval", str(int8), "--data",
                                args.data, "--split", "val", "--json"],
                               capture_output=True, text=True, check=True)
    scores = json.loads(evaluated.stdout)
    info = json.loads((out / "run.json").read_text())
    record = {"variant": name, "flags": flags, "epochs": epochs,
              "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
              "keras_last": {"map50": info["metrics"]["val_map50"],
                             "map": info["metrics"]["val_map"]},
              "int8": {"map50": round(scores["map50"], 4), "map": round(scores["map"], 4)},
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"[{name}] int8 val mAP@0.5 {record['int8']['map50']:.3f} "
          f"mAP@0.5:0.95 {record['int8']['map']:.3f}; {cpu:.0f} CPU-s, {wall:.0f} s", flush=True)
    return record


def markdown(records: list[dict]) -> str:
    base = next((r for r in records if r["variant"] == "base"), None)
    lines = ["| variant | epochs | int8 mAP@0.5 | int8 mAP@0.5:0.95 | vs base (@0.5:0.95) "
             "| Keras last @0.5 / @0.5:0.95 | train CPU-s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        delta = "" if base is None else f"{100 * (r['int8']['map'] - base['int8']['map']):+.1f}"
        lines.append(f"| {r['variant']} | {r['epochs']} | {r['int8']['map50']:.3f} | "
                     f"{r['int8']['map']:.3f} | {delta} | {r['keras_last']['map50']:.3f} / "
                     f"{r['keras_last']['map']:.3f} | {r['train_cpu_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="detection dataset SPEC with a val split")
    ap.add_argument("--work", required=True)
    ap.add_argument("--arch", default="det_s")
    ap.add_argument("--width", type=float, default=1.5)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None,
                    help="initial weights, e.g. imagenet with --arch det_lite0 --width 1")
    ap.add_argument("--teacher", default=None,
                    help="a detector run whose predictions the runs distil (--teacher)")
    ap.add_argument("--variants", default="base,integral,mosaic,mixup")
    ap.add_argument("--reuse", action="store_true", help="reuse variants already in --work")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    records = [variant(args, name, work) for name in args.variants.split(",")]
    result = {"arch": args.arch, "width": args.width, "weights": args.weights, "imgsz": args.imgsz, "data": args.data,
              "seed": args.seed, "records": records}
    print(markdown(records))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
