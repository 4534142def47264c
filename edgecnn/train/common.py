"""What classify and detect training share: seeding, schedules, optimizers, run-dir files."""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.fsutil import write_atomic
from edgecnn.lazy import keras, tensorflow


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and TensorFlow; with ``deterministic`` also force deterministic ops.

    A fixed seed alone gives the same data order, augmentation and initial weights; op
    determinism makes the weights reproduce bit for bit, at a price: 3-epoch detector runs took
    47.5 / 46.3 s with it against 35.4 / 29.0 s without (issue 16, ABAB on one machine). It can
    only be switched on for the rest of the process.
    """
    tf = tensorflow()
    keras().utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> tuple[int, int]:
    """Size TensorFlow's thread pools for training on ``threads`` cores (None: all available).

    Intra-op threads = the cores (a convolution splits over all of them); inter-op threads =
    2 at most, so two independent ops of the step (a layer's input and weight gradients) run
    side by side without oversubscribing a small machine. The pools can only be sized before
    TensorFlow runs its first op; later calls leave them as they are.

    Returns:
        ``(intra, inter)`` in effect.
    """
    tf = tensorflow()
    cores = int(threads) if threads else available_cores()
    intra, inter = cores, min(2, cores)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:    # the runtime is already initialized (a library caller, a test)
        pass
    return (tf.config.threading.get_intra_op_parallelism_threads() or cores,
            tf.config.threading.get_inter_op_parallelism_threads() or cores)


def learning_rate(schedule: str, peak: float, total_steps: int, warmup_steps: int = 0,
                  floor: float = 0.01):
    """A Keras learning-rate schedule: ``constant`` or ``cosine`` (linear warm-up, then cosine
    down to ``floor`` times the peak)."""
    k = keras()
    if schedule == "constant":
        return float(peak)
    if schedule != "cosine":
        raise UsageError(f"unknown learning-rate schedule {schedule!r}", "use cosine or constant")
    warmup = max(0, min(int(warmup_steps), total_steps - 1))
    return k.optimizers.schedules.CosineDecay(
        initial_learning_rate=float(peak) if warmup == 0 else float(peak) * 0.01,
        decay_steps=max(1, total_steps - warmup), alpha=float(floor),
        warmup_target=float(peak) if warmup else None, warmup_steps=warmup)


def warmup_steps(warmup_epochs: int, steps_per_epoch: int, epochs: int) -> int:
    """Warm-up steps of a run: ``warmup_epochs``, at most a tenth of the run, none for runs of
    two epochs or less (their few steps are better spent at the peak)."""
    if epochs <= 2:
        return 0
    return min(int(warmup_epochs) * steps_per_epoch, steps_per_epoch * epochs // 10)


def make_optimizer(name: str, lr, weight_decay: float = 0.0):
    k = keras()
    key = name.lower()
    if key == "adam":
        return k.optimizers.Adam(learning_rate=lr)
    if key == "adamw":
        return k.optimizers.AdamW(learning_rate=lr, weight_decay=weight_decay or 1e-4)
    if key == "sgd":
        return k.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)
    raise UsageError(f"unknown optimizer {name!r}", "choose adam, adamw or sgd")


def current_lr(optimizer) -> float:
    lr = optimizer.learning_rate
    try:
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)
    except Exception:  # noqa: BLE001 - display only
        return math.nan


def write_history_csv(path: str | os.PathLike, history: dict[str, list[float]]) -> None:
    """One row per epoch: ``epoch`` then every metric Keras logged, in a stable order."""
    keys = sorted(history, key=lambda k: (k.startswith("val_"), k))
    rows = len(next(iter(history.values()), []))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for i in range(rows):
        writer.writerow([i + 1, *(f"{float(history[k][i]):.6g}" for k in keys)])
    write_atomic(path, buf.getvalue())


def read_history_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in (rows[0].keys() if rows else [])}


def check_out_dir(out: str | os.PathLike, overwrite: bool = False) -> Path:
    from edgecnn.fsutil import check_output_dir

    return check_output_dir(out, overwrite)


def arch_kwargs(builder, config) -> dict:
    """Builder options the run sets (``width``, ``integral_boxes``), passed only when set so
    architectures without them still work; one that does not take a set option is an error."""
    params = inspect.signature(builder).parameters
    wanted = {}
    if config.width != 1.0:
        wanted["width"] = (config.width, "drop --width or choose an architecture that takes one")
    # False is passed too where the builder takes it: its own default may be the integral head
    if config.integral_boxes or (config.integral_boxes is False and "integral_boxes" in params):
        wanted["integral_boxes"] = (config.integral_boxes, "drop --integral-boxes or choose "
                                                           "a detector")
    for name, (_, fix) in wanted.items():
        if name not in params:
            flag = "width multiplier" if name == "width" else "integral box head"
            raise UsageError(f"architecture {config.arch} has no {flag}", fix)
    return {name: value for name, (value, _) in wanted.items()}


def say(config, stream, line: str) -> None:
    """One progress line, unless the run is silent."""
    if config.verbose:
        print(line, file=stream, flush=True)


def teacher_for(config, labels, input_shape, anchors: int | None = None):
    """The run's distillation teacher, loaded and checked (None without ``--teacher``)."""
    if config.teacher is None:
        return None
    from edgecnn.train.distill import check_teacher, load_teacher

    teacher = load_teacher(config.teacher)
    check_teacher(teacher, config.task, list(labels), input_shape, anchors)
    return teacher
