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
raises again, so an interrupted command never commits its result. A swallowed interrupt is
also delivered again (through ``sys.unraisablehook``) instead of being printed as a traceback:
JAX's garbage-collector callback is one such place, and a SIGTERM that landed in it left
"Exception ignored ... Traceback" on stderr while training went on to the next check.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[str] = []
_swallowed = False
_in_hook = False


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived since :func:`handling_signals` began."""
    if _received:
        raise KeyboardInterrupt(f"signal {_received[0]}")


def _on_signal(signum, _frame) -> None:
    global _swallowed
    if _swallowed:  # our own re-delivery of an interrupt Python dropped
        if _in_hook:
            _redeliver_later()
            return
        _swallowed = False
        raise KeyboardInterrupt(f"signal {_received[0]}")
    name = signal.Signals(signum).name
    _received.append(name)
    if len(_received) == 1:  # later signals would interrupt the cleanup the first one started
        raise KeyboardInterrupt(f"signal {name}")


def _redeliver_later() -> None:
    # from another thread, a moment later: interrupt_main called in the hook would run the
    # handler inside the hook, where the exception would be dropped again
    def deliver() -> None:
        time.sleep(0.005)
        if _swallowed:   # the block may have ended meanwhile: then nothing is left to stop
            _thread.interrupt_main()
    _thread.start_new_thread(deliver, ())


def _unraisable_hook(previous):
    def hook(unraisable) -> None:
        global _swallowed, _in_hook
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _received:
            # raised inside a __del__/GC callback, where Python can only drop it: raise it again
            # in the main thread once this hook has returned
            _in_hook = True
            try:
                _swallowed = True
                _redeliver_later()
            finally:
                _in_hook = False
            return
        previous(unraisable)
    return hook


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
    global _swallowed
    previous = {sig: signal.signal(sig, _on_signal) for sig in _SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable_hook(previous_hook)
    _received.clear()
    _swallowed = False
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        sys.unraisablehook = previous_hook
        _received.clear()
        _swallowed = False
