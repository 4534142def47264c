"""The pruning report: per-layer rows (sparsity or channels kept), totals, text and JSON forms.

The report is a plain dict (it goes into ``run.json`` as ``extra["pruning"]`` and out of
``edgecnn prune --json``); :func:`format_report` renders it as a table for people.
"""

from __future__ import annotations

from edgecnn.prune.macs import ModelCost


def magnitude_rows(sparsity: dict[str, tuple[int, int]], targets: dict[str, float]) -> list[dict]:
    """Rows for magnitude pruning from ``kernel_sparsity`` and the per-layer targets."""
    rows = []
    for name, (zeros, total) in sparsity.items():
        rows.append({"layer": name, "weights": total, "zeros": zeros,
                     "sparsity": round(zeros / total, 4) if total else 0.0,
                     "target": targets.get(name)})
    return rows


def totals(before: ModelCost, after: ModelCost) -> dict:
    return {"macs_before": before.macs, "macs_after": after.macs,
            "macs_ratio": round(after.macs / before.macs, 4) if before.macs else 1.0,
            "params_before": before.params, "params_after": after.params,
            "params_ratio": round(after.params / before.params, 4) if before.params else 1.0}


def overall_sparsity(rows: list[dict]) -> dict:
    pruned = [r for r in rows if r["target"] is not None]
    zeros = sum(r["zeros"] for r in pruned)
    weights = sum(r["weights"] for r in pruned)
    all_zeros = sum(r["zeros"] for r in rows)
    all_weights = sum(r["weights"] for r in rows)
    return {"pruned_layers": len(pruned), "skipped_layers": len(rows) - len(pruned),
            "sparsity_pruned_layers": round(zeros / weights, 4) if weights else 0.0,
            "sparsity_all_kernels": round(all_zeros / all_weights, 4) if all_weights else 0.0,
            "nonzero_kernel_weights": all_weights - all_zeros}


def format_report(report: dict) -> str:
    """A table of the per-layer rows and the totals, for the terminal."""
    lines = []
    if report["method"] == "magnitude":
        lines.append(f"{'layer':<32} {'weights':>9} {'sparsity':>9} {'target':>7}")
        for r in report["layers"]:
            target = "skip" if r["target"] is None else f"{r['target']:.2f}"
            lines.append(f"{r['layer']:<32} {r['weights']:>9,} {r['sparsity']:>9.3f} "
                         f"{target:>7}")
        o = report["overall"]
        block = report.get("block") or [1, 1]
        blocks = f" in {block[0]}x{block[1]} blocks" if tuple(block) != (1, 1) else ""
        lines.append(f"kernel sparsity {o['sparsity_pruned_layers']:.3f}{blocks} over "
                     f"{o['pruned_layers']} pruned layers, {o['sparsity_all_kernels']:.3f} "
                     f"over all ({o['skipped_layers']} skipped)")
    else:
        lines.append(f"{'layer':<32} {'channels':>13}  note")
        for r in report["layers"]:
            kept = f"{r['channels_after']}/{r['channels_before']}"
            lines.append(f"{r['layer']:<32} {kept:>13}  {r['fixed'] or ''}".rstrip())
    latency = report.get("latency")
    if latency:
        lines.append(f"int8 invoke p50 ({latency['threads']} thread(s)): predicted "
                     f"{latency['predicted_ratio']:.2f}x, measured "
                     f"{latency['measured_ratio']:.2f}x of the dense model ({latency['measured_dense_ms'] * 1000:.1f} -> "
                     f"{latency['measured_pruned_ms'] * 1000:.1f} us, before fine-tuning)")
    t = report["totals"]
    lines.append(f"MACs {t['macs_before']:,} -> {t['macs_after']:,} ({t['macs_ratio']:.3f}x); "
                 f"params {t['params_before']:,} -> {t['params_after']:,} "
                 f"({t['params_ratio']:.3f}x)")
    before, after = report.get("metrics_before") or {}, report.get("metrics_after") or {}
    for key in after:
        if key in before:
            lines.append(f"val {key} {before[key]:.4f} -> {after[key]:.4f}")
    return "\n".join(lines)
