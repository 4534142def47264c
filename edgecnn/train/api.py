"""``train``: one entry point for ``edgecnn train``, whatever the task."""

from __future__ import annotations

from pathlib import Path

from edgecnn.runtime.task import Task
from edgecnn.train.config import TrainConfig


def train(config: TrainConfig, stream=None) -> Path:
    """Train the model ``config`` describes and return its run directory.

    Example:
        run = train(TrainConfig(task="classify", data="digits", arch="dsnet_test",
                                out="runs/digits", epochs=3))
    """
    if config.task is Task.DETECT:
        from edgecnn.train.detect import train_detector

        return train_detector(config, stream)
    from edgecnn.train.classify import train_classifier

    return train_classifier(config, stream)
