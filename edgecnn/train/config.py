"""Typed training options shared by ``edgecnn train --task classify|detect``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run. ``None`` means "the architecture's / task's default"."""

    task: str                       # "classify" | "detect"
    data: str                       # dataset SPEC (built-in name or path)
    arch: str                       # registry name
    out: str                        # run directory to write (atomically)
    imgsz: int | None = None        # square input size; None: the dataset's / arch's default
    epochs: int = 10
    batch: int = 64
    lr: float | None = None         # peak learning rate; None: task default
    optimizer: str = "adam"
    seed: int = 0
    data_dir: str | None = None     # where to look for built-in datasets
    val_split: float = 0.1          # fraction of train held out when the data has no val split
    width: float = 1.0              # width multiplier for families that take one
    augment: bool = True
    distribute: str | None = None   # None | "mirrored" | "multi-worker"
    patience: int | None = None     # early stopping on the monitored metric
    max_train: int | None = None    # cap on training samples (quick runs, tests)
    verbose: int = 1                # 0 silent, 1 progress lines
    schedule: str = "cosine"        # "cosine" (with warm-up) | "constant"
    label_smoothing: float = 0.0    # classify: cross-entropy label smoothing
    weight_decay: float = 0.0       # decoupled weight decay (optimizer "adamw")
    deterministic: bool = True      # op determinism: a fixed seed gives identical weights
    overwrite: bool = False         # replace same-named entries in a folder edgecnn did not write
