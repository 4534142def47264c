"""Detection benchmark on the default synthetic dataset (issue 3 targets).

Steps (each result is printed and written to ``WORK/detect_synth.json``):

1. ``edgecnn data synth``-equivalent datasets: default (3000 train / 500 val, 256x256, seed 0)
   and the held-out variant (other backgrounds and object styles; 500 val images, seed 1).
2. Train ``det_s`` at 256x256 and a larger variant (``det_m``) at 320x320 from scratch
   (training wall time recorded; the machine may be shared, see the load average printed).
3. Convert each to float32 and int8 ``.tflite`` (``converters.convert_model``).
4. COCO mAP@0.5 and mAP@0.5:0.95 of the Keras model, the float and the int8 ``.tflite`` on the
   default val set, and of the int8 ``.tflite`` on the held-out variant.
5. ``.tflite`` sizes and invoke latency p50 (1 and 2 threads), int8 and float interleaved in one
   process.
6. With ``--qat-epochs N``: quantization-aware fine-tuning of the trained run
   (``edgecnn.qat``), then its float mAP and its int8 ``.tflite`` mAP (default and held-out),
   size and latency next to the post-training-quantized one.

Example:
    python benchmarks/detect_synth.py --work /tmp/detbench --epochs 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_data(work: Path, n_train: int, n_val: int) -> tuple[Path, Path]:
    from edgecnn.data.synth import make_synthetic_dataset

    default = work / "synth_default" / "data.yaml"
    heldout = work / "synth_heldout" / "data.yaml"
    if not default.is_file():
        make_synthetic_dataset(default.parent, n_train, n_val, 256, seed=0)
    if not heldout.is_file():
        make_synthetic_dataset(heldout.parent, 1, n_val, 256, seed=1, variant="heldout")
    return default, heldout


def train(data: Path, arch: str, imgsz: int, epochs: int, batch: int, out: Path,
          lr: float | None, max_train: int | None = None,
          optimizer: str = "adam") -> tuple[Path, float]:
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import train_detector

    t0 = time.perf_counter()
    run = train_detector(TrainConfig(task="detect", data=str(data), arch=arch, out=str(out),
                                     imgsz=imgsz, epochs=epochs, batch=batch, lr=lr,
                                     optimizer=optimizer, seed=0, max_train=max_train))
    return run, time.perf_counter() - t0


def latency(paths: dict[str, Path], threads: tuple[int, ...], runs: int, rounds: int = 5) -> dict:
    """p50 invoke time per (model, threads); variants interleaved round by round."""
    from edgecnn.runtime.model import TFLiteModel

    models = {(name, t): TFLiteModel(p, threads=t) for name, p in paths.items() for t in threads}
    times: dict = {key: [] for key in models}
    for m in models.values():
        x = np.zeros(m.input.shape, m.input.dtype)
        m.set_input(x)
        for _ in range(20):
            m.invoke()
    for _ in range(rounds):
        for key, m in models.items():
            for _ in range(runs // rounds):
                t = time.perf_counter()
                m.invoke()
                times[key].append(time.perf_counter() - t)
    return {f"{name}@{t}": round(float(np.median(times[(name, t)])) * 1e3, 4)
            for (name, t) in models}


def qat(arch: str, run: Path, default: Path, heldout: Path, work: Path, size: str, args,
        reuse_qat: dict, paths: dict) -> dict:
    """Quantization-aware fine-tuning of ``run``, then the int8 .tflite of the result."""
    from converters import convert_model
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.rundir import RunInfo

    if arch in reuse_qat:
        qrun = Path(reuse_qat[arch])
        report = RunInfo.load(qrun).reports["qat"]
    else:
        from edgecnn.qat.api import qat_finetune
        from edgecnn.qat.options import QatOptions

        qrun = work / f"run_{arch}_{size}_qat"
        report = qat_finetune(run, qrun, QatOptions(data=str(default), epochs=args.qat_epochs,
                                                    batch=args.qat_batch, lr=args.qat_lr)).report
    out: dict = {"run": str(qrun), "reused": arch in reuse_qat, "epochs": report["epochs"],
                 "lr": report["lr"], "seconds": report["seconds"],
                 "sim_before": report["sim_before"], "sim_after": report["sim_after"]}
    out["keras"] = {k: v for k, v in evaluate_detection(qrun, str(default)).items()
                    if k in ("map50", "map")}
    path = work / f"{arch}_{size}_int8_qat.tflite"
    convert_model(qrun, path, "int8")
    paths["int8_qat"] = path
    ev = evaluate_detection(path, str(default))
    out["int8"] = {"map50": ev["map50"], "map": ev["map"], "per_class": ev["per_class"],
                   "size_bytes": path.stat().st_size}
    ho = evaluate_detection(path, str(heldout))
    out["int8_heldout"] = {"map50": ho["map50"], "map": ho["map"]}
    print(f"{arch} int8 after {out['epochs']} QAT epochs: mAP50 {ev['map50']:.4f} "
          f"mAP {ev['map']:.4f} (float {out['keras']['map50']:.4f})", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/edgecnn-detbench")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--epochs-m", type=int, default=None, help="epochs of the larger variant")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="default: the optimizer's default")
    ap.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"))
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--archs", default="det_s:256,det_m:320")
    ap.add_argument("--max-train", type=int, default=None,
                    help="train on the first N images only (quick runs on a busy machine)")
    ap.add_argument("--max-train-m", type=int, default=None, help="same for the larger variant")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--reuse-run", action="append", default=[], metavar="ARCH=RUN",
                    help="measure this already trained run directory instead of training ARCH "
                         "(its train_seconds come from its run.json)")
    ap.add_argument("--qat-epochs", type=int, default=0,
                    help="also fine-tune each run N epochs through simulated int8 (edgecnn qat)")
    ap.add_argument("--qat-lr", type=float, default=None)
    ap.add_argument("--qat-batch", type=int, default=16)
    ap.add_argument("--reuse-qat", action="append", default=[], metavar="ARCH=RUN",
                    help="measure this already fine-tuned QAT run instead of running edgecnn qat")
    args = ap.parse_args(argv)
    reuse = dict(item.split("=", 1) for item in args.reuse_run)
    reuse_qat = dict(item.split("=", 1) for item in args.reuse_qat)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / "detect_synth.json"
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                                f"{platform.python_version()}",
                     "load_avg_start": os.getloadavg(), "command": " ".join(sys.argv),
                     "models": {}}

    def save():
        out_json.write_text(json.dumps(results, indent=2))

    t0 = time.perf_counter()
    default, heldout = make_data(work, args.n_train, args.n_val)
    results["data_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"data ready in {results['data_seconds']}s: {default}, {heldout}", flush=True)

    from converters import convert_model
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.rundir import RunInfo

    for item in args.archs.split(","):
        arch, size = item.split(":")
        small = arch == "det_s"
        epochs = args.epochs if small or args.epochs_m is None else args.epochs_m
        max_train = args.max_train if small or args.max_train_m is None else args.max_train_m
        load0 = os.getloadavg()
        if arch in reuse:
            run = Path(reuse[arch])
            seconds = RunInfo.load(run).metrics["train_seconds"]
            epochs = RunInfo.load(run).config["epochs"]
        else:
            run, seconds = train(default, arch, int(size), epochs, args.batch,
                                 work / f"run_{arch}_{size}", args.lr, max_train,
                                 args.optimizer)
        r: dict = {"imgsz": int(size), "epochs": epochs, "max_train": max_train,
                   "run": str(run), "reused": arch in reuse,
                   "train_seconds": round(seconds, 1),
                   "load_avg_during_train": [load0, os.getloadavg()]}
        results["models"][arch] = r
        metrics = RunInfo.load(run).metrics
        r["best_epoch"] = metrics["best_epoch"]
        r["params"] = metrics["params"]
        keras_eval = evaluate_detection(run, str(default))
        r["keras"] = {"map50": keras_eval["map50"], "map": keras_eval["map"]}
        save()
        paths = {}
        for quant in ("float32", "int8"):
            path = work / f"{arch}_{size}_{quant}.tflite"
            res = convert_model(run, path, quant)
            paths[quant] = path
            ev = evaluate_detection(path, str(default))
            r[quant] = {"map50": ev["map50"], "map": ev["map"], "per_class": ev["per_class"],
                        "size_bytes": path.stat().st_size}
            print(f"{arch} {quant}: mAP50 {ev['map50']:.4f} mAP {ev['map']:.4f} "
                  f"size {path.stat().st_size / 1e6:.3f} MB", flush=True)
            del res
            save()
        ho = evaluate_detection(paths["int8"], str(heldout))
        r["int8_heldout"] = {"map50": ho["map50"], "map": ho["map"]}
        if args.qat_epochs or arch in reuse_qat:
            r["qat"] = qat(arch, run, default, heldout, work, size, args, reuse_qat, paths)
            save()
        r["latency_ms_p50"] = latency(paths, (1, 2), args.runs)
        r["load_avg_latency"] = os.getloadavg()
        print(json.dumps(r, indent=1), flush=True)
        save()
    print(f"results -> {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
