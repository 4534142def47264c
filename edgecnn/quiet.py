"""Silence TensorFlow's chatter, including what its C++ core writes to fd 1 and 2.

The TFLite converter and MLIR passes print through C++ streams straight to the process's file
descriptors, so ``contextlib.redirect_stdout`` cannot catch them. :func:`captured_output`
points descriptors 1 and 2 at a temp file for the duration of the block (Python's own
``sys.stdout``/``sys.stderr`` write to the same descriptors) and keeps the text, so a failure
can quote it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator


@dataclass
class CapturedOutput:
    """Text written during the block (filled when the block exits)."""

    text: str = ""

    def last_error_line(self) -> str:
        """The most telling line of the log: the last one that looks like an error."""
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        for line in reversed(lines):
            low = line.lower()
            if "error" in low and "cuinit" not in low:
                return line[:300]
        return lines[-1][:300] if lines else ""


@contextlib.contextmanager
def captured_output(enabled: bool = True,
                    fds: tuple[int, ...] = (1, 2)) -> Iterator[CapturedOutput]:
    """Capture everything written to stdout/stderr (Python and C++) while the block runs.

    Example:
        with captured_output() as log:
            tflite_bytes = converter.convert()
        # log.text holds the converter's messages
    """
    result = CapturedOutput()
    if not enabled:
        yield result
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is None:  # no console (pythonw, some embedded interpreters)
            continue
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = []
        try:
            for fd in fds:
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # no such descriptor (embedded interpreters): nothing to catch
                    continue
            # Only the descriptors are redirected: swapping sys.stderr too would hand logging
            # handlers created meanwhile a stream that is closed after the block.
            yield result
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is None:
                    continue
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            result.text = sink.read().decode("utf-8", errors="replace")
