"""Run a ``.tflite`` on image files: top-k classes or detected boxes, optionally drawn.

Device side (no TensorFlow): :func:`predict_images` backs ``edgecnn predict``. Images that
cannot be read are skipped and reported, never fatal, unless none can be read at all.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edgecnn import safeio
from edgecnn.errors import UsageError
from edgecnn.images import list_images
from edgecnn.runtime.task import Task

MAX_FILE_BYTES = 512 << 20
MAX_PIXELS = 120_000_000   # a 108 MP phone photo decodes; a forged 40000x40000 header does not
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class ImagePrediction:
    """Result for one image: the runner's typed records (categories or detections)."""

    image: str
    width: int
    height: int
    ms: float
    results: tuple = ()
    saved: str | None = None

    def to_dict(self, result_key: str) -> dict:
        doc = {"image": self.image, "width": self.width, "height": self.height,
               "ms": round(self.ms, 3), result_key: [_rounded(r.to_dict()) for r in self.results]}
        if self.saved:
            doc["saved"] = self.saved
        return doc


def _rounded(doc: dict) -> dict:
    """Scores to 6 decimals (boxes and detection scores are already rounded coarser)."""
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in doc.items()}


@dataclass(frozen=True)
class PredictionReport:
    model: str
    task: Task
    result_key: str                    # "categories" or "detections": the runner's
    results: tuple[ImagePrediction, ...]
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)   # (image, reason)

    def to_dict(self) -> dict:
        return {"model": self.model, "task": self.task.value,
                "results": [r.to_dict(self.result_key) for r in self.results],
                "skipped": [{"image": i, "reason": r} for i, r in self.skipped],
                "warnings": len(self.skipped)}


def expand_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files inside them (sorted, not recursive)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(list_images(p))
        else:
            out.append(p)
    return out


def read_bgr(path: Path, max_pixels: int = MAX_PIXELS, gray: bool = False) -> np.ndarray:
    """Decode an image file to BGR uint8 (or 8-bit gray with ``gray``); ValueError with the
    reason when it cannot.

    The size in the header is checked before decoding (PNG, JPEG, BMP, WebP), so a small
    file that declares 40000x40000 pixels is refused instead of allocating gigabytes; other
    formats rely on OpenCV's own pixel limit. Gray, BGRA and 16-bit files decode to 8-bit BGR.
    A FIFO or device is never opened, and at most MAX_FILE_BYTES are read.
    """
    import cv2

    try:   # never blocks on a FIFO, never reads a device without end
        data = np.frombuffer(safeio.read_bytes(path, MAX_FILE_BYTES), np.uint8)
    except OSError as err:
        raise ValueError(safeio.reason(err)) from None
    if data.size == 0:
        raise ValueError("empty file")
    size = header_size(data[:65536].tobytes())
    if size is not None:
        w, h = size
        if w < 1 or h < 1:
            raise ValueError(f"the header says {w}x{h} pixels")
        if w * h > max_pixels:
            raise ValueError(f"the header says {w}x{h} pixels ({w * h / 1e6:.0f} MP), over the "
                             f"{max_pixels / 1e6:.0f} MP limit; downscale it first")
    overrun = png_chunk_overrun(data)
    if overrun:
        raise ValueError(overrun)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise ValueError(f"not decodable: {(str(err).strip().splitlines() or ['?'])[-1][:120]}"
                         ) from None
    if image is None or image.size == 0:
        raise ValueError("not a decodable image")
    return image


def png_chunk_overrun(data: np.ndarray) -> str:
    """Why a PNG's chunk list is corrupt ("" when it is fine or not a PNG).

    OpenCV 5.0 allocates a PNG chunk's declared length before reading it: one flipped byte in
    a 149-byte file's IDAT length took 2.9 GB and 6 s to fail. Walking the chunk headers costs
    microseconds and refuses a chunk that declares more bytes than the file holds.
    """
    raw = data.tobytes() if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" else b""
    pos = 8
    while raw and pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        if pos + 12 + length > len(raw):
            return (f"corrupt PNG: chunk {kind!r} declares {length} bytes, the file has "
                    f"{len(raw) - pos - 12} left")
        if kind == b"IEND":
            break
        pos += 12 + length
    return ""


def header_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, BMP or WebP header; None for other formats."""
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
    except struct.error:
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        return w, int.from_bytes(head[27:30], "little") + 1
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker in _SOF_MARKERS:
            h, w = struct.unpack(">HH", head[pos + 5:pos + 9])
            return w, h
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        pos += 2 + struct.unpack(">H", head[pos + 2:pos + 4])[0]
    return None   # SOF beyond the bytes read: OpenCV's own limit applies


def predict_images(model: str | os.PathLike, images: Iterable[str | os.PathLike], *,
                   top_k: int | None = None, score_threshold: float | None = None,
                   iou_threshold: float | None = None, threads: int | None = None,
                   save_dir: str | os.PathLike | None = None, on_skip=None,
                   verify: bool = True, described=None, overwrite: bool = False
                   ) -> PredictionReport:
    """Run ``model`` (a ``.tflite`` with edgecnn metadata) on image files.

    Args:
        model: the ``.tflite``; its metadata picks the runner (:func:`edgecnn.runtime.load`).
        images: image files or folders of images.
        top_k: classify: categories per image (default 5).
        score_threshold: classify: drop categories below; detect: override the model's.
        iou_threshold: detect: override the model's NMS threshold.
        threads: interpreter threads.
        save_dir: write each image with its results drawn on it into this folder.
        on_skip: called as ``on_skip(path, reason)`` for each image that cannot be read or
            run (the batch goes on).
        verify: refuse a model whose flatbuffer does not match its metadata's SHA-256.
        described: a :class:`~edgecnn.runtime.describe.MetadataOptions` for a model without
            edgecnn metadata (or to override fields of it).
        overwrite: replace files in ``save_dir`` that edgecnn did not write.

    Raises:
        UsageError: bad model or options (one that does not apply to the model's task
            included), a ``save_dir`` file that is not edgecnn's, or no image could be read.
    """
    from edgecnn.runtime import load

    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {top_k}")
    files = expand_images(images)
    if not files:
        raise UsageError("no images given", "pass image files or folders of images")
    names: dict[Path, str] = {}
    if save_dir is not None:
        save_dir = Path(save_dir)
        if save_dir.exists() and not save_dir.is_dir():
            raise UsageError(f"--save {save_dir} exists and is not a folder",
                             "choose another --save folder")
        names = saved_names(files)
        from edgecnn.fsutil import check_output_file

        for name in names.values():   # before any work: never a half-done batch
            check_output_file(save_dir / name, overwrite, "--save")
    runner = load(model, threads=threads, verify=verify, described=described, top_k=top_k,
                  score_threshold=score_threshold, iou_threshold=iou_threshold)
    results, skipped = _run_all(runner, files, save_dir, names, on_skip)
    if not results:
        raise UsageError(f"none of the {len(files)} image(s) could be read "
                         f"({skipped[0][0]}: {skipped[0][1]})", "pass jpg/png image files")
    return PredictionReport(str(model), runner.task, runner.result_key, tuple(results),
                            tuple(skipped))


def _run_all(runner, files: list[Path], save_dir: Path | None, names: dict[Path, str],
             on_skip) -> tuple[list[ImagePrediction], list[tuple[str, str]]]:
    """Run ``runner`` on each file (skipping and reporting the ones that fail), saving drawn
    copies; the copies written are noted as edgecnn's even when interrupted."""
    from edgecnn.fsutil import record_output_file

    results: list[ImagePrediction] = []
    skipped: list[tuple[str, str]] = []
    written: list[Path] = []
    try:
        for path in files:
            try:
                image = read_bgr(path)
                start = time.perf_counter()
                found = tuple(runner(image, "BGR"))
            except (ValueError, UsageError) as err:   # this image only: the batch goes on
                reason = err.message if isinstance(err, UsageError) else str(err)
                skipped.append((str(path), reason))
                if on_skip is not None:
                    on_skip(str(path), reason)
                continue
            ms = (time.perf_counter() - start) * 1000.0
            if save_dir is not None:
                written.append(_save(image, save_dir / names[path], found))
            results.append(ImagePrediction(str(path), int(image.shape[1]), int(image.shape[0]),
                                           ms, found, str(written[-1]) if save_dir else None))
    finally:
        if written:
            record_output_file(*written)
    return results, skipped


def saved_names(files: list[Path]) -> dict[Path, str]:
    """The file name each input gets in ``--save``: its own (``.png`` unless a format OpenCV
    writes), ``_1``, ``_2`` ... added when inputs from several folders share a name."""
    used: set[str] = set()
    out: dict[Path, str] = {}
    for path in files:
        suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") \
            else ".png"
        name, n = path.stem + suffix, 1
        while name in used:
            name = f"{path.stem}_{n}{suffix}"
            n += 1
        used.add(name)
        out[path] = name
    return out


def _save(image, out: Path, found) -> Path:
    """``image`` with ``found`` drawn (:func:`edgecnn.camera.still.annotate`), written to
    ``out`` atomically."""
    import cv2

    from edgecnn.camera.still import annotate
    from edgecnn.fsutil import write_atomic

    ok, encoded = cv2.imencode(out.suffix, annotate(image, found))
    if not ok:
        raise UsageError(f"cannot encode {out.name}")
    write_atomic(out, encoded.tobytes())
    return out
