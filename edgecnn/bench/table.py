"""Comparison tables of benchmark results: markdown or plain text, CSV, JSON, a PNG plot.

Ratios compare each row's p50 with the first model's p50 *at the same thread count* (speed-up
> 1 means faster than the first model), so "int8 vs float" reads straight off the table.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Sequence

from edgecnn.bench.latency import BenchResult
from edgecnn.errors import MissingDependencyError, UsageError

CSV_FIELDS = ("model", "device", "threads", "runs", "mean_ms", "std_ms", "p50_ms", "p90_ms",
              "p99_ms", "min_ms", "max_ms", "fps", "init_ms", "first_ms", "size_bytes",
              "peak_rss_mb", "rss_load_mb", "quantization", "xnnpack", "pre_p50_ms",
              "post_p50_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_fps", "speedup_vs_first",
              "size_ratio_vs_first")


def with_ratios(results: Sequence[BenchResult]) -> list[dict]:
    """Rows as dicts with ``speedup_vs_first`` and ``size_ratio_vs_first`` added."""
    if not results:
        return []
    first_model = results[0].model
    base = {r.threads: r for r in results if r.model == first_model}
    rows = []
    for r in results:
        row = r.to_dict()
        ref = base.get(r.threads)
        row["speedup_vs_first"] = (round(ref.p50_ms / r.p50_ms, 3)
                                   if ref is not None and r.p50_ms > 0 else None)
        row["size_ratio_vs_first"] = round(r.size_bytes / results[0].size_bytes, 3) \
            if results[0].size_bytes else None
        rows.append(row)
    return rows


def _fmt(v, digits=2) -> str:
    """``digits`` decimals, or three significant ones for small values (a 12 us invoke must
    not print as 0.01 ms)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0.0 and abs(v) < 10 ** (1 - digits):
            return f"{v:.3g}"
        return f"{v:.{digits}f}"
    return str(v)


def format_table(results: Sequence[BenchResult], style: str = "markdown") -> str:
    """The comparison table; ``style`` is ``markdown`` or ``plain``."""
    rows = with_ratios(results)
    e2e = any(r["e2e_p50_ms"] is not None for r in rows)
    header = ["model", "threads", "p50 ms", "p90 ms", "p99 ms", "mean ± std ms", "min ms", "FPS",
              "init ms", "size KB", "speed-up"]
    if e2e:
        header[8:8] = ["pre ms", "post ms", "e2e p50 ms", "e2e FPS"]
    if any(r["device"] != "local" for r in rows):
        header.insert(1, "device")
    body = []
    for r in rows:
        cells = [r["model"], str(r["threads"]), _fmt(r["p50_ms"]), _fmt(r["p90_ms"]),
                 _fmt(r["p99_ms"]), f"{_fmt(r['mean_ms'])} ± {_fmt(r['std_ms'])}",
                 _fmt(r["min_ms"]), _fmt(r["fps"], 1), _fmt(r["init_ms"], 1),
                 _fmt(r["size_bytes"] / 1024, 1),
                 "-" if r["speedup_vs_first"] is None else f"{r['speedup_vs_first']:.2f}x"]
        if e2e:
            cells[8:8] = [_fmt(r["pre_p50_ms"]), _fmt(r["post_p50_ms"]), _fmt(r["e2e_p50_ms"]),
                          _fmt(r["e2e_fps"], 1)]
        if "device" in header:
            cells.insert(1, r["device"])
        body.append(cells)
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in body]
        return "\n".join(lines)
    if style != "plain":
        raise UsageError(f"unknown table style {style!r}", "use markdown or plain")
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header)] + [fmt.format(*c) for c in body])


def format_machine(machine: dict) -> str:
    rt = f"{machine.get('runtime', '?')} {machine.get('runtime_version', '')}".strip()
    return (f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores, "
            f"{machine.get('arch', '?')}), {machine.get('os', '?')}, Python "
            f"{machine.get('python', '?')}, {rt}")


def to_json(results: Sequence[BenchResult], machine: dict) -> str:
    return json.dumps({"results": with_ratios(results), "machine": machine}, indent=2)


def to_csv(results: Sequence[BenchResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in with_ratios(results):
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


def plot(results: Sequence[BenchResult], path: str | os.PathLike, title: str = "") -> None:
    """Horizontal bars of invoke p50 (whisker to p90), one row per model, a bar per thread
    count, as a PNG that stays readable for any number of models.

    The figure grows with the rows; the time axis is logarithmic when the plotted range
    (p50 to p90 whiskers) spans more than 20x (a 5 ms detector next to a 20 us classifier), and
    every bar is labelled with its p50.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", purpose="--plot") from None
    from edgecnn.fsutil import atomic_output

    models = list(dict.fromkeys(r.model for r in results))
    threads = sorted({r.threads for r in results})
    height = 0.8 / max(1, len(threads))
    fig = Figure(figsize=(8.0, 1.2 + 0.32 * len(models) * max(2, len(threads))), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    lows = [r.p50_ms for r in results if r.p50_ms > 0]
    highs = [max(r.p50_ms, r.p90_ms or 0.0) for r in results]
    log = bool(lows) and max(highs) / min(lows) > 20
    for j, t in enumerate(threads):
        ys, p50, err = [], [], []
        for i, m in enumerate(models):
            r = next((r for r in results if r.model == m and r.threads == t), None)
            if r is not None:
                ys.append(i + (j - (len(threads) - 1) / 2) * height)
                p50.append(r.p50_ms)
                err.append(0.0 if r.p90_ms is None else max(0.0, r.p90_ms - r.p50_ms))
        bars = ax.barh(ys, p50, height * 0.9, xerr=[[0] * len(err), err], capsize=2,
                       label=f"{t} thread{'s' if t > 1 else ''}")
        ax.bar_label(bars, labels=[_fmt(v, 2) for v in p50], padding=3, fontsize=7)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models, fontsize=8)
    ax.invert_yaxis()   # the first model (the reference of the speed-up column) on top
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("invoke p50 ms (whisker: p90)" + (", log scale" if log else ""))
    ax.set_title(title or "edgecnn bench", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    if len(threads) > 1:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
