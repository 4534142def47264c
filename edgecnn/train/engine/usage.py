"""How fast a run trains and how much of the machine it uses: samples per second and cores.

Cores used is the process's CPU time (user + system, all threads) divided by wall time, read
from :func:`os.times`: 1.0 means one core busy on average, 2.0 both cores of a 2-core machine.
On a machine shared with other jobs it says what the run got, not what it could use.

Example:
    clock = UsageClock()
    ...train one epoch of 800 samples...
    usage = clock.lap(800)
    usage.samples_per_second, usage.cores
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads, user + system."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class Usage:
    """One measured span: ``seconds`` of wall time, ``cpu_seconds`` of CPU, ``samples`` done."""

    seconds: float
    cpu_seconds: float
    samples: int

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.seconds + other.seconds, self.cpu_seconds + other.cpu_seconds,
                     self.samples + other.samples)

    def summary(self) -> str:
        """``"41.2 samples/s, 1.83 cores"``: what the progress lines print."""
        return f"{self.samples_per_second:.1f} samples/s, {self.cores:.2f} cores"

    def metrics(self) -> dict[str, float]:
        """The run.json entries (``samples_per_second``, ``cpu_cores``)."""
        return {"samples_per_second": round(self.samples_per_second, 2),
                "cpu_cores": round(self.cores, 3)}


class UsageClock:
    """Wall and CPU time since the last :meth:`lap` (or since creation)."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def lap(self, samples: int) -> Usage:
        wall, cpu = time.perf_counter(), cpu_seconds()
        usage = Usage(wall - self._wall, cpu - self._cpu, int(samples))
        self._wall, self._cpu = wall, cpu
        return usage
