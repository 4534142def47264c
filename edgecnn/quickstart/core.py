"""The quickstart's typed pieces: options, the step record, its result and the shared context.

A step is a name and a function ``run(ctx) -> StepResult``. It writes its files straight into
the quickstart folder (each file or run directory atomically), so every path it records is
final: nothing has to be rewritten when the quickstart ends, and a finished step survives an
interrupted run. Later steps find earlier outputs through :meth:`QuickstartContext.output`,
which works the same for a step finished in this run and one kept from an interrupted run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from edgecnn.errors import UsageError

SMOKE_NOTE = "tiny models and few epochs: the numbers say nothing about accuracy"


@dataclass(frozen=True)
class QuickstartOptions:
    """Sizes of a run. ``fast`` is the smoke test (tiny models, seconds per step).

    Each step picks its own recipe from these (see the ``*_recipe`` functions of the step
    modules), so a new step does not grow this record.
    """

    fast: bool = False
    seed: int = 0
    threads: int = 2        # interpreter threads of the device-side steps

    @property
    def mode(self) -> str:
        return "fast" if self.fast else "full"


@dataclass(frozen=True)
class StepResult:
    """What a finished step leaves for the user and for later steps.

    Attributes:
        summary: the one line printed after the step's name and time.
        outputs: role -> path relative to the quickstart folder (``{"int8":
            "digits_int8.tflite"}``); later steps read them through ``ctx.output``.
        metrics: JSON-able figures (accuracy, mAP, FPS, ...), kept in ``quickstart.json``.
        report: the step's markdown section of ``report.md``.
        seconds: wall time of the step (set by the runner).
    """

    summary: str
    outputs: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    report: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "seconds": round(self.seconds, 2),
                "outputs": dict(self.outputs), "metrics": dict(self.metrics),
                "report": self.report}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> StepResult:
        return cls(summary=str(doc["summary"]), outputs=dict(doc.get("outputs") or {}),
                   metrics=dict(doc.get("metrics") or {}), report=str(doc.get("report", "")),
                   seconds=float(doc.get("seconds", 0.0)))


@dataclass
class QuickstartContext:
    """Shared state of one run: where to write, the options, the finished steps' results.

    Attributes:
        folder: the quickstart folder (absolute); steps write their outputs here.
        options: sizes of the run.
        done: results of the steps finished so far, in order (resumed ones included).
        stream: where progress lines go (indented under the step by the runner).
        shown: the folder as the user named it (``quickstart-run``), for commands in messages.
    """

    folder: Path
    options: QuickstartOptions
    done: dict[str, StepResult] = field(default_factory=dict)
    stream: TextIO = sys.stdout
    shown: str = ""

    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)

    def say(self, line: str) -> None:
        """One progress line under the running step."""
        print(line, file=self.stream, flush=True)

    def output(self, step: str, role: str) -> Path:
        """The absolute path of output ``role`` of the finished step ``step``."""
        try:
            return self.folder / self.done[step].outputs[role]
        except KeyError:
            raise UsageError(f"quickstart step {step!r} has no output {role!r}",
                             "run the quickstart's steps in order") from None

    def metric(self, step: str, key: str) -> Any:
        return self.done[step].metrics[key]


@dataclass(frozen=True)
class Step:
    """One quickstart step: ``run(ctx)`` does the work and returns its :class:`StepResult`.

    Attributes:
        name: short name shown in the progress lines and used as the key in quickstart.json.
        run: the work; writes into ``ctx.folder`` and reads earlier outputs via ``ctx``.
        needs: steps whose outputs it reads (they run first; a resumed run keeps them).
    """

    name: str
    run: Callable[[QuickstartContext], StepResult]
    needs: tuple[str, ...] = ()
