"""Kangaroo: a pretrained detector against ``det_s --width 1.5`` from scratch in the same time,
float and int8, and the int8 invoke time of every detector family beside YOLO11n's.

Run through ``python benchmarks/transfer.py kangaroo ...`` (see its docstring). Steps:

1. Train the pretrained detector (``--pretrained ARCH:EPOCHS``, ``--weights imagenet``) with a
   fixed schedule and ``--keep last``: val is the only held-out split, so the reported
   figures are the last epoch's, never the best epoch chosen on val.
2. Give ``det_s --width 1.5`` from scratch the same training time: a 4-epoch probe measures its
   per-epoch cost (epochs 2-4; the first carries graph tracing) and its fixed cost, then the
   epoch count that fills the pretrained run's time is trained, also ``--keep last``.
   ``--clock cpu`` measures time as the process's CPU seconds divided by ``--cores`` (on a
   shared, loaded machine CPU time is what a quiet one would turn into wall time); ``wall``
   (default) measures elapsed seconds.
3. Convert both runs to int8 (calibrated on the training images) and float32; evaluate the
   Keras model and both ``.tflite`` files on val (COCO mAP through the runtime's decoding).
4. Time int8 invoke at 256x256 of every detector family (random weights where not trained:
   weights change no op or shape) and the YOLO11n ``.tflite`` files given, interleaved in one
   process (``edgecnn.bench``), at 1 and 2 threads.
"""

from __future__ import annotations

import io
import json
import os
import resource
import time
from pathlib import Path

IMGSZ = 256
BATCH = 16
PROBE_EPOCHS = 4
FAMILIES = {"det_s": {}, "det_s_w1.5": {"width": 1.5}, "det_m": {}, "det_lite0": {},
            "det_lite0_slim": {}, "det_mnv2": {}, "det_mnv3": {}}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Seconds as ``wall`` time or as CPU time / ``cores``."""

    def __init__(self, kind: str, cores: float):
        self.kind, self.cores = kind, cores

    def now(self) -> float:
        return time.perf_counter() if self.kind == "wall" else cpu_seconds() / self.cores


class EpochStream(io.TextIOBase):
    """The training log: echoed, with the clock read at every epoch line."""

    def __init__(self, clock: Clock, echo):
        self.clock, self.echo, self.marks = clock, echo, []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("epoch "):
                self.marks.append(self.clock.now())
            if line.strip():
                self.echo(line)
        return len(text)


def train_run(args, out: Path, arch: str, epochs: int, clock: Clock, **options) -> dict:
    """One training run through the library; its time in ``clock`` and per epoch.

    With ``--reuse``, a run directory that holds the record of the same run (arch, epochs,
    options, clock) is reused instead of trained again.
    """
    from edgecnn.train.api import train
    from edgecnn.train.config import TrainConfig

    record_path = out / "benchmark_run.json"
    if args.reuse and record_path.is_file():
        record = json.loads(record_path.read_text())
        if (record["arch"], record["epochs"], record["options"], record["clock"]) == (
                arch, epochs, options, [clock.kind, clock.cores]):
            print(f"  [{out.name}] reusing the recorded run", flush=True)
            return record
    # Op determinism off: it costs a third of the detector's step (issue 16), and a fixed
    # seed still fixes data order, augmentation and initial weights.
    config = TrainConfig(task="detect", data=args.data, arch=arch, out=str(out), imgsz=IMGSZ,
                         epochs=epochs, batch=BATCH, keep="last", overwrite=True,
                         deterministic=False, **options)
    stream = EpochStream(clock, lambda line: print(f"  [{out.name}] {line}", flush=True))
    start, wall, cpu = clock.now(), time.perf_counter(), cpu_seconds()
    train(config, stream)
    seconds = clock.now() - start
    info = json.loads((out / "run.json").read_text())
    record = {"run": str(out), "arch": arch, "epochs": epochs, "options": options,
              "clock": [clock.kind, clock.cores], "seconds": round(seconds, 1),
              "wall_seconds": round(time.perf_counter() - wall, 1),
              "cpu_seconds": round(cpu_seconds() - cpu, 1),
              "epoch_marks": [round(m - start, 2) for m in stream.marks],
              "val_map50_last": info["metrics"]["val_map50"],
              "val_map_last": info["metrics"]["val_map"],
              "load_average_after": os.getloadavg()}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def matched_epochs(args, work: Path, clock: Clock, budget: float, arch: str,
                   width: float) -> tuple[int, dict]:
    """Epochs of ``arch`` from scratch that fill ``budget`` seconds, from a short probe run."""
    probe = train_run(args, work / f"probe_{arch}_w{width:g}", arch, PROBE_EPOCHS, clock,
                      width=width)
    marks = probe["epoch_marks"]
    per_epoch = (marks[-1] - marks[0]) / (len(marks) - 1)
    fixed = probe["seconds"] - per_epoch * PROBE_EPOCHS
    epochs = max(PROBE_EPOCHS, int((budget - fixed) / per_epoch))
    return epochs, {"per_epoch_s": round(per_epoch, 2), "fixed_s": round(fixed, 1),
                    "probe": probe}


def convert_and_eval(args, run: Path) -> dict:
    """Float Keras, float32 and int8 ``.tflite`` mAP on val; the int8 file's path."""
    from converters.convert import convert_model
    from edgecnn.evaluate.detect import evaluate_detection

    out = {"keras": _maps(evaluate_detection(run, args.data, split="val"))}
    for quant in ("float32", "int8"):
        result = convert_model(run, run / f"model_{quant}.tflite", quant, held_out=16)
        out[quant] = _maps(evaluate_detection(result.path, args.data, split="val"))
        out[f"{quant}_file"] = str(result.path)
        out[f"{quant}_bytes"] = result.size_bytes
    out["int8_minus_float_map50"] = round(out["int8"]["map50"] - out["float32"]["map50"], 4)
    return out


def _eval_tflite(args, path: str) -> dict:
    """Val mAP of a ``.tflite`` with edgecnn metadata (the YOLO11n exports have it)."""
    from edgecnn.errors import UsageError
    from edgecnn.evaluate.detect import evaluate_detection

    try:
        return {"file": path, **_maps(evaluate_detection(path, args.data, split="val",
                                                         verify=False))}
    except UsageError as err:
        return {"file": path, "error": err.message}


def _maps(result: dict) -> dict:
    return {"map50": round(float(result["map50"]), 4), "map": round(float(result["map"]), 4)}


def family_models(args, work: Path, trained: dict[str, str]) -> dict[str, str]:
    """int8 ``.tflite`` of every family at 256: the trained runs' files, the rest converted
    from random weights with the same calibration images."""
    from converters.convert import convert_model
    from edgecnn.models import create_model

    paths = dict(trained)
    for name, kwargs in FAMILIES.items():
        if name in paths:
            continue
        arch = name.split("_w")[0]
        model = create_model(arch, (IMGSZ, IMGSZ, 3), 1, task="detect", **kwargs)
        run_dir = untrained_run(work / f"lat_{name}", arch, model)
        result = convert_model(run_dir, work / f"lat_{name}_int8.tflite", "int8",
                               calib=args.calib, calib_size=32, held_out=0, overwrite=True)
        paths[name] = str(result.path)
    for i, path in enumerate(args.yolo_int8 or []):
        paths[f"yolo11n_int8{'' if i == 0 else f'_{i}'}"] = path
    return paths


def untrained_run(run_dir: Path, arch: str, model) -> Path:
    """A run directory for a detector with random weights: ``convert`` reads a detector's
    decoder and input contract from run.json (a bare ``.keras`` must be a classifier)."""
    from edgecnn.models.registry import Normalization, get_entry
    from edgecnn.models.detect import detector_strides
    from edgecnn.rundir import MODEL_FILE, RunInfo
    from edgecnn.runtime.metadata import DecoderSpec
    from edgecnn.runtime.task import Task

    norm = get_entry(arch, task="detect").normalization or Normalization()
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / MODEL_FILE)
    RunInfo(task=Task.DETECT, arch=arch, labels=["kangaroo"], imgsz=(IMGSZ, IMGSZ),
            resize="letterbox", mean=list(norm.mean), std=list(norm.std),
            output_activation="sigmoid",
            decoder=DecoderSpec(type="anchor_free_ltrb",
                                strides=tuple(int(s) for s in detector_strides(arch)),
                                box_output=0, score_output=1)).save(run_dir)
    return run_dir


def latency(paths: dict[str, str], runs: int) -> list[dict]:
    from edgecnn.bench.latency import BenchOptions, benchmark

    results = benchmark(list(paths.values()), BenchOptions(threads=(1, 2), runs=runs,
                                                           warmup=10, block=10, verify=False))
    names = {str(Path(p)): n for n, p in paths.items()}
    return [{"family": names.get(str(Path(r.path)), r.model), "threads": r.threads,
             "p50_ms": round(r.p50_ms, 2), "min_ms": round(r.min_ms, 2),
             "mean_ms": round(r.mean_ms, 2)} for r in results]


def yolo_reference(path: str | None) -> dict | None:
    """Last epoch of an Ultralytics ``results.csv`` (float, PyTorch, val)."""
    if not path:
        return None
    import csv

    with open(path, newline="") as fh:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(fh)]
    last = rows[-1]
    return {"epochs": int(float(last["epoch"])), "map50": float(last["metrics/mAP50(B)"]),
            "map": float(last["metrics/mAP50-95(B)"]), "source": path}


def kangaroo(args) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.calib = args.calib or str(Path(args.data) / "images")
    clock = Clock(args.clock, args.cores)
    arch, epochs = args.pretrained.split(":")
    load_before = os.getloadavg()
    pretrained = train_run(args, work / f"{arch}_imagenet", arch, int(epochs), clock,
                           weights="imagenet")
    pretrained["eval"] = convert_and_eval(args, Path(pretrained["run"]))
    scratch_runs = {}
    for item in args.scratch.split(","):
        name, width = item.split(":")
        key = f"{name}_w{float(width):g}" if float(width) != 1.0 else name
        n, matching = matched_epochs(args, work, clock, pretrained["seconds"], name,
                                     float(width))
        run = train_run(args, work / f"{key}_scratch", name, n, clock, width=float(width))
        run["matching"] = matching
        run["eval"] = convert_and_eval(args, Path(run["run"]))
        scratch_runs[key] = run
    also = {name: {"run": run_dir, "eval": convert_and_eval(args, Path(run_dir))}
            for name, run_dir in (item.split("=", 1) for item in args.also or [])}
    trained = {arch: pretrained["eval"]["int8_file"]}
    trained.update({k: r["eval"]["int8_file"] for k, r in scratch_runs.items()})
    trained.update({k: r["eval"]["int8_file"] for k, r in also.items()})
    lat = latency(family_models(args, work, trained), args.runs)
    # The gain target is against the first --scratch entry (det_s:1.5 by default).
    reference = next(iter(scratch_runs))
    p, s = pretrained["eval"]["int8"], scratch_runs[reference]["eval"]["int8"]
    return {
        "clock": {"kind": args.clock, "cores": args.cores}, "imgsz": IMGSZ, "batch": BATCH,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "pretrained": pretrained, "scratch": scratch_runs, "also": also,
        "yolo11n": yolo_reference(args.yolo_results),
        "yolo11n_int8_eval": [_eval_tflite(args, p) for p in args.yolo_int8 or []],
        "targets": {
            "int8_map50>=0.85": p["map50"] >= 0.85, "int8_map>=0.50": p["map"] >= 0.50,
            "scratch_reference": reference,
            "map50_gain_vs_scratch": round(p["map50"] - s["map50"], 4),
            "gain>=0.15": p["map50"] - s["map50"] >= 0.15,
            "int8_within_1.5_points_of_float":
                abs(pretrained["eval"]["int8_minus_float_map50"]) <= 0.015},
        "latency": lat,
    }


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="the split folder of benchmarks/kangaroo.py")
    parser.add_argument("--calib", help="images for the latency models' calibration "
                                        "(default: DATA/images)")
    parser.add_argument("--pretrained", default="det_lite0:60", help="ARCH:EPOCHS")
    parser.add_argument("--scratch", default="det_s:1.5",
                        help="ARCH:WIDTH,... trained from scratch in the pretrained run's time "
                             "(det_s:1.5 is the target's reference)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--cores", type=float, default=2.0,
                        help="--clock cpu: CPU seconds per second of a quiet machine")
    parser.add_argument("--yolo-int8", action="append",
                        help="a YOLO11n int8 .tflite at 256 to time beside ours (repeatable)")
    parser.add_argument("--yolo-results", help="YOLO11n's Ultralytics results.csv (its mAP)")
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per variant")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse training runs already in --work with the same settings")
    parser.add_argument("--also", action="append", metavar="NAME=RUN_DIR",
                        help="a run trained elsewhere (e.g. by box_quality.py) to convert, "
                             "score, time and plot beside the others (repeatable)")


def pareto(result: dict, out: Path) -> Path:
    """int8 invoke time (1 thread, p50) against val mAP of every family: a two-panel plot.

    Families without a trained run here (no ImageNet weights offline for the MobileNets) are
    marked on the time axis only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = {r["family"]: r["p50_ms"] for r in result["latency"] if r["threads"] == 1}
    points = _trained_points(result)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, label in zip(axes, ("map50", "map"), ("mAP@0.5", "mAP@0.5:0.95")):
        for name, maps, style in points:
            if name in ms:
                ax.plot(ms[name], maps[key], style, markersize=9)
                below = style == "D"    # --also runs sit near the others: label under them
                ax.annotate(_label(name, result), (ms[name], maps[key]),
                            textcoords="offset points", xytext=(6, -12 if below else 4),
                            fontsize=8)
        for name, t in ms.items():
            if name not in {p[0] for p in points}:
                ax.axvline(t, color="0.8", linestyle=":", linewidth=1)
                ax.annotate(f"{name} (latency only)", (t, 0.02), rotation=90, fontsize=7,
                            color="0.45", xytext=(2, 0), textcoords="offset points")
        ax.set_xlabel("int8 invoke, 1 thread, p50 (ms), 256x256")
        ax.set_ylabel(f"val {label} (int8, kangaroo)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    fig.suptitle("Kangaroo (131 train / 33 val), 256 px, int8; "
                 f"load average {result['load_average_before'][0]:.1f}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _label(name: str, result: dict) -> str:
    """The family name, with the box head of the pretrained run when its run.json says it
    was the dense one (runs made before the integral head became det_lite0's default)."""
    if name != result["pretrained"]["arch"]:
        return name
    run_json = Path(result["pretrained"]["run"]) / "run.json"
    if run_json.is_file():
        config = json.loads(run_json.read_text()).get("config", {})
        if not config.get("integral_boxes"):
            return f"{name} (dense boxes)"
    return name


def _trained_points(result: dict) -> list[tuple[str, dict, str]]:
    """(family, {"map50", "map"}, marker style) of every family with a measured mAP."""
    arch = result["pretrained"]["arch"]
    points = [(arch, result["pretrained"]["eval"]["int8"], "o")]
    points += [(name, run["eval"]["int8"], "s") for name, run in result["scratch"].items()]
    points += [(name, run["eval"]["int8"], "D") for name, run in result.get("also", {}).items()]
    for i, entry in enumerate(result.get("yolo11n_int8_eval") or []):
        if "map50" in entry:
            points.append((f"yolo11n_int8{'' if i == 0 else f'_{i}'}", entry, "^"))
    return points
