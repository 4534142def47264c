"""Step ``bench``: ``edgecnn bench`` on the quickstart's models, interleaved in one process.

The detector with ``--e2e`` (its real preprocessing and postprocessing timed too, on
camera-like 640x480 frames) and the three classifiers invoke-only, at 1 and 2 threads; the
table goes into the report, the rows into ``bench.json`` and a chart into ``bench.png``.
"""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult

TABLE, ROWS, PLOT = "bench.md", "bench.json", "bench.png"


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.bench import table
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.bench.machine import machine_info
    from edgecnn.fsutil import write_atomic

    models = [ctx.output("detect", "int8"), ctx.output("convert", "int8"),
              ctx.output("prune", "int8"), ctx.output("convert", "float32")]
    threads = tuple(sorted({1, ctx.options.threads}))
    runs = 30 if ctx.options.fast else 100
    ctx.say(f"timing {len(models)} models at {', '.join(map(str, threads))} thread(s), "
            f"{runs} runs each, interleaved")
    results = benchmark([str(m) for m in models],
                        BenchOptions(threads=threads, runs=runs, warmup=10))
    machine = machine_info()
    markdown = table.format_table(results)
    write_atomic(ctx.path(TABLE), markdown + "\n")
    write_atomic(ctx.path(ROWS), table.to_json(results, machine) + "\n")
    outputs = {"table": TABLE, "rows": ROWS}
    try:
        table.plot(results, ctx.path(PLOT), title="edgecnn bench: the quickstart's models")
        outputs["plot"] = PLOT
    except ImportError:   # matplotlib is in [train]; the table is the result
        pass
    det = next(r for r in results if r.threads == threads[-1])
    report = (f"## Latency (`edgecnn bench`)\n\nInvoke time of each model on this machine "
              f"({table.format_machine(machine)}), {runs} runs per row after 10 warm-up runs, "
              f"all rows interleaved in one process.\n\n{markdown}\n\n"
              + (f"![bench]({PLOT})\n" if "plot" in outputs else ""))
    return StepResult(
        summary=(f"{models[0].name} p50 {det.p50_ms:.3f} ms at {det.threads} threads "
                 f"({det.fps:.0f} inferences/s); {len(results)} rows in {TABLE}"),
        outputs=outputs,
        metrics={"rows": [{"model": r.model, "threads": r.threads, "p50_ms": r.p50_ms,
                           "fps": r.fps} for r in results]},
        report=report)
