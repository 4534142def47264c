"""A bounds-checked reader of the TFLite flatbuffer tables the model check needs.

The generated readers (``schema_py_generated.py`` in ai-edge-litert, the ``tflite`` PyPI
package) trust their input: an offset past the end raises ``struct.error`` or ``IndexError``
and a negative one silently reads from the end of the buffer. This reader checks every offset
and length against the buffer before it reads, so a damaged file raises
:class:`FlatbufferError` naming what is wrong. Field numbers follow
``tensorflow/lite/schema/schema.fbs`` (field ``n`` sits at vtable slot ``4 + 2n``).
"""

from __future__ import annotations

import struct

import numpy as np


class FlatbufferError(ValueError):
    """The bytes are not a well-formed flatbuffer at the position read."""


class Table:
    """One flatbuffer table at ``pos`` of ``buf``; fields are read by their schema number."""

    __slots__ = ("buf", "pos", "vtable", "vtable_size", "table_size")

    def __init__(self, buf: bytes, pos: int, what: str = "table"):
        self.buf = buf
        self.pos = pos
        _need(buf, pos, 4, what)
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        _need(buf, self.vtable, 4, f"{what} vtable")
        self.vtable_size, self.table_size = struct.unpack_from("<HH", buf, self.vtable)
        if self.vtable_size < 4 or self.vtable_size % 2:
            raise FlatbufferError(f"{what} vtable size {self.vtable_size} is invalid")
        _need(buf, self.vtable, self.vtable_size, f"{what} vtable")
        if self.table_size < 4:
            raise FlatbufferError(f"{what} size {self.table_size} is invalid")
        _need(buf, pos, self.table_size, what)

    def _field(self, n: int, size: int) -> int | None:
        slot = 4 + 2 * n
        if slot + 2 > self.vtable_size:
            return None
        off = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        if off == 0:
            return None
        if off + size > self.table_size:
            raise FlatbufferError(f"field {n} lies outside its table")
        return self.pos + off

    def scalar(self, n: int, fmt: str, default=0):
        """A scalar field (``fmt`` is a struct code such as ``"I"``), or ``default``."""
        pos = self._field(n, struct.calcsize("<" + fmt))
        return default if pos is None else struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def _target(self, n: int) -> int | None:
        pos = self._field(n, 4)
        if pos is None:
            return None
        target = pos + struct.unpack_from("<I", self.buf, pos)[0]
        _need(self.buf, target, 4, f"field {n}")
        return target

    def table(self, n: int, what: str = "table") -> "Table | None":
        target = self._target(n)
        return None if target is None else Table(self.buf, target, what)

    def _vector(self, n: int, item_size: int, what: str) -> tuple[int, int] | None:
        start = self._target(n)
        if start is None:
            return None
        count = struct.unpack_from("<I", self.buf, start)[0]
        _need(self.buf, start + 4, count * item_size, what)
        return start + 4, count

    def numbers(self, n: int, dtype: str, what: str = "vector") -> np.ndarray:
        """A vector of scalars (``dtype`` a little-endian numpy code such as ``"<i4"``)."""
        dt = np.dtype(dtype)
        vec = self._vector(n, dt.itemsize, what)
        if vec is None:
            return np.zeros(0, dt)
        return np.frombuffer(self.buf, dt, count=vec[1], offset=vec[0])

    def vector_span(self, n: int, what: str = "vector") -> tuple[int, int] | None:
        """``(offset, length)`` of a byte vector, checked to lie in the buffer."""
        return self._vector(n, 1, what)

    def string(self, n: int, what: str = "string") -> bytes | None:
        vec = self._vector(n, 1, what)
        return None if vec is None else bytes(self.buf[vec[0]:vec[0] + vec[1]])

    def tables(self, n: int, what: str = "table") -> list["Table"]:
        """A vector of tables (each element checked as it is read)."""
        vec = self._vector(n, 4, what)
        if vec is None:
            return []
        start, count = vec
        out = []
        for i in range(count):
            pos = start + 4 * i
            out.append(Table(self.buf, pos + struct.unpack_from("<I", self.buf, pos)[0],
                             f"{what} {i}"))
        return out


def root(buf: bytes, what: str = "model") -> Table:
    """The root table of a flatbuffer."""
    _need(buf, 0, 8, what)
    return Table(buf, struct.unpack_from("<I", buf, 0)[0], what)


def _need(buf: bytes, pos: int, size: int, what: str) -> None:
    if pos < 0 or size < 0 or pos + size > len(buf):
        raise FlatbufferError(f"{what} at byte {pos} (+{size}) lies outside the "
                              f"{len(buf)}-byte flatbuffer")
