"""Outputs of a camera run that are never left half-written.

:class:`VideoSink` writes to a hidden temp file next to the target and renames it on
:meth:`close`, which the loop calls in a ``finally`` (Ctrl-C and SIGTERM included), so the
target either does not exist or is a finished, playable video. :class:`JsonLinesSink` writes
one JSON object per frame, to a file (same temp-then-rename rule) or to stdout (``-``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from edgecnn.errors import UsageError

# FourCC per container; mp4v is in every FFMPEG build of OpenCV, H.264 (what browsers play)
# only in builds with an H.264 encoder (the opencv-python wheels have none): tried first.
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
_H264_CONTAINERS = (".mp4", ".m4v", ".mov")
H264 = "avc1"


@functools.lru_cache(maxsize=1)
def h264_available() -> bool:
    """Whether this OpenCV build encodes H.264 (``avc1``); probed once per process.

    The probe writes two small frames to a temp file with the encoder's log on stderr captured
    (a build without an encoder says so in several lines of FFmpeg errors).
    """
    from edgecnn.quiet import captured_output

    with tempfile.TemporaryDirectory(prefix="edgecnn-h264-") as folder:
        path = os.path.join(folder, "probe.mp4")
        with captured_output(fds=(2,)):
            writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*H264), 10.0, (64, 48))
            ok = writer.isOpened()
            if ok:
                for _ in range(2):
                    writer.write(np.zeros((48, 64, 3), np.uint8))
            writer.release()
        return ok and os.path.getsize(path) > 0


def video_codec(path: str | os.PathLike) -> str:
    """The FourCC a video at ``path`` is written with: ``avc1`` (H.264) for .mp4/.m4v/.mov
    when this OpenCV has the encoder, else ``mp4v``; ``MJPG`` for .avi/.mkv."""
    ext = Path(path).suffix.lower()
    if ext not in _FOURCC:
        raise UsageError(f"cannot save video as {ext or 'no extension'!r}",
                         f"use one of {', '.join(sorted(_FOURCC))}")
    if ext in _H264_CONTAINERS and h264_available():
        return H264
    return _FOURCC[ext]


def codec_note(fourcc: str) -> str:
    """What a user should know about a saved video's codec (for summaries)."""
    if fourcc == H264:
        return "H.264 (avc1), plays in browsers"
    if fourcc == "mp4v":
        return ("MPEG-4 Part 2 (mp4v): this OpenCV build has no H.264 encoder, so browsers may "
                "not play it; VLC and ffmpeg do")
    return f"{fourcc}"


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


def check_output_path(path: str | os.PathLike, overwrite: bool = False,
                      option: str = "--save") -> Path:
    """Fail early, before a camera opens, when ``path`` cannot or must not be written.

    Raises:
        UsageError: the folder is missing or read-only, the path is a directory, or it is a
            file edgecnn did not write (unless ``overwrite``).
    """
    from edgecnn.fsutil import check_output_file

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"output {path} is a directory", "pass a file name")
    if not path.parent.is_dir():
        raise UsageError(f"output folder {path.parent} does not exist",
                         "create it or choose another path")
    check_output_file(path, overwrite, option)
    probe = _temp_next_to(path, ".probe")
    probe.unlink()
    return path


def _commit(tmp: Path, path: Path) -> None:
    """Move a finished output into place with the user's permissions and note it as ours."""
    from edgecnn.fsutil import apply_umask, record_output_file

    apply_umask(tmp)
    os.replace(tmp, path)
    record_output_file(path)


class VideoSink:
    """An atomically written video; the writer opens on the first frame (size known then).

    Args:
        path: target file; ``.mp4``/``.m4v``/``.mov`` (H.264 when OpenCV has the encoder, else
            mp4v: :func:`video_codec`) or ``.avi``/``.mkv`` (MJPG).
        fps: frame rate stored in the file (the source's FPS, or the loop's if unknown).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if self.path.is_dir():
            raise UsageError(f"output {self.path} is a directory", "pass a file name like out.mp4")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.fourcc = video_codec(self.path)
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
        _commit(self.tmp, self.path)
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
        _commit(self.tmp, self.path)
        return self.path
