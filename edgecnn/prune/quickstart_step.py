"""The quickstart's pruning step: channel-prune the trained model to half its MACs.

It fine-tunes briefly, converts the pruned model to int8 like the dense one, and adds a
before/after row (MACs, parameters, int8 size, int8 accuracy, invoke latency at 2 threads,
measured interleaved in one process) to the quickstart report.
"""

from __future__ import annotations


def prune_step(ctx) -> str:
    """``ctx`` is the quickstart context; reads ``run`` and ``tflite_int8`` from its results."""
    from converters import convert_model
    from edgecnn.bench.latency import BenchOptions, benchmark
    from edgecnn.evaluate import evaluate_model
    from edgecnn.prune.api import prune_model
    from edgecnn.prune.options import PruneOptions

    fast = ctx.options.fast
    data = "digits"
    result = prune_model(ctx.results["run"], ctx.work / "pruned",
                         PruneOptions(method="channel", target_macs=0.5, data=data,
                                      epochs=1 if fast else 5, seed=ctx.options.seed,
                                      verbose=0))
    pruned = convert_model(result.out, ctx.work / "digits_pruned_int8.tflite", quant="int8",
                           held_out=0)
    dense_tfl = ctx.results["tflite_int8"]
    acc = {"dense": ctx.results.get("accuracy", {}).get("tflite int8")}
    if acc["dense"] is None:
        acc["dense"] = evaluate_model(dense_tfl, data, threads=2)["accuracy"]
    acc["pruned"] = evaluate_model(pruned.path, data, threads=2)["accuracy"]
    timing = benchmark([dense_tfl, pruned.path],
                       BenchOptions(threads=(2,), runs=30 if fast else 200, warmup=5, block=10))
    p50 = {"dense": timing[0].p50_ms, "pruned": timing[1].p50_ms}
    size = {"dense": ctx.results.get("size_int8") or dense_tfl.stat().st_size,
            "pruned": pruned.size_bytes}
    t = result.report["totals"]
    ctx.results["prune"] = {"macs": [t["macs_before"], t["macs_after"]],
                            "params": [t["params_before"], t["params_after"]],
                            "int8_accuracy": [acc["dense"], acc["pruned"]],
                            "int8_size": [size["dense"], size["pruned"]],
                            "p50_ms_2t": [p50["dense"], p50["pruned"]]}
    rows = []
    for name, macs, params in (("dense", t["macs_before"], t["params_before"]),
                               ("channel-pruned", t["macs_after"], t["params_after"])):
        key = "dense" if name == "dense" else "pruned"
        rows.append(f"| {name} | {macs:,} | {params:,} | {size[key] / 1024:.1f} KB | "
                    f"{acc[key]:.4f} | {p50[key]:.3f} ms |")
    ctx.report.append(
        "## Pruning\n\n`edgecnn prune --method channel --target-macs 0.5` with "
        f"{1 if fast else 5} fine-tuning epoch(s), int8 both (latency: invoke p50, 2 threads, "
        "interleaved; tiny models are dominated by per-invoke overhead).\n\n"
        "| model | MACs | params | int8 size | int8 accuracy | p50 |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    return (f"MACs {t['macs_ratio']:.2f}x, int8 accuracy {acc['dense']:.4f} -> "
            f"{acc['pruned']:.4f}, p50 {p50['dense']:.3f} -> {p50['pruned']:.3f} ms")
