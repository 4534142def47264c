"""Typed training options of ``edgecnn train --task classify|detect``, validated on creation.

A library caller gets the same errors as the CLI: a bad number, an unknown choice, or an option
that does not apply to the task (``--distribute`` or ``--label-smoothing`` with ``detect``)
raises :class:`edgecnn.errors.UsageError` before any data is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
KEEP = ("best", "last")

# Options only one task uses: name -> (task, the value that means "not set", CLI flag).
TASK_ONLY: dict[str, tuple[Task, object, str]] = {
    "distribute": (Task.CLASSIFY, None, "--distribute"),
    "label_smoothing": (Task.CLASSIFY, 0.0, "--label-smoothing"),
    "data_dir": (Task.CLASSIFY, None, "--data-dir"),     # where built-in datasets live
    "distill_temperature": (Task.CLASSIFY, None, "--distill-temperature"),
    "mosaic": (Task.DETECT, 0.0, "--mosaic"),
    "mixup": (Task.DETECT, 0.0, "--mixup"),
    "integral_boxes": (Task.DETECT, None, "--integral-boxes/--dense-boxes"),
}
# Distillation defaults per task: the soft term's weight (classify: its share of the loss).
DISTILL_WEIGHT = {Task.CLASSIFY: 0.5, Task.DETECT: 1.0}
DISTILL_TEMPERATURE = 4.0


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run. ``None`` means "the architecture's / task's default"."""

    task: Task                      # Task.CLASSIFY | Task.DETECT (the strings work too)
    data: str                       # dataset SPEC (built-in name or path)
    arch: str                       # registry name
    out: str                        # run directory to write (atomically)
    imgsz: int | None = None        # square input size; None: the dataset's / arch's default
    epochs: int = 10
    batch: int = 64
    lr: float | None = None         # peak learning rate; None: task default
    optimizer: str = "adam"
    seed: int = 0
    data_dir: str | None = None     # classify: where to look for built-in datasets
    val_split: float = 0.1          # fraction of train held out when the data has no val split
    width: float = 1.0              # width multiplier for families that take one
    augment: bool = True
    distribute: str | None = None   # classify: None | "mirrored" | "multi-worker"
    patience: int | None = None     # early stopping on the monitored metric
    max_train: int | None = None    # cap on training samples (quick runs, tests)
    verbose: int = 1                # 0 silent, 1 progress lines
    schedule: str = "cosine"        # "cosine" (with warm-up) | "constant"
    label_smoothing: float = 0.0    # classify: cross-entropy label smoothing
    weight_decay: float = 0.0       # decoupled weight decay (optimizer "adamw")
    deterministic: bool = False     # op determinism: identical weights from a fixed seed, slower
    threads: int | None = None      # CPU cores to train on (None: all this process may use)
    keep: str = "best"              # weights saved: "best" val epoch, or the "last" epoch's
    teacher: str | None = None      # run dir or .keras whose predictions are soft targets
    distill_weight: float | None = None       # None: 0.5 classify (share), 1.0 detect
    distill_temperature: float | None = None  # classify: softmax temperature (None: 4)
    overwrite: bool = False         # replace same-named entries in a folder edgecnn did not write
    weights: str | None = None      # initial weights: "imagenet", a run dir or a weights file
    freeze_epochs: int | None = None  # --weights: epochs with the backbone frozen (None: auto)
    mosaic: float = 0.0             # detect: probability that a training image is a 2x2 mosaic
    mixup: float = 0.0              # detect: probability that a training image is blended
    integral_boxes: bool | None = None  # detect: box sides as distributions (DFL) instead of
    #                                 values; None: the architecture's (or --weights run's) head

    def __post_init__(self) -> None:
        from edgecnn.train.distribute import strategy_name

        object.__setattr__(self, "task", Task.parse(self.task))
        object.__setattr__(self, "distribute", strategy_name(self.distribute))
        self._check_numbers()
        self._check_choices()
        self._check_task_options()
        self._check_distillation()
        self._check_weights()

    def _check_numbers(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be >= 1, got {self.epochs}", "use --epochs 1 or more")
        if self.batch < 1:
            raise UsageError(f"batch must be >= 1, got {self.batch}", "use --batch 1 or more")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"learning rate must be > 0, got {self.lr}", "use e.g. --lr 0.001")
        if self.max_train is not None and self.max_train < 2:
            raise UsageError(f"max-train must be >= 2, got {self.max_train}")
        if self.imgsz is not None and self.imgsz < 0:
            raise UsageError(f"--imgsz must be > 0, got {self.imgsz}", "use e.g. --imgsz 64")
        if self.width <= 0:
            raise UsageError(f"--width must be > 0, got {self.width}", "use e.g. --width 1.0")
        if self.patience is not None and self.patience < 0:
            raise UsageError(f"--patience must be >= 1, got {self.patience}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}",
                             "use e.g. --label-smoothing 0.1")
        if self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        for flag, value in (("--mosaic", self.mosaic), ("--mixup", self.mixup)):
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{flag} is a probability in [0, 1], got {value}",
                                 f"use e.g. {flag} 0.5")
            if value and not self.augment:
                raise UsageError(f"{flag} is an augmentation, and augmentation is off",
                                 f"drop --no-augment or drop {flag}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}",
                             "leave it out to use every core")

    def _check_choices(self) -> None:
        for name, value, choices in (("optimizer", self.optimizer.lower(), OPTIMIZERS),
                                     ("learning-rate schedule", self.schedule, SCHEDULES),
                                     ("--keep choice", self.keep, KEEP)):
            if value not in choices:
                raise UsageError(f"unknown {name} {value!r}",
                                 f"choose one of: {', '.join(choices)}")
        if self.weight_decay and self.optimizer.lower() != "adamw":
            raise UsageError(f"--weight-decay applies to --optimizer adamw only (got "
                             f"{self.optimizer})", "add --optimizer adamw, or drop "
                             "--weight-decay")

    def _check_distillation(self) -> None:
        if self.teacher is None:
            for flag, value in (("--distill-weight", self.distill_weight),
                                ("--distill-temperature", self.distill_temperature)):
                if value is not None:
                    raise UsageError(f"{flag} needs --teacher", f"add --teacher RUN or drop {flag}")
            return
        options = self.distill_options()
        if self.task is Task.CLASSIFY and options.weight > 1.0:
            raise UsageError(f"--distill-weight is the soft targets' share of the loss for "
                             f"classifiers: in [0, 1], got {options.weight}",
                             "use e.g. --distill-weight 0.5")

    def distill_options(self):
        """The :class:`edgecnn.train.distill.DistillOptions` of this run (None: no teacher)."""
        from edgecnn.train.distill import DistillOptions

        if self.teacher is None:
            return None
        weight = (self.distill_weight if self.distill_weight is not None
                  else DISTILL_WEIGHT[self.task])
        temperature = (self.distill_temperature if self.distill_temperature is not None
                       else DISTILL_TEMPERATURE)
        return DistillOptions(weight=weight, temperature=temperature)

    def _check_weights(self) -> None:
        from edgecnn.train.initial_weights import parse_weights

        parse_weights(self.weights)     # a bad value fails here, before anything loads
        if self.freeze_epochs is not None:
            if self.weights is None:
                raise UsageError("--freeze-epochs applies to fine-tuning only",
                                 "add --weights imagenet (or a run), or drop --freeze-epochs")
            if not 0 <= self.freeze_epochs < self.epochs:
                raise UsageError(f"--freeze-epochs must be in [0, epochs), got "
                                 f"{self.freeze_epochs} for {self.epochs} epochs",
                                 f"use e.g. --freeze-epochs {max(0, self.epochs // 10)}")

    def _check_task_options(self) -> None:
        for f in fields(self):
            task, unset, flag = TASK_ONLY.get(f.name, (self.task, None, ""))
            if task is not self.task and getattr(self, f.name) != unset:
                raise UsageError(f"{flag} applies to --task {task.value} only",
                                 f"drop {flag} for --task {self.task.value}")
