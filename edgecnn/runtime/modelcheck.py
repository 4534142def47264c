"""The model check: what a ``.tflite`` flatbuffer must satisfy before an interpreter sees it.

Two layers, because the native interpreter trusts its input more than it should (a scale of
``1e30`` makes XNNPACK free memory twice; four changed bytes in a shape make it allocate
gigabytes):

1. :func:`check_model`, always: the flatbuffer is parsed with bounds-checked reads
   (:mod:`edgecnn.runtime.flatbuf`) and every table the runtime relies on is checked: buffers
   lie within the file, constant tensors hold exactly the bytes their shape needs, the
   tensors' total size is under a cap (:func:`tensor_limit`), quantization scales are finite
   and positive and zero points fit their type, names are UTF-8, operator, subgraph and
   signature indices are in range. Cost: ~1 ms per 100 tensors.
2. :func:`probe_model`, when the file is not covered by a verified checksum: a child process
   (forked from a small server, :mod:`edgecnn.runtime.probe_server`) with a memory limit and a
   timeout loads, allocates and invokes the model once. A native crash kills the child, not
   the caller. Cost: one fork and load (~20 ms here; the first probe of a process also starts
   the server: ~0.3 s here, ~1-2 s on a Raspberry Pi).

An edgecnn file whose SHA-256 matches its metadata is byte for byte what ``edgecnn convert``
wrote and loaded, so it skips the probe. The checksum guards against damage, not malice: a
file crafted to match its own checksum skips the probe too (pass ``probe=Probe.ALWAYS``).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import subprocess
import sys
import threading
from typing import IO
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.flatbuf import FlatbufferError, Table, root

TFLITE_IDENT = b"TFL3"
MIN_TENSOR_LIMIT = 256 << 20          # bytes the tensors of any model may need
TENSOR_LIMIT_PER_FILE_BYTE = 512      # ... or this many times the flatbuffer size
MAX_TENSOR_LIMIT = 4 << 30            # ... but never more (override: EDGECNN_MAX_TENSOR_MB)
MAX_RANK = 16
PROBE_MEMORY = 128 << 20              # probe child's address space beyond the tensor limit
PROBE_TIMEOUT_S = 10.0                # ... and its time, plus 1 s per MB of flatbuffer
_DAMAGED_HINT = "the file is truncated or damaged; re-copy it or re-run 'edgecnn convert'"

# TensorType -> (name, bits per element; 0 = no fixed size), from schema.fbs.
TENSOR_TYPES = {
    0: ("float32", 32), 1: ("float16", 16), 2: ("int32", 32), 3: ("uint8", 8),
    4: ("int64", 64), 5: ("string", 0), 6: ("bool", 8), 7: ("int16", 16),
    8: ("complex64", 64), 9: ("int8", 8), 10: ("float64", 64), 11: ("complex128", 128),
    12: ("uint64", 64), 13: ("resource", 0), 14: ("variant", 0), 15: ("uint32", 32),
    16: ("uint16", 16), 17: ("int4", 4), 18: ("bfloat16", 16), 19: ("int2", 2),
    20: ("uint4", 4), 21: ("float8_e4m3fn", 8), 22: ("float8_e5m2", 8),
}
_ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                     "uint16": (0, 65535), "int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1)}
_INT32 = (-(1 << 31), (1 << 31) - 1)


class Probe(str, Enum):
    """When to load a model in a child process first."""

    AUTO = "auto"      # unless its SHA-256 matches the checksum in its edgecnn metadata
    ALWAYS = "always"
    NEVER = "never"    # bytes that come straight from the converter in this process


class ModelCheckError(UsageError):
    """The flatbuffer failed the model check (or the probe); the message says which part."""

    def __init__(self, message: str, hint: str | None = _DAMAGED_HINT):
        super().__init__(message, hint)


@dataclass(frozen=True)
class ModelReport:
    """What the check read: sizes and counts, for ``inspect``."""

    flatbuffer_bytes: int
    subgraphs: int
    tensors: int
    operators: int
    buffers: int
    tensor_bytes: int       # non-constant tensors, summed without reuse (an upper bound)
    constant_bytes: int
    tensor_limit: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def tensor_limit(flatbuffer_bytes: int) -> int:
    """The most bytes the tensors of a model of this size may need before it is refused."""
    override = os.environ.get("EDGECNN_MAX_TENSOR_MB", "")
    if override.strip():
        try:
            return max(1, int(float(override) * (1 << 20)))
        except ValueError:
            raise UsageError(f"EDGECNN_MAX_TENSOR_MB={override!r} is not a number",
                             "set it to megabytes, e.g. 2048") from None
    return min(MAX_TENSOR_LIMIT, max(MIN_TENSOR_LIMIT,
                                     TENSOR_LIMIT_PER_FILE_BYTE * flatbuffer_bytes))


def check_model(flatbuffer: bytes) -> ModelReport:
    """Check a TFLite flatbuffer (without the metadata bundle); ModelCheckError if it fails."""
    if len(flatbuffer) < 8 or flatbuffer[4:8] != TFLITE_IDENT:
        raise ModelCheckError("not a TFLite model (no TFL3 identifier)",
                              "pass a .tflite file written by 'edgecnn convert'")
    try:
        return _Checker(flatbuffer).run()
    except FlatbufferError as err:
        raise ModelCheckError(f"the model's flatbuffer is malformed: {err}") from None


class _Checker:
    def __init__(self, flatbuffer: bytes):
        self.fb = flatbuffer
        self.model = root(flatbuffer)
        self.tensor_bytes = 0
        self.constant_bytes = 0

    def run(self) -> ModelReport:
        m = self.model
        self.opcodes = m.tables(1, "operator code")
        for i, code in enumerate(self.opcodes):
            _utf8(code.string(1), f"operator code {i} custom name")
        self.buffer_sizes = [self._buffer_size(i, b) for i, b in enumerate(m.tables(4, "buffer"))]
        graphs = m.tables(2, "subgraph")
        if not graphs:
            raise ModelCheckError("the model has no subgraph")
        counts = [self._subgraph(g, i) for i, g in enumerate(graphs)]
        _signatures(m.tables(7, "signature"), counts)
        for i, entry in enumerate(m.tables(6, "metadata entry")):
            _utf8(entry.string(0), f"metadata entry {i} name")
            self._buffer_index(entry.scalar(1, "I"), f"metadata entry {i}")
        for i in m.numbers(5, "<i4", "metadata buffer list").tolist():
            self._buffer_index(i, "the metadata buffer list")
        limit = tensor_limit(len(self.fb))
        if self.tensor_bytes > limit:
            raise ModelCheckError(
                f"the model's tensors would need {_mb(self.tensor_bytes)}, over the "
                f"{_mb(limit)} allowed for a {_mb(len(self.fb))} model",
                "the file is damaged (a changed shape?); if it is a real model, raise the "
                "limit with EDGECNN_MAX_TENSOR_MB")
        return ModelReport(len(self.fb), len(graphs), sum(c[0] for c in counts),
                           sum(c[1] for c in counts), len(self.buffer_sizes),
                           self.tensor_bytes, self.constant_bytes, limit)

    def _buffer_size(self, i: int, buf: Table) -> int:
        span = buf.vector_span(0, f"buffer {i} data")
        offset, size = buf.scalar(1, "Q"), buf.scalar(2, "Q")
        if offset > 1:  # data stored after the flatbuffer (models over 2 GB)
            if offset + size > len(self.fb):
                raise ModelCheckError(f"buffer {i} (bytes {offset}..{offset + size}) lies "
                                      f"outside the {len(self.fb)}-byte file")
            return size
        return span[1] if span else 0

    def _buffer_index(self, i: int, where: str) -> int:
        if not 0 <= i < len(self.buffer_sizes):
            raise ModelCheckError(f"{where} refers to buffer {i}; the model has "
                                  f"{len(self.buffer_sizes)}")
        return i

    def _subgraph(self, g: Table, gi: int) -> tuple[int, int]:
        where = f"subgraph {gi}"
        _utf8(g.string(4), f"{where} name")
        tensors = g.tables(0, f"{where} tensor")
        for ti, t in enumerate(tensors):
            self._tensor(t, f"{where} tensor {ti}")
        n = len(tensors)
        for key, field in (("inputs", 1), ("outputs", 2)):
            _indices(g.numbers(field, "<i4", f"{where} {key}"), n, f"{where} {key}", False)
        ops = g.tables(3, f"{where} operator")
        for oi, op in enumerate(ops):
            code = op.scalar(0, "I")
            if code >= len(self.opcodes):
                raise ModelCheckError(f"{where} operator {oi} uses operator code {code}; the "
                                      f"model has {len(self.opcodes)}")
            for key, field in (("inputs", 1), ("outputs", 2), ("intermediates", 8)):
                _indices(op.numbers(field, "<i4", f"operator {oi} {key}"), n,
                         f"{where} operator {oi} {key}", True)
        return n, len(ops)

    def _tensor(self, t: Table, where: str) -> None:
        name = _utf8(t.string(3), f"{where} name")
        where = f"{where} ({name!r})" if name else where
        shape = t.numbers(0, "<i4", f"{where} shape").tolist()
        if len(shape) > MAX_RANK or any(d < 0 for d in shape):
            raise ModelCheckError(f"{where} has an invalid shape {shape}")
        type_id = t.scalar(1, "b")
        if type_id not in TENSOR_TYPES:
            raise ModelCheckError(f"{where} has unknown type {type_id}")
        type_name, bits = TENSOR_TYPES[type_id]
        nbytes = (math.prod(shape) * bits + 7) // 8
        buffer = self._buffer_index(t.scalar(2, "I"), where)
        stored = self.buffer_sizes[buffer] if buffer else 0
        sparse = t.table(6, f"{where} sparsity") is not None
        if stored and bits and not sparse:
            allowed = {nbytes, math.prod(shape)} if bits < 8 else {nbytes}
            if stored not in allowed:
                raise ModelCheckError(f"{where}: shape {shape} of {type_name} needs {nbytes} "
                                      f"bytes but its buffer holds {stored}")
        if stored:
            self.constant_bytes += stored
        else:
            self.tensor_bytes += nbytes
        quant = t.table(4, f"{where} quantization")
        if quant is not None:
            _quantization(quant, shape, type_name, where)


def _quantization(q: Table, shape: list[int], type_name: str, where: str) -> None:
    scale = q.numbers(2, "<f4", f"{where} scales")
    zero = q.numbers(3, "<i8", f"{where} zero points")
    if scale.size and not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        bad = scale[~(np.isfinite(scale) & (scale > 0))][0]
        raise ModelCheckError(f"{where} has quantization scale {bad!r}, not finite and positive")
    if zero.size and zero.size != scale.size:
        raise ModelCheckError(f"{where} has {scale.size} scales but {zero.size} zero points")
    lo, hi = _ZERO_POINT_RANGE.get(type_name, _INT32)
    if zero.size and (int(zero.min()) < lo or int(zero.max()) > hi):
        bad = int(zero[(zero < lo) | (zero > hi)][0])
        raise ModelCheckError(f"{where} has zero point {bad}, outside {lo}..{hi} of {type_name}")
    if scale.size > 1:
        axis = q.scalar(6, "i")
        if not 0 <= axis < len(shape) or shape[axis] != scale.size:
            raise ModelCheckError(f"{where} has {scale.size} per-channel scales on axis {axis} "
                                  f"of shape {shape}")


def read_io(flatbuffer: bytes) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """Best effort for ``inspect``: the main subgraph's input and output tensors as the file
    describes them (name, shape, dtype, scale, zero_point), read even from a damaged model;
    a tensor that cannot be read is left out."""
    try:
        graphs = root(flatbuffer).tables(2, "subgraph")
        graph = graphs[0]
        tensors = graph.tables(0, "tensor")
        ends = [graph.numbers(1, "<i4", "inputs"), graph.numbers(2, "<i4", "outputs")]
    except (FlatbufferError, IndexError):
        return (), ()
    out: list[list[dict]] = [[], []]
    for side, indices in enumerate(ends):
        for i in indices.tolist():
            try:
                out[side].append(_tensor_dict(tensors[i]))
            except (FlatbufferError, IndexError, ModelCheckError):
                continue
    return tuple(out[0]), tuple(out[1])


def _tensor_dict(t: Table) -> dict:
    quant = t.table(4, "quantization")
    scale = quant.numbers(2, "<f4") if quant is not None else np.zeros(0)
    zero = quant.numbers(3, "<i8") if quant is not None else np.zeros(0, np.int64)
    return {"name": _utf8(t.string(3), "name") if t.string(3) is not None else "",
            "shape": t.numbers(0, "<i4").tolist(),
            "dtype": TENSOR_TYPES.get(t.scalar(1, "b"), (f"type {t.scalar(1, 'b')}", 0))[0],
            "scale": float(scale[0]) if scale.size else 0.0,
            "zero_point": int(zero[0]) if zero.size else 0}


def _indices(values: np.ndarray, n: int, where: str, optional: bool) -> None:
    low = -1 if optional else 0
    if values.size and (int(values.min()) < low or int(values.max()) >= n):
        bad = int(values[(values < low) | (values >= n)][0])
        raise ModelCheckError(f"{where} refers to tensor {bad}; the subgraph has {n}")


def _signatures(sigs: list[Table], counts: list[tuple[int, int]]) -> None:
    for si, sig in enumerate(sigs):
        _utf8(sig.string(2), f"signature {si} key")
        graph = sig.scalar(4, "I")
        if graph >= len(counts):
            raise ModelCheckError(f"signature {si} refers to subgraph {graph}; the model has "
                                  f"{len(counts)}")
        for key, field in (("input", 0), ("output", 1)):
            for mi, item in enumerate(sig.tables(field, f"signature {si} {key}")):
                _utf8(item.string(0), f"signature {si} {key} {mi} name")
                index = item.scalar(1, "I")
                if index >= counts[graph][0]:
                    raise ModelCheckError(f"signature {si} {key} {mi} refers to tensor {index}; "
                                          f"subgraph {graph} has {counts[graph][0]}")



def _utf8(raw: bytes | None, where: str) -> str:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelCheckError(f"{where} is not UTF-8 text ({raw[:40]!r})") from None


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.1f} KB"


def probe_model(flatbuffer: bytes, threads: int | None = None,
                report: ModelReport | None = None) -> None:
    """Load, allocate and invoke the model once in a child process; ModelCheckError if that
    crashes, runs out of its memory allowance, takes too long or raises."""
    from edgecnn.runtime.interpreter import interpreter_module

    module = interpreter_module().__name__
    limit = report.tensor_limit if report is not None else tensor_limit(len(flatbuffer))
    request = {"size": len(flatbuffer), "threads": int(threads or 1),
               "timeout": PROBE_TIMEOUT_S + len(flatbuffer) / 1e6,
               "memory": limit + PROBE_MEMORY + 4 * len(flatbuffer)}
    result = _SERVER.ask(module, request, flatbuffer)
    if result.get("status") != "ok":
        what = {"crash": "crashed the interpreter", "timeout": "did not load and run in time",
                "error": "failed to load and run"}.get(str(result.get("status")), "failed")
        raise ModelCheckError(f"the model {what} in the probe: {result.get('detail', '')}")
    # Shapes in the file are only a start: the interpreter propagates the input shapes, so a
    # changed batch size grows every tensor after it. The probe measured what loading took.
    grown = int(result.get("peak_growth", 0))
    if grown > limit:
        raise ModelCheckError(f"loading the model took {_mb(grown)} of memory, over the "
                              f"{_mb(limit)} allowed for a {_mb(len(flatbuffer))} model",
                              "the file is damaged (a changed shape?); if it is a real model, "
                              "raise the limit with EDGECNN_MAX_TENSOR_MB")



def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """A pipe of the probe server (always made, as Popen was asked for PIPE)."""
    if stream is None:
        raise OSError("the probe server has no pipe")
    return stream

class _ProbeServer:
    """One probe server per process, started on first use and restarted if it dies."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._module = ""

    def ask(self, module: str, request: dict, flatbuffer: bytes) -> dict:
        with self._lock:
            for attempt in range(2):
                try:
                    proc = self._ensure(module)
                    stdin = _pipe(proc.stdin)
                    stdin.write(json.dumps(request).encode() + b"\n" + flatbuffer)
                    stdin.flush()
                    line = self._readline(proc, request["timeout"] + 30.0)
                    return json.loads(line)
                except (OSError, ValueError) as err:
                    self.close()
                    if attempt:
                        raise ModelCheckError(f"the model probe could not run: {err}",
                                              "check that the interpreter package works: "
                                              "python -c 'import ai_edge_litert'") from None
                except BaseException:
                    self.close()   # interrupted mid-request: the protocol is out of step
                    raise
        raise ModelCheckError("the model probe could not run")

    def _ensure(self, module: str) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None and self._module == module:
            return self._proc
        self.close()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        # A new session: Ctrl-C in the terminal goes to the caller, which closes the server.
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("probe_server.py")), module],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self._module = module
        if json.loads(self._readline(self._proc, 120.0)).get("status") != "ready":
            raise OSError("the probe server did not start")
        return self._proc

    @staticmethod
    def _readline(proc: subprocess.Popen, timeout: float) -> bytes:
        stdout = _pipe(proc.stdout)
        if not select.select([stdout], [], [], timeout)[0]:
            raise OSError(f"the probe server gave no answer in {timeout:.0f} s")
        line = stdout.readline()
        if not line:
            raise OSError("the probe server stopped")
        return line

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_SERVER = _ProbeServer()
atexit.register(_SERVER.close)
