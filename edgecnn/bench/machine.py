"""Where a benchmark ran: CPU, cores, OS, Python, interpreter package and XNNPACK."""

from __future__ import annotations

import os
import platform
import resource
import sys
from functools import lru_cache


def cpu_model() -> str:
    """The CPU's marketing name (x86 ``model name``; on a Pi, the board ``Model`` line)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info = fh.read()
    except OSError:
        info = ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        found = fields.get(key)
        if found and not found.isdigit():
            return found
    return platform.processor() or platform.machine() or "unknown"


def xnnpack_active(model_bytes: bytes, threads: int | None = None) -> bool | None:
    """Whether the interpreter hands any of this model's ops to the XNNPACK delegate.

    A delegated subgraph shows up as a ``DELEGATE`` node in the interpreter's op list. (The
    runtime's "Created ... XNNPACK delegate" stderr line is logged once per process, so it
    cannot tell about the second model.) Returns None when the runtime cannot list its ops.
    """
    from edgecnn.quiet import captured_output
    from edgecnn.runtime.interpreter import make_interpreter

    try:
        with captured_output(fds=(2,)):
            interp = make_interpreter(model_bytes, threads)
            interp.allocate_tensors()
            ops = interp._get_ops_details()  # noqa: SLF001 - the only view of delegation
    except Exception:  # noqa: BLE001 - informational
        return None
    return any(op.get("op_name") == "DELEGATE" for op in ops)


def current_rss_mb() -> float | None:
    """Resident memory of this process now, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage``; KB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@lru_cache(maxsize=1)
def machine_info() -> dict:
    """A JSON-ready description of this machine and runtime, for benchmark records."""
    from edgecnn import __version__
    from edgecnn.runtime.interpreter import runtime_info

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "edgecnn": __version__,
    }
    try:
        info.update(runtime_info())
    except Exception as err:  # noqa: BLE001 - report, do not fail the benchmark
        info["runtime"] = f"unavailable: {err}"
    try:
        import numpy as np

        info["numpy"] = np.__version__
    except ImportError:
        pass
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:
        pass
    return info
