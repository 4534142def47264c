"""Outputs of a camera run that are never left half-written.

:class:`VideoSink` writes to a hidden temp file next to the target and renames it on
:meth:`close`, which the loop calls in a ``finally`` (Ctrl-C and SIGTERM included), so the
target either does not exist or is a finished, playable video. :class:`JsonLinesSink` writes
one JSON object per frame, to a file (same temp-then-rename rule) or to stdout (``-``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from edgecnn.errors import UsageError

# FourCC per container; mp4v is in every FFMPEG build of OpenCV (H.264 encoders often are not).
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def _temp_next_to(path: Path, suffix: str) -> Path:
    """Create an empty hidden temp file beside ``path``; the check that the folder is writable."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist", "create it or choose another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=folder)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}",
                         "choose a writable output path") from None
    os.close(fd)
    return Path(tmp)


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early, before a camera opens, when ``path`` cannot be written.

    Raises:
        UsageError: the folder is missing or read-only, or the path is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"output {path} is a directory", "pass a file name")
    probe = _temp_next_to(path, ".probe")
    probe.unlink()
    return path


class VideoSink:
    """An atomically written video; the writer opens on the first frame (size known then).

    Args:
        path: target file; ``.mp4``/``.m4v``/``.mov`` (mp4v) or ``.avi``/``.mkv`` (MJPG).
        fps: frame rate stored in the file (the source's FPS, or the loop's if unknown).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in _FOURCC:
            raise UsageError(f"cannot save video as {ext or 'no extension'!r}",
                             f"use one of {', '.join(sorted(_FOURCC))}")
        if self.path.is_dir():
            raise UsageError(f"output {self.path} is a directory", "pass a file name like out.mp4")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = _FOURCC[ext]
        self.tmp = _temp_next_to(self.path, ext)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter.fourcc(*self.fourcc),
                                          self.fps, (w, h))
            if not self.writer.isOpened():
                raise UsageError(f"OpenCV cannot encode {self.fourcc} video to {self.path}",
                                 "try a .avi output")
            self.size = (w, h)
        elif (w, h) != self.size:
            # A stream that comes back at another resolution: keep the file consistent.
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finalize and move into place; returns the path, or None when nothing was written."""
        if self.closed:
            return self.path if self.frames else None
        self.closed = True
        if self.writer is not None:
            self.writer.release()
        if self.frames == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            return None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.closed = True
        if self.writer is not None:
            self.writer.release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class JsonLinesSink:
    """``{"frame", "t", "detections" | "categories", "timings_ms"}`` per line.

    Args:
        target: a file path, or ``-`` for stdout (flushed every line so a pipe sees frames live).
    """

    def __init__(self, target: str | os.PathLike):
        self.to_stdout = str(target) == "-"
        self.path: Path | None = None
        self.tmp: Path | None = None
        self.fh: TextIO
        self.lines = 0
        self.closed = False
        if self.to_stdout:
            self.fh = sys.stdout
        else:
            path = Path(target)
            if path.is_dir():
                raise UsageError(f"output {path} is a directory",
                                 "pass a file name like frames.jsonl")
            self.path = path
            self.tmp = _temp_next_to(path, ".tmp")
            self.fh = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines += 1
        if self.to_stdout:
            self.fh.flush()

    def close(self) -> Path | None:
        if self.closed:
            return self.path
        self.closed = True
        if self.tmp is None or self.path is None:  # stdout
            self.fh.flush()
            return None
        self.fh.close()
        os.replace(self.tmp, self.path)
        return self.path
