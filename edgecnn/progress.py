"""Progress lines with an ETA for loops that take more than a few seconds.

Training prints a line per epoch; loops over images or frames print a line every few seconds
through :class:`Progress`. Both say how long is left, estimated from the pace so far, so a user
knows a quiet terminal is working and when it will be done.

Example:
    progress = Progress(len(images), "evaluate", say=print, unit="images")
    for i, image in enumerate(images, 1):
        run(image)
        progress.update(i)
    progress.finish()
"""

from __future__ import annotations

import time
from collections.abc import Callable


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for the end of a progress line."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def eta_text(done: int, total: int, elapsed: float) -> str:
    """``ETA 12s`` from the mean pace of the ``done`` units so far ('' when nothing is left)."""
    if done <= 0 or total <= done:
        return ""
    return f"ETA {format_seconds(elapsed / done * (total - done))}"


def epochs_eta(seconds: list[float], total: int) -> str:
    """``ETA 1m20s`` after ``len(seconds)`` of ``total`` epochs ('' after the last one).

    The first epoch pays for tracing and compiling the graph, so once a later epoch is done the
    estimate leaves it out.
    """
    done = len(seconds)
    if done == 0 or done >= total:
        return ""
    pace = seconds[1:] if done > 1 else seconds
    return f"ETA {format_seconds(sum(pace) / len(pace) * (total - done))}"


class Progress:
    """``label  i/total unit  elapsed, ETA`` lines, at most one per ``interval`` seconds.

    Nothing is printed for a loop that ends within ``quiet_for`` seconds, so short loops stay
    silent; a loop that printed anything also prints its last line from :meth:`finish`.

    Args:
        total: units the loop will do.
        label: what is being done (``evaluate int8``).
        say: where a line goes (``print``, or a command's progress printer).
        unit: what is counted (``images``, ``frames``).
        interval: seconds between two lines.
        quiet_for: seconds before the first line.
        clock: time source (tests pass a fake one).
    """

    def __init__(self, total: int, label: str, say: Callable[[str], None] | None,
                 unit: str = "images", interval: float = 5.0, quiet_for: float = 3.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.total = int(total)
        self.label = label
        self.say = say
        self.unit = unit
        self.interval = float(interval)
        self.quiet_for = float(quiet_for)
        self.clock = clock
        self.start = clock()
        self.last_line: float | None = None
        self.done = 0

    def update(self, done: int) -> None:
        """Record that ``done`` units are finished; prints when a line is due."""
        self.done = int(done)
        if self.say is None:
            return
        now = self.clock()
        due = (now - self.start >= self.quiet_for if self.last_line is None
               else now - self.last_line >= self.interval)
        if due and self.done < self.total:
            self._line(now)

    def finish(self) -> None:
        """Print the final count if the loop printed before (a loud loop ends visibly)."""
        if self.say is not None and self.last_line is not None:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        if self.say is None:
            return
        self.last_line = now
        elapsed = now - self.start
        eta = eta_text(self.done, self.total, elapsed)
        self.say(f"{self.label}  {self.done}/{self.total} {self.unit}  "
                 f"{format_seconds(elapsed)}" + (f", {eta}" if eta else ""))
