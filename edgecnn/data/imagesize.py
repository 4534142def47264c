"""Image width/height from the file header, without decoding pixels.

Reading a dataset of thousands of images must not decode them all just to know their sizes.
JPEG and PNG (the common cases) are parsed here; other formats fall back to a full decode.
JPEG sizes honour the EXIF orientation tag because ``cv2.imread`` applies it, and box labels
refer to the image as decoded.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgecnn import safeio

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageHeaderError(ValueError):
    """The file is not a readable image (bad header, truncated, unknown format)."""


def image_size(path: str | Path) -> tuple[int, int]:
    """Return ``(width, height)`` of the image as ``cv2.imread`` would decode it.

    Raises:
        FileNotFoundError: the file does not exist.
        safeio.NotRegularFileError: a FIFO, device or socket (never opened).
        ImageHeaderError: the file cannot be read as an image.
    """
    path = Path(path)
    with safeio.open_regular(path) as fh:
        head = fh.read(32)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(fh, path)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            if len(head) < 24 or head[12:16] != b"IHDR":
                raise ImageHeaderError(f"{path.name}: truncated PNG header")
            width, height = struct.unpack(">II", head[16:24])
            return _checked(path, width, height)
    return _decode_size(path)


def _checked(path: Path, width: int, height: int) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise ImageHeaderError(f"{path.name}: image header gives size {width}x{height}")
    return width, height


def _jpeg_size(fh, path: Path) -> tuple[int, int]:
    fh.seek(2)
    orientation = 1
    while True:
        byte = fh.read(1)
        while byte and byte != b"\xff":  # tolerate garbage between segments like libjpeg
            byte = fh.read(1)
        while byte == b"\xff":
            byte = fh.read(1)
        if not byte:
            raise ImageHeaderError(f"{path.name}: JPEG ends before its frame header")
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length field
        if marker == 0xD9:
            raise ImageHeaderError(f"{path.name}: JPEG without a frame header")
        raw = fh.read(2)
        if len(raw) < 2:
            raise ImageHeaderError(f"{path.name}: truncated JPEG segment")
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            raise ImageHeaderError(f"{path.name}: corrupt JPEG segment length")
        if marker in _SOF_MARKERS:
            data = fh.read(5)
            if len(data) < 5:
                raise ImageHeaderError(f"{path.name}: truncated JPEG frame header")
            height, width = struct.unpack(">HH", data[1:5])
            if orientation in (5, 6, 7, 8):  # rotated by 90 degrees on decode
                width, height = height, width
            return _checked(path, width, height)
        if marker == 0xE1:
            body = fh.read(length - 2)
            orientation = _exif_orientation(body) or orientation
            continue
        fh.seek(length - 2, 1)


def _exif_orientation(body: bytes) -> int | None:
    if not body.startswith(b"Exif\x00\x00") or len(body) < 14:
        return None
    tiff = body[6:]
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None:
        return None
    try:
        (ifd,) = struct.unpack(endian + "I", tiff[4:8])
        (count,) = struct.unpack(endian + "H", tiff[ifd:ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
            tag, _typ, _n = struct.unpack(endian + "HHI", entry[:8])
            if tag == 0x0112:
                return struct.unpack(endian + "H", entry[8:10])[0]
    except struct.error:
        return None
    return None


def _decode_size(path: Path) -> tuple[int, int]:
    """Other formats: the header when predict's parser knows it (BMP, WebP), else a decode
    of a file that was checked to be regular and of bounded size."""
    from edgecnn.data.detection import ImageDecodeError, read_image

    try:
        image = read_image(path)
    except ImageDecodeError as err:
        raise ImageHeaderError(f"{path.name}: {err.reason}") from None
    return _checked(path, image.shape[1], image.shape[0])
