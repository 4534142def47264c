"""What a quickstart leaves besides the steps' own files: ``quickstart.json`` and ``report.md``.

``quickstart.json`` is the state ``--resume`` reads (the mode, each finished step's result)
and the machine-readable summary; ``report.md`` is the same for a person, with the steps'
markdown sections and the commands to try next on these outputs. Both are rewritten after every
step, so an interrupted run still describes what it finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.quickstart.core import SMOKE_NOTE, QuickstartContext, Step

STATE, REPORT = "quickstart.json", "report.md"
SCHEMA = "edgecnn.quickstart/1"


def read_state(folder: Path) -> dict | None:
    """The state of the quickstart in ``folder``; None when it holds none."""
    path = Path(folder) / STATE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} is not readable: {err}",
                         "start over with --overwrite") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise UsageError(f"{path} was written by another edgecnn version",
                         "start over with --overwrite")
    return doc


def write_state(ctx: QuickstartContext, steps: Sequence[Step], foreign: Sequence[str], *,
                stopped_in: str | None = None, interrupted: bool = False) -> None:
    """Rewrite ``quickstart.json``, ``report.md`` and the folder's output manifest.

    ``foreign`` are the entries that were in the folder before and are not edgecnn's; every
    other entry is listed as edgecnn's. ``interrupted``: written even after Ctrl-C / SIGTERM.
    """
    from edgecnn import __version__
    from edgecnn.fsutil import write_atomic, write_manifest

    complete = len(ctx.done) == len(steps) and stopped_in is None
    doc = {"schema": SCHEMA, "edgecnn_version": __version__, "mode": ctx.options.mode,
           "smoke_test": ctx.options.fast, "complete": complete, "stopped_in": stopped_in,
           "seed": ctx.options.seed, "threads": ctx.options.threads,
           "steps": [{"name": name, **result.to_dict()} for name, result in ctx.done.items()]}
    write_atomic(ctx.path(STATE), json.dumps(doc, indent=2, default=str) + "\n",
                 even_if_interrupted=interrupted)
    write_atomic(ctx.path(REPORT), _markdown(ctx, steps, complete),
                 even_if_interrupted=interrupted)
    ours = {p.name for p in ctx.folder.iterdir() if not p.name.startswith(".")}
    ours -= set(foreign) - {Path(p).parts[0] for r in ctx.done.values()
                            for p in r.outputs.values()}
    write_manifest(ctx.folder, ours, even_if_interrupted=interrupted)


def _markdown(ctx: QuickstartContext, steps: Sequence[Step], complete: bool) -> str:
    mode = "--fast: smoke test" if ctx.options.fast else "full run"
    lines = [f"# edgecnn quickstart ({mode})", ""]
    if ctx.options.fast:
        lines += [(f"> **Smoke-test numbers** ({SMOKE_NOTE}); run `edgecnn quickstart` "
                   "without `--fast` for real ones."), ""]
    if not complete:
        lines += [(f"> **Unfinished:** {len(ctx.done)} of {len(steps)} steps. "
                   f"`edgecnn quickstart --out {ctx.shown or ctx.folder}"
                   f"{' --fast' if ctx.options.fast else ''} --resume` continues."), ""]
    lines += ["| step | time | result |", "|---|---|---|"]
    lines += [f"| {name} | {r.seconds:.1f} s | {r.summary} |" for name, r in ctx.done.items()]
    lines += [""] + [r.report for r in ctx.done.values() if r.report]
    if complete:
        lines += [_next_steps(ctx.shown or str(ctx.folder))]
    return "\n".join(lines) + "\n"


def _next_steps(name: str) -> str:
    return f"""## Next steps

Every command below works on what this quickstart wrote (run them from the folder the
quickstart ran in):

```bash
edgecnn eval {name}/digits_int8.tflite --data digits     # accuracy of the int8 file
edgecnn eval {name}/digits_int8.tflite --data {name}/digits_idx   # the same, without scikit-learn
edgecnn eval {name}/det_run                               # mAP of the detector (Keras)
edgecnn eval {name}/det_int8.tflite --data {name}/shapes/data.yaml
edgecnn qat {name}/det_run --epochs 4 --out runs/det_qat  # a better int8 detector
edgecnn predict {name}/det_int8.tflite {name}/shapes/images/val --save drawn/
edgecnn camera {name}/det_int8.tflite --source 0 --display   # a webcam, live
edgecnn inspect {name}/det_int8.tflite
```
"""
