"""Training curves (``curves.png`` of a run directory), drawn with matplotlib's Agg backend.

One panel for the losses (the total and, for detectors, its parts), one per metric logged for
both training and validation (accuracy), and one for metrics only validation has (a
detector's mAP, evaluated on some epochs only: the points are the evaluated epochs).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from edgecnn.fsutil import write_atomic
from edgecnn.lazy import require

SKIP = ("lr", "learning_rate", "seconds", "kept")
LABELS = {"val_map50": "mAP@0.5", "val_map": "mAP@0.5:0.95", "val_accuracy": "val",
          "accuracy": "train", "loss": "loss", "val_loss": "val loss"}


def dataset_label(spec: str | os.PathLike | None) -> str:
    """A short name for a dataset SPEC in titles: ``shapes`` for ``/long/path/shapes/data.yaml``,
    the name itself for a built-in dataset."""
    if not spec:
        return "?"
    path = Path(str(spec))
    if path.suffix in (".yaml", ".yml", ".json") or path.name in ("data.yaml",):
        return path.parent.name or path.stem
    return path.name or str(spec)


def panels(history: dict[str, list[float]]) -> list[tuple[str, list[tuple[str, str, list]]]]:
    """``[(title, [(label, key, values)])]``: which series go into which panel."""
    keys = [k for k in history if k not in SKIP and history[k]]
    train = [k for k in keys if not k.startswith("val_")]
    losses = [k for k in train if k.endswith("loss")]
    out = []
    if losses:
        series = []
        for k in losses:
            series.append((LABELS.get(k, k.replace("_loss", "")), k, history[k]))
            if f"val_{k}" in history:
                series.append((LABELS.get(f"val_{k}", f"val {k}"), f"val_{k}",
                               history[f"val_{k}"]))
        out.append(("loss", series))
    for k in train:
        if k not in losses:
            series = [(LABELS.get(k, "train"), k, history[k])]
            if f"val_{k}" in history:
                series.append((LABELS.get(f"val_{k}", "val"), f"val_{k}", history[f"val_{k}"]))
            out.append((k, series))
    only_val = [k for k in keys if k.startswith("val_") and k[4:] not in history]
    if only_val:
        title = "val mAP" if all("map" in k for k in only_val) else "validation"
        out.append((title, [(LABELS.get(k, k), k, history[k]) for k in only_val]))
    return out


def plot_curves(history: dict[str, list[float]], path: str | os.PathLike,
                title: str = "training") -> None:
    """Write the curves of ``history`` (metric -> one value per epoch) as a PNG."""
    matplotlib = require("matplotlib", extra="train", purpose="plots")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    layout = panels(history)
    fig = Figure(figsize=(4.5 * max(1, len(layout)), 3.4), dpi=100)
    for i, (name, series) in enumerate(layout):
        ax = fig.add_subplot(1, max(1, len(layout)), i + 1)
        for label, key, values in series:
            points = [(e, v) for e, v in enumerate(values, 1)
                      if v is not None and math.isfinite(v)]
            if not points:
                continue
            xs, ys = zip(*points)
            dashed = key.startswith("val_") and name != "val mAP"
            ax.plot(xs, ys, "--" if dashed else "-", marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if len(series) > 1 or name == "val mAP":
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
