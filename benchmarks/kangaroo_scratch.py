"""Kangaroo from scratch, one command: train a ``det_s`` run, convert it to int8, evaluate both
on the held-out val split, and time the int8 model next to YOLO11n's (issue 16).

The split is the benchmark convention (``python benchmarks/kangaroo.py SOURCE DEST``: 131 train
/ 33 val, the last 20% of the names). Val is the only held-out split, so the run keeps its
*last* epoch's weights (an EMA of them): choosing the best epoch on val would report a
selected number. With ``--qat-epochs N`` the run is also fine-tuned through simulated int8
(``edgecnn qat``, last epoch kept too) and that int8 file is reported as well.

YOLO11n's reference is read from an Ultralytics ``results.csv`` (its last epoch's val
mAP50 / mAP50-95) and, with ``--yolo-tflite``, its int8 ``.tflite`` is timed interleaved with
ours (``edgecnn.bench``: round-robin blocks, 1 and 2 threads).

Example:
    python benchmarks/kangaroo.py ../shared/data/kangaroo W/kangaroo_split
    python benchmarks/kangaroo_scratch.py --data W/kangaroo_split --work W/kangaroo \\
        --yolo-results runs/yolo11n_kangaroo/results.csv --yolo-tflite yolo11n_int8.tflite
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # converters/

TARGET_GAP = 0.02          # int8 mAP@0.5:0.95 within 2 points of YOLO11n
TARGET_LATENCY = 0.4       # at <= 0.4x YOLO11n's int8 invoke time


def load_avg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def train(args, out: Path) -> Path:
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import train_detector

    config = TrainConfig(task="detect", data=args.data, arch=args.arch, out=str(out),
                         imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         optimizer=args.optimizer, width=args.width, seed=args.seed,
                         keep="last", overwrite=True, deterministic=args.deterministic,
                         teacher=args.teacher, distill_weight=args.distill_weight)
    return train_detector(config)


def qat(args, run: Path, out: Path) -> Path:
    from edgecnn.qat.api import qat_finetune
    from edgecnn.qat.options import QatOptions

    qat_finetune(run, out, QatOptions(data=args.data, epochs=args.qat_epochs, batch=args.batch,
                                      lr=args.qat_lr, keep_best=False))
    return out


def scores(path: Path, data: str) -> dict:
    from edgecnn.evaluate.detect import evaluate_detection

    ev = evaluate_detection(path, data, split="val")
    return {"map50": round(float(ev["map50"]), 4), "map": round(float(ev["map"]), 4)}


def yolo_reference(results_csv: str) -> dict:
    """The last epoch's val mAP of an Ultralytics ``results.csv``."""
    with open(results_csv, newline="") as fh:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(fh)]
    last = rows[-1]
    return {"epoch": int(float(last["epoch"])), "map50": float(last["metrics/mAP50(B)"]),
            "map": float(last["metrics/mAP50-95(B)"]), "source": Path(results_csv).name}


def latency(paths: dict[str, Path], runs: int) -> dict:
    from edgecnn.bench.latency import BenchOptions, benchmark

    results = benchmark([str(p) for p in paths.values()],
                        BenchOptions(threads=(1, 2), runs=runs, warmup=30, block=20,
                                     verify=False))
    names = {str(p): name for name, p in paths.items()}
    return {f"{names.get(r.path, Path(r.model).stem)}@{r.threads}": round(r.p50_ms, 4)
            for r in results}


def checks(record: dict) -> dict:
    out = {}
    yolo = record.get("yolo")
    for key in ("int8", "int8_qat"):
        if key in record and yolo:
            gap = yolo["map"] - record[key]["map"]
            out[f"{key} mAP@0.5:0.95 within {TARGET_GAP:.2f} of YOLO11n"] = {
                "measured": round(gap, 4), "target": TARGET_GAP, "met": gap <= TARGET_GAP}
    lat = record.get("latency_ms_p50", {})
    for t in (1, 2):
        ours, theirs = lat.get(f"int8@{t}"), lat.get(f"yolo11n_int8@{t}")
        if ours and theirs:
            ratio = ours / theirs
            out[f"int8 latency vs YOLO11n int8, {t} thread(s)"] = {
                "measured": round(ratio, 3), "target": TARGET_LATENCY,
                "met": ratio <= TARGET_LATENCY}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="the split folder (benchmarks/kangaroo.py)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--arch", default="det_s")
    ap.add_argument("--width", type=float, default=1.5)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deterministic", action="store_true")
    ap.add_argument("--teacher", default=None,
                    help="distil from this detector run (trained on the same split)")
    ap.add_argument("--distill-weight", type=float, default=None)
    ap.add_argument("--reuse-run", default=None, help="evaluate this trained run instead")
    ap.add_argument("--qat-epochs", type=int, default=0)
    ap.add_argument("--qat-lr", type=float, default=None)
    ap.add_argument("--yolo-results", default=None, help="Ultralytics results.csv of YOLO11n")
    ap.add_argument("--yolo-tflite", default=None, help="YOLO11n int8 .tflite at the same size")
    ap.add_argument("--runs", type=int, default=300, help="timed invokes per model and thread")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    record: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": f"{platform.machine()} {os.cpu_count()} cores, Python "
                               f"{platform.python_version()}",
                    "command": " ".join(["python", "benchmarks/kangaroo_scratch.py",
                                         *sys.argv[1:]]),
                    "load_avg_start": load_avg()}
    out_json = work / "kangaroo_scratch.json"

    def save() -> None:
        out_json.write_text(json.dumps(record, indent=1))

    if args.yolo_results:
        record["yolo"] = yolo_reference(args.yolo_results)
    run = Path(args.reuse_run) if args.reuse_run else train(args, work / "run")
    from edgecnn.rundir import RunInfo

    info = RunInfo.load(run)
    record["run"] = {"arch": info.arch, "config": {k: info.config.get(k) for k in (
        "epochs", "batch", "imgsz", "width", "lr", "optimizer", "seed", "keep", "teacher",
        "distill_weight")},
        "metrics": info.metrics, "load_avg_after": load_avg()}
    record["keras"] = scores(run, args.data)
    save()

    from converters import convert_model

    paths = {"int8": work / "det_int8.tflite"}
    convert_model(run, paths["int8"], "int8", held_out=0)
    record["int8"] = {**scores(paths["int8"], args.data),
                      "size_bytes": paths["int8"].stat().st_size}
    print(f"keras {record['keras']}  int8 {record['int8']}", flush=True)
    save()
    if args.qat_epochs:
        qrun = qat(args, run, work / "run_qat")
        paths["int8_qat"] = work / "det_int8_qat.tflite"
        convert_model(qrun, paths["int8_qat"], "int8", held_out=0)
        record["int8_qat"] = {**scores(paths["int8_qat"], args.data),
                              "qat_epochs": args.qat_epochs}
        print(f"int8 after QAT {record['int8_qat']}", flush=True)
        save()
    if args.yolo_tflite:
        paths["yolo11n_int8"] = Path(args.yolo_tflite)
    record["latency_ms_p50"] = latency(paths, args.runs)
    record["load_avg_end"] = load_avg()
    record["checks"] = checks(record)
    save()
    print(json.dumps({k: record[k] for k in ("keras", "int8", "latency_ms_p50", "checks")},
                     indent=1))
    print(f"record -> {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
