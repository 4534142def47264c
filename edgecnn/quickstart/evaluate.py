"""Step ``evaluate``: accuracy of the Keras model and of both ``.tflite`` files.

The held-out split is first written as idx files (``digits_idx/``) and the ``.tflite`` files are
evaluated on those: the same 179 images as ``--data digits``, but readable by a device install
(``pip install edgecnn``: numpy, no scikit-learn), so the command the report gives works there.
"""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult
from edgecnn.quickstart.train import DATA

HELD_OUT = "digits_idx"


def write_held_out(ctx: QuickstartContext) -> str:
    """The digits' training and held-out splits (the run's seed) as an idx folder."""
    from edgecnn.data import load_classification
    from edgecnn.data.idx import write_idx_folder
    from edgecnn.fsutil import atomic_dir

    data = load_classification(DATA, seed=ctx.options.seed)
    with atomic_dir(ctx.path(HELD_OUT), option="held-out data folder") as tmp:
        write_idx_folder(tmp, {"train": (data.x_train, data.y_train),
                               "test": (data.x_test, data.y_test)}, data.labels)
    return HELD_OUT


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.evaluate import evaluate_model

    threads = ctx.options.threads
    held_out = write_held_out(ctx)
    scores = {"keras float": evaluate_model(ctx.output("train", "run"), DATA,
                                            progress=ctx.say)["accuracy"]}
    for quant in ("float32", "int8"):
        scores[f"tflite {quant}"] = evaluate_model(ctx.output("convert", quant),
                                                   str(ctx.path(held_out)), threads=threads,
                                                   progress=ctx.say)["accuracy"]
    drop = (scores["keras float"] - scores["tflite int8"]) * 100
    name = ctx.shown or str(ctx.folder)
    rows = "\n".join(f"| {model} | {acc:.4f} |" for model, acc in scores.items())
    report = (f"## Accuracy on the held-out split\n\n| model | accuracy |\n|---|---|\n{rows}\n\n"
              f"int8 vs float: {-drop + 0.0:+.2f} points. The `.tflite` files were measured on "
              f"`{held_out}/` (the same held-out digits as idx files, which a device install "
              f"reads without scikit-learn): `edgecnn eval {name}/digits_int8.tflite --data "
              f"{name}/{held_out}`.\n")
    return StepResult(
        summary=f"float {scores['keras float']:.4f}, int8 {scores['tflite int8']:.4f}",
        outputs={"held_out": held_out},
        metrics={"accuracy": scores, "int8_drop_points": round(drop, 3)}, report=report)
