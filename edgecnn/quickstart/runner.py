"""Running the quickstart: the folder, the steps in order, interruptions and ``--resume``.

Steps write straight into the quickstart folder, so every path they record (the dataset in
``det_run/run.json``, the files in ``quickstart.json``) is where the file stays. After each
step ``quickstart.json`` (the state), ``report.md`` and the folder's output manifest are
rewritten; an interrupted run (Ctrl-C, SIGTERM, an error) keeps every finished step, and
``--resume`` continues after the last one. A step interrupted half-way leaves nothing
half-written: its files and run directories are each written atomically.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from edgecnn.errors import UsageError
from edgecnn.quickstart.core import (
    SMOKE_NOTE,
    QuickstartContext,
    QuickstartOptions,
    Step,
    StepResult,
)
from edgecnn.quickstart.report import REPORT, read_state, write_state

PREFIX = "      "   # progress lines sit under the step lines' "[1/8] " column


@dataclass(frozen=True)
class QuickstartResult:
    """What a run left: the folder, its report and each step's result (kept ones included)."""

    out: Path
    report: Path
    steps: tuple[tuple[str, StepResult], ...]
    kept: tuple[str, ...] = ()          # steps finished by an earlier, interrupted run

    @property
    def seconds(self) -> float:
        return sum(r.seconds for name, r in self.steps if name not in self.kept)

    def result(self, name: str) -> StepResult:
        return dict(self.steps)[name]


class _Indented:
    """A text stream that indents every line written to it (library progress under a step)."""

    def __init__(self, stream: TextIO, prefix: str = PREFIX):
        self.stream, self.prefix, self.fresh = stream, prefix, True

    def write(self, text: str) -> int:
        pieces = []
        for piece in text.splitlines(keepends=True):
            if self.fresh and piece.strip():
                pieces.append(self.prefix)
            pieces.append(piece)
            self.fresh = piece.endswith("\n")
        self.stream.write("".join(pieces))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def run_quickstart(out: str | Path, fast: bool = False, *, resume: bool = False,
                   overwrite: bool = False, stream: TextIO | None = None,
                   steps: Sequence[Step] | None = None) -> QuickstartResult:
    """Run the steps into ``out``, one line per step with its time; write ``report.md``.

    Args:
        out: the quickstart folder.
        fast: the smoke test (tiny models, few epochs): seconds per step, meaningless numbers.
        resume: keep the steps an interrupted run into ``out`` finished, run the rest.
        overwrite: write into a folder holding files edgecnn did not write (they stay), or
            start an unfinished quickstart over.
        stream: where the step and progress lines go (default stdout).
        steps: the steps to run (default :data:`edgecnn.quickstart.steps.STEPS`).

    Example:
        result = run_quickstart("quickstart-run", fast=True)
        print(result.report.read_text())
    """
    from edgecnn.quickstart.steps import STEPS

    out = Path(out)
    stream = stream or sys.stdout
    steps = list(STEPS if steps is None else steps)
    options = QuickstartOptions(fast=fast)
    kept, foreign = _prepare(out, options, steps, resume, overwrite, stream)
    ctx = QuickstartContext(folder=out.resolve(), options=options, shown=str(out),
                            stream=_Indented(stream))  # type: ignore[arg-type]
    _say(stream, f"edgecnn quickstart{' --fast' if fast else ''}: {len(steps)} steps into "
                 f"{out}/" + (f" (a smoke test: {SMOKE_NOTE})" if fast else ""))
    total, current = len(steps), ""
    try:
        for i, step in enumerate(steps, 1):
            current = step.name
            if step.name in kept:
                ctx.done[step.name] = kept[step.name]
                _say(stream, _line(i, total, step.name, "(kept)", kept[step.name].summary, fast))
                continue
            start = time.perf_counter()
            result = replace(step.run(ctx), seconds=time.perf_counter() - start)
            ctx.done[step.name] = result
            write_state(ctx, steps, foreign)
            _say(stream, _line(i, total, step.name, f"{result.seconds:6.1f}s", result.summary,
                               fast))
    except BaseException as err:
        write_state(ctx, steps, foreign, stopped_in=current, interrupted=True)
        why = "interrupted" if isinstance(err, KeyboardInterrupt) else "stopped by an error"
        print(f"{why} in step {current}: {len(ctx.done)} finished step(s) kept in {out}/; "
              f"'edgecnn quickstart --out {out}{' --fast' if fast else ''} --resume' "
              "continues", file=sys.stderr, flush=True)
        raise
    summary = QuickstartResult(out, out / REPORT, tuple(ctx.done.items()), tuple(kept))
    _say(stream, f"done in {summary.seconds:.1f}s: report {out / REPORT}"
                 + (" (smoke-test numbers; run without --fast for real ones)" if fast else ""))
    _say(stream, f"next: edgecnn eval {out}/det_run, edgecnn camera {out}/det_int8.tflite "
                 "--source 0 --display, and more in the report")
    return summary


def _line(i: int, total: int, name: str, took: str, summary: str, fast: bool) -> str:
    return f"[{i}/{total}] {name:<9} {took:>7}  {summary}" + ("  [smoke test]" if fast else "")


def _say(stream: TextIO, line: str) -> None:
    print(line, file=stream, flush=True)


def _prepare(out: Path, options: QuickstartOptions, steps: Sequence[Step], resume: bool,
             overwrite: bool, stream: TextIO) -> tuple[dict[str, StepResult], list[str]]:
    """Check the folder; returns the steps to keep (``--resume``) and the entries in it that
    are the user's (left alone). A fresh run removes what an earlier quickstart wrote there."""
    from edgecnn.fsutil import check_output_dir, foreign_entries

    state = read_state(out)
    if resume and state is not None:
        if state["mode"] != options.mode:
            flag = "add --fast" if state["mode"] == "fast" else "drop --fast"
            raise UsageError(f"{out} holds a {state['mode']} quickstart",
                             f"{flag} to resume it, or drop --resume to start over")
        return _finished_prefix(out, state, steps), list(state.get("foreign", []))
    if resume:
        _say(stream, f"nothing to resume in {out}: starting from the first step")
    elif state is not None and not state["complete"] and not overwrite:
        done = len(state["steps"])
        raise UsageError(f"{out} holds an unfinished quickstart ({done} of {len(steps)} "
                         "steps done)", "pass --resume to continue it, or --overwrite to "
                         "start over")
    check_output_dir(out, overwrite)
    foreign = foreign_entries(out) if out.is_dir() else []
    if out.is_dir():
        for entry in out.iterdir():
            if entry.name not in foreign:   # an earlier run's output: ours to replace
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return {}, foreign


def _finished_prefix(out: Path, state: dict, steps: Sequence[Step]) -> dict[str, StepResult]:
    """The steps of ``state`` to keep: finished, in the current order, outputs still there."""
    done = {s["name"]: StepResult.from_dict(s) for s in state["steps"]}
    kept: dict[str, StepResult] = {}
    for step in steps:
        result = done.get(step.name)
        if result is None or not all((out / p).exists() for p in result.outputs.values()):
            break
        kept[step.name] = result
    return kept

