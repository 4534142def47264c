"""Deliver events (line crossings, zone entries and exits) to commands, webhooks and hooks.

The camera loop must never wait for a slow or broken receiver, so each receiver (a *sink*)
gets its own worker thread and a bounded queue: :meth:`EventDispatcher.submit` only appends
(events beyond the queue are dropped and counted) after a token-bucket rate limit (events
beyond the rate are dropped and counted). A failing, hanging or unreachable receiver is
counted and warned about on stderr (the first few times), never raised.

Sinks:
- ``--on-event CMD``: runs ``CMD`` through the shell with the event's JSON on stdin (its
  stdout goes to stderr, so ``--json -`` stays clean); a non-zero exit is a failure; one that
  runs past the timeout is killed with its whole process group;
- ``--webhook URL``: ``POST`` of the JSON (``Content-Type: application/json``); a status of
  400 or more, a refused connection or a timeout is a failure;
- a Python callable (``--hook module:function``, or ``hooks=`` from Python) called with the
  event dict, e.g. to switch a GPIO pin with gpiozero (README, "Events").
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from edgecnn.errors import UsageError

_WARN_FIRST = 3  # warnings printed per sink; the rest are only counted


@dataclass(frozen=True)
class EventOptions:
    """Where events go and how fast.

    Attributes:
        command: shell command run per event with the event JSON on stdin.
        webhook: ``http(s)://`` URL the event JSON is POSTed to.
        hooks: Python callables called with the event dict.
        rate: events per second each sink accepts on average.
        burst: events a sink accepts at once after a quiet period.
        queue_size: events waiting per sink before new ones are dropped.
        timeout: seconds a command or a request may take.
    """

    command: str | None = None
    webhook: str | None = None
    hooks: tuple[Callable[[dict], object], ...] = ()
    rate: float = 5.0
    burst: int = 10
    queue_size: int = 100
    timeout: float = 5.0

    @property
    def any(self) -> bool:
        return bool(self.command or self.webhook or self.hooks)


def check_webhook(url: str) -> str:
    """The URL if it is an ``http``/``https`` URL with a host; UsageError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--webhook {url!r} is not an http(s) URL",
                         "e.g. --webhook http://192.168.1.10:8000/events")
    return url


def check_command(command: str) -> str:
    """The command if the shell can parse it; UsageError otherwise."""
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise UsageError(f"--on-event command does not parse: {err}",
                         "quote it as one argument, e.g. --on-event 'logger -t edgecnn'"
                         ) from None
    if not words:
        raise UsageError("--on-event command is empty")
    return command


def load_hook(spec: str) -> Callable[[dict], object]:
    """``module:function`` or ``path/to/file.py:function`` -> the callable.

    The module is imported (its code runs): this is for the user's own hook, named on the
    command line, never for files that came with data.
    """
    target, _, name = spec.rpartition(":")
    if not target or not name:
        raise UsageError(f"--hook {spec!r} is not MODULE:FUNCTION",
                         "e.g. --hook myhooks:on_event or --hook ./gpio_hook.py:on_event")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise UsageError(f"--hook file {target} does not exist")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise UsageError(f"--hook {spec!r} cannot be loaded: {target} is not a "
                                 "Python module")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's module: report, do not crash
        raise UsageError(f"--hook {spec!r} cannot be loaded: {type(err).__name__}: {err}"
                         ) from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"--hook {spec!r}: {target} has no function {name!r}")
    return fn


class _Bucket:
    """Token bucket: ``rate`` per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int):
        self.rate = float(rate)
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.t = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class DeliveryTimeout(Exception):
    """A sink took longer than its timeout."""


def _run_command(command: str, payload: bytes, timeout: float) -> None:
    proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE,  # noqa: S602 - user's CLI
                            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else None,
                            start_new_session=True)
    try:
        proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        # The shell's children hold the pipes too: kill the whole group, not just the shell.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise DeliveryTimeout(f"still running after {timeout:g} s, killed") from None
    except BrokenPipeError:
        proc.wait()  # it exited without reading stdin; its status decides
    if proc.returncode != 0:
        raise RuntimeError(f"exit status {proc.returncode}")


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _post(url: str, payload: bytes, timeout: float) -> None:
    request = urllib.request.Request(url, data=payload, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "edgecnn-camera"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(65536)
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"HTTP {err.code}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (socket.timeout, TimeoutError)):
            raise DeliveryTimeout(f"no answer within {timeout:g} s") from None
        raise RuntimeError(f"{err.reason}") from None
    except (socket.timeout, TimeoutError):
        raise DeliveryTimeout(f"no answer within {timeout:g} s") from None


class _Sink:
    """One receiver: a queue, a rate limit, a worker thread and its counters."""

    def __init__(self, name: str, deliver: Callable[[dict], object], options: EventOptions):
        self.name = name
        self.deliver = deliver
        self.bucket = _Bucket(options.rate, options.burst)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, options.queue_size))
        self.counts = {"sent": 0, "failed": 0, "timeouts": 0, "dropped": 0, "rate_limited": 0}
        self.warned = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name=f"edgecnn-events-{name}",
                                       daemon=True)
        self.thread.start()

    def offer(self, event: dict) -> None:
        if not self.bucket.take():
            self._count("rate_limited")
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self._count("dropped")

    def _count(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def _work(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            try:
                self.deliver(event)
                self._count("sent")
            except DeliveryTimeout as err:
                self._count("timeouts")
                self._warn(event, err)
            except Exception as err:  # noqa: BLE001 - a receiver's failure is counted, not fatal
                self._count("failed")
                self._warn(event, err)

    def _warn(self, event: dict, err: BaseException) -> None:
        self.warned += 1
        if self.warned <= _WARN_FIRST:
            more = " (further failures are only counted)" if self.warned == _WARN_FIRST else ""
            print(f"warning: {self.name} failed for a {event.get('type')} event: "
                  f"{str(err) or type(err).__name__}{more}", file=sys.stderr, flush=True)

    def close(self, timeout: float) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            # Pending events are abandoned at the stop; count them as dropped.
            while True:
                try:
                    self.queue.get_nowait()
                    self._count("dropped")
                except queue.Empty:
                    break
            self.queue.put_nowait(None)
        self.thread.join(timeout)


class EventDispatcher:
    """Fans events out to the configured sinks, each on its own thread.

    Example:
        events = EventDispatcher(EventOptions(webhook="http://hub.local/events"))
        events.submit([{"type": "cross", "line": "door", "direction": "in", ...}])
        ...
        events.close()
    """

    def __init__(self, options: EventOptions):
        self.options = options
        timeout = options.timeout
        self.closed = False
        self.sinks: list[_Sink] = []
        if options.command:
            command = check_command(options.command)
            self.sinks.append(_Sink("on-event command", lambda e: _run_command(
                command, _encode(e), timeout), options))
        if options.webhook:
            url = check_webhook(options.webhook)
            self.sinks.append(_Sink("webhook", lambda e: _post(url, _encode(e), timeout),
                                    options))
        for hook in options.hooks:
            name = getattr(hook, "__name__", "hook")
            self.sinks.append(_Sink(f"hook {name}", hook, options))

    def submit(self, events: Sequence[dict]) -> None:
        """Queue ``events`` for every sink; returns at once."""
        for event in events:
            for sink in self.sinks:
                sink.offer(event)

    def stats(self) -> dict:
        """``{sink name: {"sent", "failed", "timeouts", "dropped", "rate_limited"}}``."""
        out = {}
        for sink in self.sinks:
            with sink.lock:
                out[sink.name] = dict(sink.counts)
        return out

    def close(self, timeout: float | None = None) -> None:
        """Let queued events go out (up to ``timeout`` s per sink), then stop the workers."""
        if self.closed:
            return
        self.closed = True
        wait = self.options.timeout + 1.0 if timeout is None else timeout
        for sink in self.sinks:
            sink.close(wait)


def _encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode("utf-8")
