"""Step ``convert``: the trained classifier to float32 and full-int8 ``.tflite``."""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult

RECIPES = ("float32", "int8")


def tflite_name(quant: str) -> str:
    return f"digits_{quant}.tflite"


def run(ctx: QuickstartContext) -> StepResult:
    from converters import convert_model

    rows, parts, metrics = [], [], {}
    for quant in RECIPES:
        ctx.say(f"converting {ctx.output('train', 'run').name} to {quant} .tflite")
        result = convert_model(ctx.output("train", "run"), ctx.path(tflite_name(quant)),
                               quant=quant, held_out=100)
        agree = result.agreement.summary() if result.agreement else "not measured"
        rows.append(f"| `{tflite_name(quant)}` | {quant} | {result.size_bytes / 1024:.1f} KB "
                    f"| {agree} |")
        parts.append(f"{quant} {result.size_bytes / 1024:.1f} KB")
        metrics[f"{quant}_bytes"] = result.size_bytes
    report = ("## Conversion\n\n| file | recipe | size | agreement with Keras |\n"
              "|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return StepResult(summary=", ".join(parts),
                      outputs={quant: tflite_name(quant) for quant in RECIPES},
                      metrics=metrics, report=report)
