"""Reading files named by users and by datasets: regular files only, bounded sizes, any text.

A dataset is a tree of files written by someone else. A label "file" can be a FIFO (``open``
blocks forever), a symlink to ``/dev/zero`` (``read`` never ends), a 2 GB file where 2 KB is
expected, text in Latin-1 or UTF-16, or a path with a NUL byte or 5,000 characters (``stat``
raises ``ValueError`` / ``ENAMETOOLONG`` where callers expect False). Everything here checks
the file with ``stat`` before opening it, opens without blocking, checks again on the open
descriptor (no race), and reads at most a stated number of bytes.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_BINARY", 0)

MiB = 1 << 20
# stat() errors that mean "there is no such file" for a reader (a name too long to exist, a
# file used as a folder, a symlink loop).
_NO_SUCH_FILE = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP}


class NotRegularFileError(OSError):
    """The path is a FIFO, a device, a socket or a folder (or a symlink to one): not read."""

    def __init__(self, path: str | os.PathLike, kind: str):
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", str(path))
        self.kind = kind


class FileTooLargeError(OSError):
    """The file holds more bytes than its kind ever needs; it is not read."""

    def __init__(self, path: str | os.PathLike, size: int, limit: int):
        super().__init__(errno.EFBIG, f"{_mb(size)} is over the {_mb(limit)} limit for this "
                                      "kind of file", str(path))
        self.size, self.limit = size, limit


def _mb(n: int) -> str:
    return f"{n / MiB:.0f} MB" if n >= MiB else f"{n} bytes"


def _kind(mode: int) -> str | None:
    """None for a regular file, else what it is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def file_status(path: str | os.PathLike) -> os.stat_result | None:
    """``os.stat`` that answers None for anything that is not there or cannot be a path
    (missing, dangling link, NUL byte, too long, loop, no permission)."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file (or a symlink to one); False for anything else, never raises."""
    st = file_status(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def exists(path: str | os.PathLike) -> bool:
    """``Path.exists`` that never raises (NUL bytes, over-long names, loops)."""
    return file_status(path) is not None


def open_regular(path: str | os.PathLike, limit: int | None = None) -> BinaryIO:
    """Open a regular file for binary reading without ever blocking on it.

    Raises:
        FileNotFoundError: missing, or a name that cannot exist (NUL byte).
        NotRegularFileError: a FIFO, device, socket or folder.
        FileTooLargeError: over ``limit`` bytes.
        OSError: any other failure to open.
    """
    try:
        st = os.stat(path)
    except ValueError:  # an embedded NUL byte: no such file can exist
        raise FileNotFoundError(errno.ENOENT, "invalid file name", str(path)) from None
    except OSError as err:
        if err.errno in _NO_SUCH_FILE:
            raise FileNotFoundError(err.errno, err.strerror, str(path)) from None
        raise
    kind = _kind(st.st_mode)
    if kind is not None:      # refuse before open(): opening a FIFO or a tty has effects
        raise NotRegularFileError(path, kind)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)     # the file opened may not be the one stat()ed
        kind = _kind(st.st_mode)
        if kind is not None:
            raise NotRegularFileError(path, kind)
        if limit is not None and st.st_size > limit:
            raise FileTooLargeError(path, st.st_size, limit)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike, limit: int) -> bytes:
    """The whole file, if it is a regular file of at most ``limit`` bytes (see
    :func:`open_regular` for the errors). A file that grows past ``limit`` while being read
    is refused too."""
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(path, len(data), limit)
    return data


_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``: UTF-8, UTF-16 with a byte-order mark, else Latin-1.

    Latin-1 decodes any bytes, so this never fails; callers report ``encoding == "latin-1"``
    because names read that way may not be what the author typed.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(name), name
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def read_text(path: str | os.PathLike, limit: int) -> tuple[str, str]:
    """``(text, encoding)`` of a regular file of at most ``limit`` bytes (:func:`decode_text`)."""
    return decode_text(read_bytes(path, limit))


def reason(err: BaseException) -> str:
    """A short phrase for why a file could not be read, for one-line messages."""
    if isinstance(err, FileNotFoundError):
        return "not found"
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    return str(err) or type(err).__name__


def describe(path: str | os.PathLike) -> str:
    """A path for messages: printable even when it holds control characters."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


def user_path(text: str) -> Path:
    """``Path(text)`` with ``~`` expanded the forgiving way: an unknown ``~user`` stays as it
    is (``Path.expanduser`` raises RuntimeError for it)."""
    return Path(os.path.expanduser(text))


def resolved(path: str | os.PathLike) -> Path:
    """``Path.resolve`` that never raises (a symlink loop raises RuntimeError there)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(path))
