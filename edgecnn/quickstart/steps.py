"""The quickstart's steps, in order. A new step is one module with ``run(ctx)`` and a line here.
"""

from __future__ import annotations

from edgecnn.quickstart import (
    bench,
    camera,
    convert,
    detect,
    evaluate,
    predict,
    prune,
    train,
)
from edgecnn.quickstart.core import Step

STEPS: list[Step] = [
    Step("train", train.run),
    Step("convert", convert.run, needs=("train",)),
    Step("evaluate", evaluate.run, needs=("train", "convert")),
    Step("predict", predict.run, needs=("convert",)),
    Step("prune", prune.run, needs=("train", "convert", "evaluate")),
    Step("detect", detect.run),
    Step("camera", camera.run, needs=("detect",)),
    Step("bench", bench.run, needs=("convert", "prune", "detect")),
]


def register_step(step: Step, after: str | None = None) -> None:
    """Add ``step`` at the end, or right after the step called ``after``."""
    names = [s.name for s in STEPS]
    if step.name in names:
        raise ValueError(f"a quickstart step named {step.name!r} exists")
    STEPS.insert(names.index(after) + 1 if after in names else len(STEPS), step)
