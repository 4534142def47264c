"""The tasks edgecnn models do, as one type instead of strings compared everywhere."""

from __future__ import annotations

from enum import Enum

from edgecnn.errors import UsageError


class Task(str, Enum):
    """What a model does. A ``str`` subclass, so JSON and old code that compares strings work.

    Example:
        >>> Task.parse("detect") is Task.DETECT
        True
    """

    CLASSIFY = "classify"
    DETECT = "detect"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | Task") -> "Task":
        """``value`` as a Task; a UsageError naming the choices for anything else."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(t.value for t in cls)
            raise UsageError(f"unknown task {value!r}", f"use one of: {choices}") from None
