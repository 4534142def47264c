"""``qat_finetune``: a trained run directory in, an int8-robust run directory out.

Quantization-aware fine-tuning: the model is trained for a few epochs *through* its simulated
int8 twin (:mod:`edgecnn.qat.sim`), so the weights settle where int8 rounding hurts least. The
output is a normal float run directory; ``edgecnn convert --quant int8`` then calibrates and
quantizes it as usual (nothing QAT-specific reaches the ``.tflite``, so every LiteRT runtime
runs it). The report holds the task metric of the float model and of the simulation, before
and after: the simulation predicts the int8 ``.tflite`` within a few tenths of a point.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError

CALIB_IMAGES = 200


@dataclass(frozen=True)
class QatResult:
    out: Path
    report: dict


def check_options(epochs: int, batch: int, lr: float | None, ema_decay: float = 0.0) -> None:
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}", "use e.g. --epochs 8")
    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}", "use e.g. --batch 16")
    if lr is not None and lr <= 0:
        raise UsageError(f"--lr must be > 0, got {lr}", "use e.g. --lr 0.0005")
    if not 0.0 <= ema_decay < 1.0:
        raise UsageError(f"--ema must be in [0, 1), got {ema_decay}", "use e.g. --ema 0.999")


def qat_finetune(model_path, data: str | None, epochs: int, out, *, batch: int = 16,
                 lr: float | None = None, ema_decay: float = 0.999, keep_best: bool = True,
                 data_dir: str | None = None,
                 max_train: int | None = None, seed: int = 0, verbose: int = 1,
                 overwrite: bool = False,
                 stream=None) -> QatResult:
    """Fine-tune ``model_path`` through its int8 simulation and write a run directory.

    Args:
        model_path: run directory (or ``.keras`` with ``run.json`` beside it).
        data: dataset SPEC (default: the one in ``run.json``).
        epochs: fine-tuning epochs (a few: the weights are already good).
        lr: peak learning rate of the cosine schedule (default 2e-3 detect, 1e-4 classify).
        ema_decay: detection: the weights kept are an average over steps (0: the last ones).
        keep_best: detection: keep the epoch with the best simulated-int8 val mAP@0.5 (as
            ``edgecnn train`` keeps its best checkpoint), not the last.

    Example:
        result = qat_finetune("runs/det", None, 8, "runs/det_qat")
        result.report["sim_after"]["map50"]   # predicted int8 mAP@0.5
    """
    check_options(epochs, batch, lr, ema_decay)
    stream = stream or sys.stdout
    from edgecnn.prune import finetune as ft
    from edgecnn.qat.sim import simulate_int8
    from edgecnn.rundir import MODEL_FILE, RunInfo

    source = ft.open_source_run(model_path, out, data, data_dir, overwrite)
    model, info, spec, data_dir, out = (source.model, source.info, source.spec,
                                        source.data_dir, source.out)
    say = (lambda line: print(line, file=stream, flush=True)) if verbose else (lambda line: None)
    task_data = ft.load_task_data(info, model, spec, data_dir, max_train, batch)
    # detect: 2e-3 beat 5e-4 (int8 mAP@0.5 0.903 after 24 epochs vs 0.897 after 12; BENCHMARKS)
    default_lr = 2e-3 if info.task == "detect" else 1e-4
    options = ft.FinetuneOptions(epochs=epochs, batch=batch, seed=seed, verbose=verbose,
                                 lr=lr if lr is not None else default_lr,
                                 ema_decay=ema_decay if info.task == "detect" else 0.0,
                                 keep_best=keep_best and info.task == "detect")
    start = time.perf_counter()
    float_before = ft.evaluate(info, model, task_data)
    sim = simulate_int8(model)
    try:
        sim.calibrate(_calibration_batches(info, task_data, seed))
        sim_before = ft.evaluate(info, sim.model, task_data)
        say(f"before: float {_fmt(float_before)}, simulated int8 {_fmt(sim_before)} "
            f"({len(sim.quantizers)} activation quantizers)")
        heads = None
        if info.task == "detect":
            from edgecnn.lazy import keras
            from edgecnn.train.detect import _logits_layer

            heads = keras().Model(sim.model.inputs, [sim.tensor("boxes"),
                                                     sim.tensor(_logits_layer(model))])
        history = ft.finetune(info, sim.model, task_data, options, heads=heads, stream=stream)
        # Ranges as the converter will calibrate them for the weights kept (the training-time
        # ranges are moving averages, and belong to the last epoch).
        sim.calibrate(_calibration_batches(info, task_data, seed))
        sim_after = ft.evaluate(info, sim.model, task_data)
    finally:
        sim.release()
    float_after = ft.evaluate(info, model, task_data)
    say(f"after:  float {_fmt(float_after)}, simulated int8 {_fmt(sim_after)}")
    kept = history.get("kept", [])
    report = {"epochs": epochs, "lr": options.lr, "batch": batch, "ema_decay": options.ema_decay,
              "kept_epoch": (kept.index(1.0) + 1) if 1.0 in kept else epochs,
              "float_before": float_before, "sim_before": sim_before,
              "float_after": float_after, "sim_after": sim_after,
              "seconds": round(time.perf_counter() - start, 2), "source": str(model_path),
              "data": spec}

    from edgecnn.fsutil import atomic_dir
    from edgecnn.prune.api import _plain_copy
    from edgecnn.train.common import write_history_csv

    from edgecnn.rundir import Provenance, dataset_reference

    metrics = {**info.metrics, **{f"val_{k}": v for k, v in (float_after or {}).items()}}
    new_info = info.derive(metrics=metrics, reports={**info.reports, "qat": report},
                           data=dataset_reference(spec), data_dir=dataset_reference(data_dir),
                           provenance=Provenance.now("qat", parent=str(model_path)))
    with atomic_dir(out, overwrite) as tmp:
        _plain_copy(model).save(tmp / MODEL_FILE)
        new_info.save(tmp)
        write_history_csv(tmp / "history.csv", history)
    RunInfo.load(out)
    return QatResult(out, report)


def _calibration_batches(info, task_data, seed: int, batch: int = 25):
    """Model-ready float batches of up to CALIB_IMAGES training images (like the converter's)."""
    rng = np.random.default_rng(seed)
    if task_data.task == "detect":
        images = task_data.detect["train"].images
        pick = np.sort(rng.permutation(len(images))[:CALIB_IMAGES])
        for i in range(0, len(pick), batch):
            yield images[pick[i:i + batch]].astype(np.float32) / 255.0
        return
    x = task_data.classify.x_train
    mean = np.asarray(info.mean, np.float32)
    std = np.asarray(info.std, np.float32)
    pick = np.sort(rng.permutation(len(x))[:CALIB_IMAGES])
    for i in range(0, len(pick), batch):
        yield (x[pick[i:i + batch]].astype(np.float32) - mean) / std


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
