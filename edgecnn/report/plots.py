"""Training-curve plots, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
import os

from edgecnn.fsutil import write_atomic
from edgecnn.lazy import require


def plot_curves(history: dict[str, list[float]], path: str | os.PathLike,
                title: str = "training") -> None:
    """Loss and accuracy (or any metric pairs) per epoch, train vs validation, as a PNG."""
    matplotlib = require("matplotlib", extra="train", purpose="plots")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    metrics = [k for k in history if not k.startswith("val_") and k not in ("lr", "learning_rate")]
    metrics = metrics or [k[4:] for k in history if k.startswith("val_")]
    fig = Figure(figsize=(4.5 * max(1, len(metrics)), 3.4), dpi=100)
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(1, max(1, len(metrics)), i + 1)
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3,
                        label="val" if key.startswith("val_") else "train")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
