"""``edgecnn quickstart``: the whole pipeline on the embedded ``digits`` dataset.

The pipeline is a list of named step functions sharing one :class:`QuickstartContext`; each
step reads what earlier steps left in ``ctx.results`` and returns a one-line summary. Later
features add their own steps by appending ``(name, function)`` pairs to :data:`STEPS` (or
calling :func:`register_step`), without touching the others.

Everything is written into a temporary folder that replaces ``--out`` only when every step
succeeded, so a failed quickstart never leaves a half-written report.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgecnn.fsutil import atomic_dir, write_atomic

DATA = "digits"


@dataclass(frozen=True)
class QuickstartOptions:
    """Sizes of the run: ``fast`` is for tests and smoke checks (seconds, not minutes)."""

    fast: bool = False
    arch: str = "dsnet_s"
    epochs: int = 20
    # digits are 8x8; dsnet_s is built for MNIST-sized 28x28 inputs (its stages halve the
    # side four times), so the quickstart upsamples them like the runtime would a camera frame
    imgsz: int = 28
    seed: int = 0

    @classmethod
    def make(cls, fast: bool) -> "QuickstartOptions":
        return cls(fast=True, arch="dsnet_test", epochs=10, imgsz=16) if fast else cls()


@dataclass
class QuickstartContext:
    """Shared state of one quickstart run. ``work`` is the (temporary) output folder."""

    work: Path
    out: Path
    options: QuickstartOptions
    results: dict = field(default_factory=dict)
    report: list[str] = field(default_factory=list)     # markdown sections, in step order
    stream: object = sys.stdout

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@dataclass(frozen=True)
class StepTiming:
    name: str
    seconds: float
    summary: str


@dataclass(frozen=True)
class QuickstartResult:
    out: Path
    report: Path
    steps: tuple[StepTiming, ...]
    results: dict

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


Step = Callable[[QuickstartContext], str]


def step_train(ctx: QuickstartContext) -> str:
    from edgecnn.train.classify import train_classifier
    from edgecnn.train.config import TrainConfig

    o = ctx.options
    config = TrainConfig(task="classify", data=DATA, arch=o.arch, out=str(ctx.work / "run"),
                         imgsz=o.imgsz, epochs=o.epochs, batch=64, lr=0.02 if o.fast else 0.005,
                         optimizer="adamw", weight_decay=5e-4, label_smoothing=0.1, seed=o.seed,
                         verbose=0)
    run = train_classifier(config)
    from edgecnn.rundir import RunInfo

    metrics = RunInfo.load(run).metrics
    ctx.results["run"] = run
    ctx.results["train"] = metrics
    ctx.report.append(
        f"## Training\n\n`{o.arch}` on `{DATA}` ({o.imgsz}x{o.imgsz} gray), {o.epochs} epochs, "
        f"{metrics['params']:,} parameters: best validation accuracy "
        f"**{metrics['val_accuracy']:.4f}** (epoch {metrics['best_epoch']}), "
        f"{metrics['train_seconds']:.1f} s of training.\n\n![curves](run/curves.png)\n")
    return (f"{o.arch}, {o.epochs} epochs, val accuracy {metrics['val_accuracy']:.4f} "
            f"({metrics['params']:,} params)")


def step_convert(ctx: QuickstartContext) -> str:
    from converters import convert_model

    run = ctx.results["run"]
    rows, lines = [], []
    for quant in ("float32", "int8"):
        result = convert_model(run, ctx.work / f"digits_{quant}.tflite", quant=quant,
                               held_out=100)
        ctx.results[f"tflite_{quant}"] = result.path
        ctx.results[f"size_{quant}"] = result.size_bytes
        agree = result.agreement.summary() if result.agreement else "not measured"
        rows.append(f"| {quant} | {result.size_bytes / 1024:.1f} KB | {agree} |")
        lines.append(f"{quant} {result.size_bytes / 1024:.1f} KB")
    ctx.report.append("## Conversion\n\n| recipe | size | agreement with Keras |\n|---|---|---|\n"
                      + "\n".join(rows) + "\n")
    return ", ".join(lines)


def step_evaluate(ctx: QuickstartContext) -> str:
    from edgecnn.evaluate import evaluate_model

    scores = {"keras float": evaluate_model(ctx.results["run"], DATA)["accuracy"]}
    for quant in ("float32", "int8"):
        scores[f"tflite {quant}"] = evaluate_model(ctx.results[f"tflite_{quant}"], DATA,
                                                   threads=2)["accuracy"]
    ctx.results["accuracy"] = scores
    drop = (scores["keras float"] - scores["tflite int8"]) * 100
    ctx.results["int8_drop_points"] = round(drop, 3)
    rows = "\n".join(f"| {name} | {acc:.4f} |" for name, acc in scores.items())
    ctx.report.append(f"## Accuracy on the held-out split\n\n| model | accuracy |\n|---|---|\n"
                      f"{rows}\n\nint8 vs float: {-drop:+.2f} points.\n")
    return f"float {scores['keras float']:.4f}, int8 {scores['tflite int8']:.4f}"


def step_predict(ctx: QuickstartContext, count: int = 6) -> str:
    """Write a few held-out digits as PNG files and classify them with the int8 model."""
    import cv2

    from edgecnn.data import load_classification
    from edgecnn.runtime.classifier import Classifier, ClassifierOptions

    data = load_classification(DATA, seed=ctx.options.seed)
    folder = ctx.work / "samples"
    folder.mkdir(exist_ok=True)
    clf = Classifier.from_file(ctx.results["tflite_int8"], ClassifierOptions(top_k=3, threads=2))
    rows, right = [], 0
    for i in range(count):
        image = cv2.resize(data.x_test[i], (64, 64), interpolation=cv2.INTER_NEAREST)
        name = f"sample_{i}_true_{data.labels[data.y_test[i]]}.png"
        ok, png = cv2.imencode(".png", image)
        write_atomic(folder / name, png.tobytes())
        top = clf.classify(cv2.imread(str(folder / name)), color="BGR")
        right += int(top[0].index == data.y_test[i])
        guesses = ", ".join(f"{c.label} ({c.score:.2f})" for c in top)
        rows.append(f"| ![](samples/{name}) | {data.labels[data.y_test[i]]} | {guesses} |")
    ctx.results["predictions_correct"] = right
    ctx.report.append("## Predictions of the int8 model\n\n| image | truth | top-3 |\n|---|---|---|\n"
                      + "\n".join(rows) + "\n")
    return f"{right}/{count} sample images right"


def step_prune(ctx: QuickstartContext) -> str:
    from edgecnn.prune.quickstart_step import prune_step

    return prune_step(ctx)


def step_detect(ctx: QuickstartContext) -> str:
    from edgecnn.train.detect_quickstart import detect_step

    return detect_step(ctx)


STEPS: list[tuple[str, Step]] = [
    ("train", step_train),
    ("convert", step_convert),
    ("evaluate", step_evaluate),
    ("predict", step_predict),
    ("prune", step_prune),
    ("detect", step_detect),
]


def register_step(name: str, step: Step, after: str | None = None) -> None:
    """Add a step (at the end, or right after the step called ``after``)."""
    names = [n for n, _ in STEPS]
    STEPS.insert(names.index(after) + 1 if after in names else len(STEPS), (name, step))


def run_quickstart(out: str | Path, fast: bool = False, stream=None,
                   overwrite: bool = False) -> QuickstartResult:
    """Run every step, printing one line per step with its time; write ``report.md``.

    Example:
        result = run_quickstart("quickstart", fast=True)
        print(result.report.read_text())
    """
    out = Path(out)
    stream = stream or sys.stdout
    options = QuickstartOptions.make(fast)
    timings: list[StepTiming] = []
    total = len(STEPS)
    with atomic_dir(out, overwrite) as work:
        ctx = QuickstartContext(work=work, out=out, options=options, stream=stream)
        for i, (name, step) in enumerate(STEPS, 1):
            start = time.perf_counter()
            summary = step(ctx)
            took = time.perf_counter() - start
            timings.append(StepTiming(name, took, summary))
            ctx.say(f"[{i}/{total}] {name:<9} {took:6.1f}s  {summary}")
        _write_report(ctx, timings)
    ctx.say(f"done in {sum(t.seconds for t in timings):.1f}s: report {out / 'report.md'}")
    results = {k: (str(v) if isinstance(v, Path) else v) for k, v in ctx.results.items()}
    for key, value in list(results.items()):
        if isinstance(value, str) and value.startswith(str(ctx.work)):
            results[key] = str(out / Path(value).relative_to(ctx.work))
    return QuickstartResult(out=out, report=out / "report.md", steps=tuple(timings),
                            results=results)


def _write_report(ctx: QuickstartContext, timings: list[StepTiming]) -> None:
    mode = "fast (smoke-test sizes)" if ctx.options.fast else "full"
    steps = "\n".join(f"| {t.name} | {t.seconds:.1f} s | {t.summary} |" for t in timings)
    doc = (f"# edgecnn quickstart ({mode})\n\n| step | time | result |\n|---|---|---|\n{steps}\n\n"
           + "\n".join(ctx.report))
    write_atomic(ctx.work / "report.md", doc)
    plain = {k: (str(v.relative_to(ctx.work)) if isinstance(v, Path) and v.is_relative_to(
        ctx.work) else v) for k, v in ctx.results.items()}
    plain["steps"] = [{"name": t.name, "seconds": round(t.seconds, 2), "summary": t.summary}
                      for t in timings]
    write_atomic(ctx.work / "quickstart.json", json.dumps(plain, indent=2, default=str))
