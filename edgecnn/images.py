"""Which files count as images, in one place for every reader, eval, calibration and predict."""

from __future__ import annotations

from pathlib import Path

# What OpenCV decodes in every build we ship with (imread also reads .gif frames only through
# videoio, so it is left out on purpose).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    """A regular, non-hidden file with an image suffix."""
    return (path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
            and path.is_file())


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (not recursive)."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))
