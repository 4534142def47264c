"""Step ``prune``: channel-prune the classifier to half its MACs, fine-tune, convert to int8,
and compare it with the dense int8 model (MACs, parameters, size, accuracy, invoke latency at
2 threads measured interleaved in one process)."""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult
from edgecnn.quickstart.train import DATA

RUN, TFLITE = "digits_pruned", "digits_pruned_int8.tflite"


def finetune_epochs(fast: bool) -> int:
    return 1 if fast else 5


def run(ctx: QuickstartContext) -> StepResult:
    from converters import convert_model
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.evaluate import evaluate_model
    from edgecnn.prune.api import prune_model
    from edgecnn.prune.options import PruneOptions

    fast, threads = ctx.options.fast, ctx.options.threads
    epochs = finetune_epochs(fast)
    result = prune_model(ctx.output("train", "run"), ctx.path(RUN),
                         PruneOptions(method="channel", target_macs=0.5, data=DATA,
                                      epochs=epochs, seed=ctx.options.seed),
                         stream=ctx.stream)
    ctx.say(f"converting {RUN} to int8 .tflite")
    pruned = convert_model(result.out, ctx.path(TFLITE), quant="int8", held_out=0)
    dense = ctx.output("convert", "int8")
    acc = {"dense": ctx.metric("evaluate", "accuracy")["tflite int8"],
           "pruned": evaluate_model(pruned.path, DATA, threads=threads)["accuracy"]}
    ctx.say(f"timing both int8 models, {threads} threads, interleaved")
    timing = benchmark([dense, pruned.path],
                       BenchOptions(threads=(threads,), runs=30 if fast else 200, warmup=5,
                                    block=10))
    p50 = {"dense": timing[0].p50_ms, "pruned": timing[1].p50_ms}
    size = {"dense": dense.stat().st_size, "pruned": pruned.size_bytes}
    t = result.report["totals"]
    rows = []
    for name, key, macs, params in (("dense", "dense", t["macs_before"], t["params_before"]),
                                    ("channel-pruned", "pruned", t["macs_after"],
                                     t["params_after"])):
        rows.append(f"| {name} | {macs:,} | {params:,} | {size[key] / 1024:.1f} KB | "
                    f"{acc[key]:.4f} | {p50[key]:.3f} ms |")
    report = ("## Pruning\n\n`edgecnn prune --method channel --target-macs 0.5` with "
              f"{epochs} fine-tuning epoch(s), int8 both (latency: invoke p50, {threads} "
              "threads, interleaved; tiny models are dominated by per-invoke overhead).\n\n"
              "| model | MACs | params | int8 size | int8 accuracy | p50 |\n"
              "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return StepResult(
        summary=(f"MACs {t['macs_ratio']:.2f}x, int8 accuracy {acc['dense']:.4f} -> "
                 f"{acc['pruned']:.4f}, p50 {p50['dense']:.3f} -> {p50['pruned']:.3f} ms"),
        outputs={"run": RUN, "int8": TFLITE},
        metrics={"macs": [t["macs_before"], t["macs_after"]],
                 "params": [t["params_before"], t["params_after"]],
                 "int8_accuracy": [acc["dense"], acc["pruned"]],
                 "int8_size": [size["dense"], size["pruned"]],
                 f"p50_ms_{threads}t": [p50["dense"], p50["pruned"]]},
        report=report)
