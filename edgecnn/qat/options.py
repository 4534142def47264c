"""Typed options of ``edgecnn qat``, validated on creation (and against the model's task once
the run is opened: the weight average and the best-epoch choice are the detector loop's)."""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task

DEFAULT_EMA = 0.999
# detect: 2e-3 beat 5e-4 (int8 mAP@0.5 0.903 after 24 epochs vs 0.897 after 12; BENCHMARKS)
DEFAULT_LR = {Task.DETECT: 2e-3, Task.CLASSIFY: 1e-4}


@dataclass(frozen=True)
class QatOptions:
    """How to fine-tune through the int8 simulation.

    Attributes:
        data, data_dir: dataset SPEC (default: the one in ``run.json``).
        epochs: fine-tuning epochs (a few: the weights are already good).
        lr: peak learning rate of the cosine schedule (None: 2e-3 detect, 1e-4 classify).
        ema_decay: detect: the weights kept are an average over steps (0: the last ones;
            None: 0.999).
        keep_best: detect: keep the epoch with the best simulated-int8 val mAP@0.5 (as
            ``edgecnn train`` keeps its best checkpoint), not the last (None: True).
    """

    data: str | None = None
    data_dir: str | None = None
    epochs: int = 8
    batch: int = 16
    lr: float | None = None
    ema_decay: float | None = None
    keep_best: bool | None = None
    max_train: int | None = None
    seed: int = 0
    verbose: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {self.epochs}", "use e.g. --epochs 8")
        if self.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {self.batch}", "use e.g. --batch 16")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"--lr must be > 0, got {self.lr}", "use e.g. --lr 0.0005")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"--ema must be in [0, 1), got {self.ema_decay}",
                             "use e.g. --ema 0.999")
        if self.max_train is not None and self.max_train < 2:
            raise UsageError(f"--max-train must be >= 2, got {self.max_train}")

    def for_task(self, task: Task) -> "QatOptions":
        """These options with the task's defaults filled in.

        Raises:
            UsageError: ``ema_decay`` or ``keep_best`` set for a classifier (its fine-tuning
                keeps the last weights).
        """
        from dataclasses import replace

        if task is Task.DETECT:
            return replace(self, lr=self.lr if self.lr is not None else DEFAULT_LR[task],
                           ema_decay=DEFAULT_EMA if self.ema_decay is None else self.ema_decay,
                           keep_best=True if self.keep_best is None else self.keep_best)
        for flag, value in (("--ema", self.ema_decay), ("--keep-last", self.keep_best)):
            if value is not None:
                raise UsageError(f"{flag} applies to detectors only",
                                 f"drop {flag}: a classifier keeps its last epoch's weights")
        return replace(self, lr=self.lr if self.lr is not None else DEFAULT_LR[task],
                       ema_decay=0.0, keep_best=False)
