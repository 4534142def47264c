"""SIGTERM handled like SIGINT, and no output committed after either.

Python turns SIGINT into ``KeyboardInterrupt`` but leaves SIGTERM (what ``kill``, systemd and
container runtimes send) at its default: the process dies on the spot, ``finally`` blocks never
run, and temp folders (``.run.XXXX.tmp/`` beside ``--out``, ``edgecnn-export-*`` in the temp
dir) stay behind. :func:`handling_signals` makes both raise ``KeyboardInterrupt`` in the main
thread, so every ``finally``/``with`` cleans up.

A ``KeyboardInterrupt`` raised while Python runs a ``__del__`` method or a weakref callback
is printed and dropped ("Exception ignored in ..."); TensorFlow runs many of those, which is how
``convert`` could finish after a Ctrl-C. The handler therefore also records the signal, and
:func:`check` (called by :mod:`edgecnn.fsutil` before it renames a finished output into place)
raises again, so an interrupted command never commits its result.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[str] = []


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived since :func:`handling_signals` began."""
    if _received:
        raise KeyboardInterrupt(f"signal {_received[0]}")


def _on_signal(signum, _frame) -> None:
    name = signal.Signals(signum).name
    _received.append(name)
    if len(_received) == 1:  # later signals would interrupt the cleanup the first one started
        raise KeyboardInterrupt(f"signal {name}")


@contextlib.contextmanager
def handling_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt (main thread only).

    Example:
        with handling_signals():
            cli.main(args)          # a SIGTERM now runs every finally block on its way out
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        _received.clear()
