"""``qat_finetune``: a trained run directory in, an int8-robust run directory out.

Quantization-aware fine-tuning: the model is trained for a few epochs *through* its simulated
int8 twin (:mod:`edgecnn.qat.sim`), so the weights settle where int8 rounding hurts least. The
training is the engines' (:func:`edgecnn.train.finetune.finetune`), given the simulation as the
forward to train. The output is a normal float run directory; ``edgecnn convert --quant int8``
then calibrates and quantizes it as usual (nothing QAT-specific reaches the ``.tflite``, so
every LiteRT runtime runs it). The report holds the task metric of the float model and of the
simulation, before and after: the simulation predicts the int8 ``.tflite`` within a few tenths
of a point.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.qat.options import QatOptions
from edgecnn.runtime.task import Task

CALIB_IMAGES = 200


@dataclass(frozen=True)
class QatResult:
    out: Path
    report: dict


def qat_finetune(model_path, out, options: QatOptions = QatOptions(),
                 stream=None) -> QatResult:
    """Fine-tune ``model_path`` through its int8 simulation and write a run directory.

    Args:
        model_path: run directory (or ``.keras`` with ``run.json`` beside it).
        out: run directory to write (atomically).
        options: validated when created; task defaults are filled in once the run is open.
        stream: where progress lines go (default stdout; ``options.verbose`` 0: none).

    Example:
        result = qat_finetune("runs/det", "runs/det_qat", QatOptions(epochs=8))
        result.report["sim_after"]["map50"]   # predicted int8 mAP@0.5
    """
    from edgecnn.train.source import open_source_run, save_derived_run
    from edgecnn.train.task_data import evaluate_task, load_task_data

    stream = stream or sys.stdout
    say = ((lambda line: print(line, file=stream, flush=True)) if options.verbose
           else (lambda line: None))
    t0 = time.perf_counter()
    say(f"loading {model_path} (Keras)")   # importing TensorFlow alone takes seconds
    source = open_source_run(model_path, out, options.data, options.data_dir, options.overwrite)
    info = source.info
    options = options.for_task(info.task)
    say(f"data  {source.spec}")
    task_data = load_task_data(info, source.model, source.spec, source.data_dir,
                               options.max_train, options.batch)
    say(f"measuring the float model on the val split ({time.perf_counter() - t0:.1f}s)")
    start = time.perf_counter()
    float_before = evaluate_task(info, source.model, task_data)
    sim_metrics, history = _finetune_through_simulation(source, task_data, options, stream,
                                                        say, float_before)
    float_after = evaluate_task(info, source.model, task_data)
    say(f"after:  float {_fmt(float_after)}, simulated int8 {_fmt(sim_metrics[1])}")
    kept = history.get("kept", [])
    report = {"epochs": options.epochs, "lr": options.lr, "batch": options.batch,
              "ema_decay": options.ema_decay,
              "kept_epoch": (kept.index(1.0) + 1) if 1.0 in kept else options.epochs,
              "float_before": float_before, "sim_before": sim_metrics[0],
              "float_after": float_after, "sim_after": sim_metrics[1],
              "seconds": round(time.perf_counter() - start, 2), "source": str(model_path),
              "data": source.spec}
    metrics = {**info.metrics, **{f"val_{k}": v for k, v in float_after.items()}}
    save_derived_run(source, source.model, command="qat", report_key="qat", report=report,
                     metrics=metrics, history=history, overwrite=options.overwrite)
    return QatResult(source.out, report)


def _finetune_through_simulation(source, task_data, options: QatOptions, stream, say,
                                 float_before: dict):
    """Simulate, calibrate, fine-tune through the simulation, recalibrate; returns the
    simulated metric before and after, and the history."""
    from edgecnn.qat.sim import simulate_int8
    from edgecnn.train.engine.detector_step import detector_heads
    from edgecnn.train.finetune import FinetuneOptions, finetune
    from edgecnn.train.task_data import evaluate_task

    info = source.info
    lr, ema_decay, keep_best = options.lr, options.ema_decay, options.keep_best
    if lr is None or ema_decay is None or keep_best is None:
        raise ValueError("QatOptions.for_task() fills in lr, ema_decay and keep_best first")
    tuning = FinetuneOptions(epochs=options.epochs, batch=options.batch, seed=options.seed,
                             verbose=options.verbose, lr=lr, ema_decay=ema_decay,
                             keep_best=keep_best)
    sim = simulate_int8(source.model)
    say(f"simulating the int8 model: {len(sim.quantizers)} activation quantizers, calibrated "
        f"on up to {CALIB_IMAGES} training images")
    try:
        sim.calibrate(_calibration_batches(info, task_data, options.seed))
        sim_before = evaluate_task(info, sim.model, task_data)
        say(f"before: float {_fmt(float_before)}, simulated int8 {_fmt(sim_before)} "
            f"({len(sim.quantizers)} activation quantizers)")
        heads = (detector_heads(source.model, replay=sim) if info.task is Task.DETECT
                 else None)
        history = finetune(info, sim.model, task_data, tuning, heads=heads, stream=stream)
        # Ranges as the converter will calibrate them for the weights kept (the training-time
        # ranges are moving averages, and belong to the last epoch).
        sim.calibrate(_calibration_batches(info, task_data, options.seed))
        sim_after = evaluate_task(info, sim.model, task_data)
    finally:
        sim.release()
    return (sim_before, sim_after), history


def _calibration_batches(info, task_data, seed: int, batch: int = 25):
    """Model-ready float batches of up to CALIB_IMAGES training images (like the converter's)."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(info.mean, np.float32)
    std = np.asarray(info.std, np.float32)
    if task_data.task is Task.DETECT:
        images = task_data.detection.train.images
        pick = np.sort(rng.permutation(len(images))[:CALIB_IMAGES])
        for i in range(0, len(pick), batch):
            yield (images[pick[i:i + batch]].astype(np.float32) - mean) / std
        return
    x = task_data.classification.x_train
    pick = np.sort(rng.permutation(len(x))[:CALIB_IMAGES])
    for i in range(0, len(pick), batch):
        yield (x[pick[i:i + batch]].astype(np.float32) - mean) / std


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
