"""Training throughput: today's path against the previous one, interleaved (issue 16).

Each run is a fresh process (op determinism and TensorFlow's thread pools are per process) that
trains the same model on the same data for the same epochs and reports, per epoch, the wall
time of the training steps, samples per second, cores used (process CPU time / wall time) and
the time spent waiting for input, then the val score of the last epoch. Variants alternate
(A B A B ...) so both see the same machine conditions; the load average is recorded around
every run.

Variants:
    old   the path before issue 16: op determinism on, Keras' unfused batch norm, TensorFlow's
          default thread pools.
    new   today's defaults: no op determinism, fused batch norm, pools sized by
          ``edgecnn.train.common.configure_threads``.
    det   today's path with ``--deterministic`` (what bit-reproducibility costs now).
    unfused  today's path with Keras' unfused batch norm (what the fused kernel buys).
    xla   classify: the step XLA-compiled, unfused (what Keras' ``jit_compile="auto"`` chose
          whenever op determinism was off, e.g. in benchmarks/fashion_mnist.py).

CPU milliseconds per sample (cores / samples per second) are reported too: unlike the wall
time they change little when other jobs share the machine.

Examples:
    # detector: det_s width 1.5 at 256 px, 1000 synthetic images, 3 epochs, 2 rounds
    python benchmarks/train_speed.py --work W
    # the kangaroo split (python benchmarks/kangaroo.py ... W/kangaroo_split), 10 epochs
    python benchmarks/train_speed.py --work W --data W/kangaroo_split --epochs 10
    # classifier: dsnet_sf on Fashion-MNIST, batch 256, 2 epochs
    python benchmarks/train_speed.py --work W --task classify --arch dsnet_sf --batch 256 \\
        --epochs 2 --data fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = {
    "old": dict(deterministic=True, fused_bn=False, threads=False),
    "new": dict(deterministic=False, fused_bn=True, threads=True),
    "det": dict(deterministic=True, fused_bn=True, threads=True),
    "unfused": dict(deterministic=False, fused_bn=False, threads=True),
    "xla": dict(deterministic=False, fused_bn=False, threads=True, jit=True),
}


def load_avg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# ----------------------------------------------------------------------------- child side
def _child_detect(args, variant: dict) -> dict:
    from edgecnn.models.detect import detector_strides
    from edgecnn.models.registry import get_entry
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import scratch_recipe
    from edgecnn.train.engine.detector import DetectorEngine
    from edgecnn.train.engine.detector_data import decode, read_detection_samples
    from edgecnn.train.engine.usage import UsageClock

    config = TrainConfig(task="detect", data=args.data, arch=args.arch, out="unused",
                         imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
                         width=args.width, seed=0, max_train=args.max_train)
    data = decode(read_detection_samples(config.data, config.val_split, 0, config.max_train),
                  args.imgsz, detector_strides(args.arch))
    _setup(variant)
    entry = get_entry(args.arch, task="detect")
    kwargs = {"width": args.width} if args.width != 1.0 else {}
    model = entry.builder(input_shape=(args.imgsz, args.imgsz, 3),
                          num_classes=len(data.names), **kwargs)
    recipe = replace(scratch_recipe(config), fused_bn=variant["fused_bn"],
                     eval_every=args.epochs)
    clock = UsageClock()
    engine = DetectorEngine(model, data, recipe)
    fit = engine.fit(lambda line: print(line, flush=True))
    setup = clock.lap(0)
    h = fit.history
    trained = engine.steps * engine.batch           # samples per epoch
    epochs = [{"seconds": round(trained / rate, 3), "samples_per_second": round(rate, 2),
               "cores": round(cores, 3)}
              for rate, cores in zip(h["samples_per_second"], h["cpu_cores"])]
    return {"epochs": epochs, "input_wait_fraction": fit.metrics()["input_wait_fraction"],
            "score": {"val_map50": h["val_map50"][-1], "val_map": h["val_map"][-1]},
            "samples": len(data.train), "wall_seconds": round(setup.seconds, 2)}


def _child_classify(args, variant: dict) -> dict:
    from edgecnn.data import load_classification
    from edgecnn.models.registry import get_entry
    from edgecnn.train.engine import classifier as engine

    data = load_classification(args.data, data_dir=args.data_dir, val_split=0.1, seed=0,
                               max_train=args.max_train)
    _setup(variant)
    recipe = engine.ClassifierRecipe(epochs=args.epochs, batch=args.batch, lr=6e-3,
                                     optimizer="adamw", weight_decay=5e-4, warmup_epochs=1,
                                     label_smoothing=0.1, seed=0,
                                     fused_bn=variant["fused_bn"],
                                     jit_compile=variant.get("jit", False))
    batches = engine.classifier_batches(data, recipe, (0.0,), (255.0,))
    model = get_entry(args.arch, task="classify").builder(
        input_shape=(data.imgsz, data.imgsz, data.channels), num_classes=data.num_classes)
    engine.compile_classifier(model, recipe, batches.steps)
    epochs = []
    fit = None
    one = replace(recipe, epochs=1)
    for _ in range(args.epochs):    # one fit per epoch: per-epoch usage without a callback
        fit = engine.fit_classifier(model, batches, one)
        epochs.append({"seconds": round(fit.usage.seconds, 3),
                       "samples_per_second": round(fit.usage.samples_per_second, 2),
                       "cores": round(fit.usage.cores, 3)})
    return {"epochs": epochs, "input_wait_fraction": None,
            "score": {"val_accuracy": fit.history["val_accuracy"][-1]},
            "samples": len(data.x_train)}


def _setup(variant: dict) -> None:
    from edgecnn.train import common

    if variant["threads"]:
        common.configure_threads(None)
    common.seed_everything(0, variant["deterministic"])


def child(args) -> int:
    variant = VARIANTS[args.child]
    result = (_child_detect if args.task == "detect" else _child_classify)(args, variant)
    Path(args.result).write_text(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- parent side
def steady(run: dict) -> dict:
    """Means over the epochs after the first (the first traces the step)."""
    rest = run["epochs"][1:] or run["epochs"]
    out = {key: statistics.mean(e[key] for e in rest)
           for key in ("seconds", "samples_per_second", "cores")}
    out["cpu_ms_per_sample"] = statistics.mean(1e3 * e["cores"] / e["samples_per_second"]
                                               for e in rest)
    return out


def run_one(args, variant: str, index: int, work: Path) -> dict:
    result = work / f"run_{index}_{variant}.json"
    cmd = [sys.executable, __file__, "--child", variant, "--result", str(result),
           *args.passthrough]
    load0 = load_avg()
    t0 = time.perf_counter()
    log = work / f"run_{index}_{variant}.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} run failed (exit {proc.returncode}); see {log}")
    run = json.loads(result.read_text())
    run.update(variant=variant, index=index, load_avg_before=load0, load_avg_after=load_avg(),
               process_seconds=round(time.perf_counter() - t0, 1), steady=steady(run))
    return run


def ratio_table(runs: list[dict], base: str, other: str) -> list[float]:
    """Per-round speed-up of ``other`` over ``base`` (steady epoch seconds)."""
    a = [r for r in runs if r["variant"] == base]
    b = [r for r in runs if r["variant"] == other]
    return [x["steady"]["seconds"] / y["steady"]["seconds"] for x, y in zip(a, b)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="train_speed_work")
    ap.add_argument("--task", choices=("detect", "classify"), default="detect")
    ap.add_argument("--data", default=None,
                    help="dataset SPEC (default detect: a synthetic 256 px set made in --work; "
                         "classify: fashion-mnist)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arch", default=None, help="default det_s (detect) / dsnet_sf (classify)")
    ap.add_argument("--width", type=float, default=1.5, help="detector width multiplier")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--synth-images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="old,new")
    ap.add_argument("--json", default=None, help="write the record here too")
    ap.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.arch = args.arch or ("det_s" if args.task == "detect" else "dsnet_sf")
    if args.child:
        return child(args)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        if args.task == "detect":
            from edgecnn.data.synth import make_synthetic_dataset

            spec = work / "synth" / "data.yaml"
            if not spec.is_file():
                make_synthetic_dataset(spec.parent, args.synth_images, 100, args.imgsz, seed=0)
            args.data = str(spec)
        else:
            args.data = "fashion-mnist"
    args.passthrough = ["--task", args.task, "--data", args.data, "--arch", args.arch,
                        "--width", str(args.width), "--imgsz", str(args.imgsz),
                        "--batch", str(args.batch), "--epochs", str(args.epochs)]
    if args.max_train:
        args.passthrough += ["--max-train", str(args.max_train)]
    if args.data_dir:
        args.passthrough += ["--data-dir", args.data_dir]
    variants = args.variants.split(",")
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                         f"Python {platform.python_version()}",
              "command": " ".join(["python", "benchmarks/train_speed.py", *sys.argv[1:]]),
              "load_avg_start": load_avg(), "runs": []}
    index = 0
    for _ in range(args.rounds):
        for variant in variants:
            run = run_one(args, variant, index, work)
            index += 1
            record["runs"].append(run)
            s = run["steady"]
            print(f"{variant:4s} run {run['index']}: first epoch {run['epochs'][0]['seconds']:.1f}s, "
                  f"then {s['seconds']:.1f}s/epoch, {s['samples_per_second']:.1f} samples/s, "
                  f"{s['cores']:.2f} cores, {s['cpu_ms_per_sample']:.1f} CPU ms/sample; score {run['score']}; load {run['load_avg_before']}"
                  f" -> {run['load_avg_after']}", flush=True)
    base = variants[0]
    record["speedup"] = {v: [round(x, 3) for x in ratio_table(record["runs"], base, v)]
                         for v in variants[1:]}
    record["load_avg_end"] = load_avg()
    print(json.dumps({"speedup_vs_" + base: record["speedup"],
                      "load_avg": [record["load_avg_start"], record["load_avg_end"]]}))
    out = Path(args.json) if args.json else work / "train_speed.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"record -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
