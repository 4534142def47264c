"""Timing statistics in fixed memory, for camera runs of any length.

Keeping every frame's timings costs ~270 bytes a frame: 0.7 GB a day at 30 FPS. A
:class:`Histogram` keeps counts in geometric bins instead (2% wide, 1 us to 1,000 s in
milliseconds: 1,047 bins, 8 KB), so a percentile is known to within 1% of its value whatever
the run length, and count, mean, min and max are exact.

Example:
    h = Histogram()
    for ms in (1.2, 1.3, 9.0):
        h.add(ms)
    h.summary()   # {"p50": 1.3, "p90": 9.0, "mean": 3.833}
"""

from __future__ import annotations

import math

import numpy as np


class Histogram:
    """Counts of non-negative values in geometric bins ``[low * r**i, low * r**(i+1))``.

    Values below ``low`` count in the first bin, values above ``high`` in the last. Values
    are buffered and binned 512 at a time with numpy (a Python-level bin update per value
    costs more than the list append it replaces); the buffer is the only thing that grows,
    and it is bounded.
    """

    __slots__ = ("_binned", "_log_low", "_log_ratio", "_pending", "counts", "low", "max", "min",
                 "ratio", "total")
    FLUSH = 512

    def __init__(self, low: float = 1e-3, high: float = 1e6, ratio: float = 1.02):
        self.low, self.ratio = low, ratio
        self._log_low, self._log_ratio = math.log(low), math.log(ratio)
        self.counts = np.zeros(math.ceil(math.log(high / low) / self._log_ratio) + 1, np.int64)
        self._binned = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._pending: list[float] = []

    def add(self, value: float) -> None:
        """Count one value."""
        self._pending.append(value)
        if len(self._pending) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        values = np.asarray(self._pending, np.float64)
        self._pending.clear()
        values = values[~np.isnan(values)]
        if not values.size:
            return
        with np.errstate(divide="ignore"):
            index = (np.log(np.maximum(values, self.low)) - self._log_low) / self._log_ratio
        index = np.clip(index.astype(np.int64), 0, len(self.counts) - 1)
        self.counts += np.bincount(index, minlength=len(self.counts))
        self._binned += int(values.size)
        self.total += float(values.sum())
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def _value_at(self, rank: int, cumulative: np.ndarray) -> float:
        """The value of the ``rank``-th smallest (0-based), exact at both ends."""
        if rank <= 0:
            return self.min
        if rank >= self.count - 1:
            return self.max
        index = int(np.searchsorted(cumulative, rank + 1))
        return min(self.max, max(self.min, self.low * self.ratio ** (index + 0.5)))

    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0..1), interpolated between ranks like ``np.percentile``; each
        rank's value is known to within half a bin (1%). 0.0 when empty."""
        self._flush()
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        cumulative = np.cumsum(self.counts)
        lo = self._value_at(math.floor(rank), cumulative)
        hi = self._value_at(math.ceil(rank), cumulative)
        return float(lo + (rank - math.floor(rank)) * (hi - lo))

    @property
    def count(self) -> int:
        """Values added so far (NaN excluded once binned)."""
        return self._binned + len(self._pending)

    @property
    def mean(self) -> float:
        self._flush()
        return self.total / self.count if self.count else 0.0

    def summary(self, qs=(50, 90)) -> dict[str, float]:
        """``{"p50": .., "p90": .., "mean": ..}`` in the summary's form."""
        out = {f"p{q}": round(self.quantile(q / 100.0), 3) for q in qs}
        out["mean"] = round(self.mean, 3)
        return out
