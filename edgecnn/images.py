"""Which files count as images, in one place for every reader, eval, calibration and predict.

An image folder holds more than images: ``.DS_Store`` and ``._name.jpg`` (macOS), ``.git`` or
``.ipynb_checkpoints`` folders, a README, GIFs, a FIFO left by a tool. :func:`scan_images`
sorts a folder's entries into images and what was passed over, so readers can say what they
skipped instead of dropping it silently.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgecnn.safeio import is_regular_file

# What OpenCV decodes in every build we ship with (imread also reads .gif frames only through
# videoio, so it is left out on purpose).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def is_hidden(path: Path) -> bool:
    """Hidden by the Unix rule (a leading dot), which also covers macOS ``._name`` files."""
    return path.name.startswith(".")


def is_image_file(path: Path) -> bool:
    """A regular, non-hidden file with an image suffix."""
    return (path.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(path)
            and is_regular_file(path))


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (not recursive)."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


@dataclass(frozen=True)
class FolderScan:
    """What :func:`scan_images` found, each list sorted.

    Attributes:
        images: regular, non-hidden files with an image suffix.
        hidden: hidden files and folders (not entered).
        other: regular files with another suffix (``.gif``, ``.txt``, ...), minus ``ignore``d.
        special: entries that are neither regular files nor folders: FIFOs, devices, sockets,
            dangling symlinks (never opened).
        folders: sub-folders that were not entered (``recursive=False``).
    """

    images: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    other: tuple[Path, ...] = ()
    special: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()

    def other_suffixes(self) -> str:
        """``".gif: 2, .txt: 1"``: what the passed-over files were."""
        counts = Counter(p.suffix.lower() or "(no suffix)" for p in self.other)
        return ", ".join(f"{s}: {n}" for s, n in counts.most_common())


def scan_images(folder: str | os.PathLike, recursive: bool = False,
                ignore: tuple[str, ...] = ()) -> FolderScan:
    """Sort the entries of ``folder`` into images and the rest (see :class:`FolderScan`).

    Args:
        recursive: also scan non-hidden sub-folders (symlinked ones too, each real folder
            once, so a link loop ends).
        ignore: suffixes of files expected beside the images (``(".txt",)`` for YOLO labels
            that share the image folder); they are not listed in ``other``.
    """
    found: dict[str, list[Path]] = {k: [] for k in ("images", "hidden", "other", "special",
                                                     "folders")}
    seen: set[tuple[int, int]] = set()
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        try:
            info = os.stat(current)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(current))
        except (OSError, ValueError):
            found["special"].append(current)
            continue
        for entry in entries:
            path = Path(entry.path)
            kind = _entry_kind(entry)
            if is_hidden(path):
                found["hidden"].append(path)
            elif kind == "dir":
                (pending if recursive else found["folders"]).append(path)
            elif kind != "file":
                found["special"].append(path)
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                found["images"].append(path)
            elif path.suffix.lower() not in ignore:
                found["other"].append(path)
    return FolderScan(**{k: tuple(sorted(v)) for k, v in found.items()})


def _entry_kind(entry: os.DirEntry) -> str:
    try:
        mode = entry.stat().st_mode   # follows symlinks: a link to an image is an image
    except (OSError, ValueError):
        return "special"              # dangling link, loop
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "special"
