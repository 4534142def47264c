"""``edgecnn quickstart``: the whole pipeline on data that ships with the install, offline.

A classifier on scikit-learn's digits (train, convert to float32 and int8, evaluate, predict,
channel-prune) and a detector on generated shapes (train, convert, mAP, a picture), run through
the real-time camera loop on a generated video and timed with ``bench``. Each step is a module
of this package with ``run(ctx) -> StepResult`` (:mod:`edgecnn.quickstart.core`); the order is
:data:`edgecnn.quickstart.steps.STEPS`; :func:`run_quickstart` runs them, keeps finished steps
when interrupted and resumes after them.

This is the top layer: it may import every other part of edgecnn.

Example:
    from edgecnn.quickstart import run_quickstart
    result = run_quickstart("quickstart-run", fast=True)
    result.result("detect").metrics["int8_map50"]
"""

from __future__ import annotations

from edgecnn.quickstart.core import (
           QuickstartContext,
           QuickstartOptions,
           Step,
           StepResult,
)
from edgecnn.quickstart.runner import QuickstartResult, run_quickstart

__all__ = ["QuickstartContext", "QuickstartOptions", "QuickstartResult", "Step", "StepResult",
           "run_quickstart"]
