"""Keras callbacks for readable progress output (one line per epoch) and timing."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from edgecnn.lazy import keras
from edgecnn.progress import epochs_eta
from edgecnn.train.common import current_lr


def progress_callback(epochs: int, monitor: str = "val_accuracy", stream=None):
    """One line per epoch: loss, accuracy, validation metrics, learning rate, seconds.

    A ``*`` marks an epoch that improved ``monitor`` (the one the best checkpoint keeps).
    """
    k: Any = keras()  # Any: the base class below comes from a module imported at run time

    class Progress(k.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = -math.inf
            self.seconds: list[float] = []
            self._start = 0.0
            self.out = stream or sys.stdout

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            took = time.perf_counter() - self._start
            self.seconds.append(took)
            value = logs.get(monitor)
            improved = value is not None and value > self.best
            if improved:
                self.best = value
            parts = [f"epoch {epoch + 1:>3}/{epochs}"]
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                if key in logs:
                    parts.append(f"{key} {logs[key]:.4f}")
            parts.append(f"lr {current_lr(self.model.optimizer):.2e}")
            parts.append(f"{took:.1f}s{' *' if improved else ''}")
            eta = epochs_eta(self.seconds, epochs)
            if eta:
                parts.append(eta)
            print("  ".join(parts), file=self.out, flush=True)

    return Progress()
