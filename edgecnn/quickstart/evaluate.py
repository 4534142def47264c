"""Step ``evaluate``: accuracy of the Keras model and of both ``.tflite`` files."""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult
from edgecnn.quickstart.train import DATA


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.evaluate import evaluate_model

    threads = ctx.options.threads
    scores = {"keras float": evaluate_model(ctx.output("train", "run"), DATA,
                                            progress=ctx.say)["accuracy"]}
    for quant in ("float32", "int8"):
        scores[f"tflite {quant}"] = evaluate_model(ctx.output("convert", quant), DATA,
                                                   threads=threads,
                                                   progress=ctx.say)["accuracy"]
    drop = (scores["keras float"] - scores["tflite int8"]) * 100
    rows = "\n".join(f"| {name} | {acc:.4f} |" for name, acc in scores.items())
    report = (f"## Accuracy on the held-out split\n\n| model | accuracy |\n|---|---|\n{rows}\n\n"
              f"int8 vs float: {-drop:+.2f} points.\n")
    return StepResult(
        summary=f"float {scores['keras float']:.4f}, int8 {scores['tflite int8']:.4f}",
        metrics={"accuracy": scores, "int8_drop_points": round(drop, 3)}, report=report)
