"""Image-folder datasets: one sub-folder per class, jpg/png images inside.

Unreadable files are skipped and counted (the count is reported as a warning), never silently
dropped and never fatal: one bad file in ten thousand should not stop a training run. What is
not read at all is said too: hidden files and folders (``.DS_Store``, ``._x.jpg``,
``.ipynb_checkpoints``), files of other formats (``.gif``), files at the root that belong to no
class, folders inside class folders, and FIFOs or devices (never opened).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.images import FolderScan, scan_images


@dataclass(frozen=True)
class FolderImages:
    """An image folder read into memory.

    Attributes:
        x: uint8 ``(N, S, S, C)``; y: int64 ``(N,)`` class indices.
        labels: class names (the class folder names, sorted).
        warnings: one line per kind of thing skipped.
        skipped: images that failed to decode (counted in ``warnings`` too).
    """

    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    warnings: tuple[str, ...]
    skipped: int = 0


def load_image_folder(root: str | os.PathLike, imgsz: int, color: str) -> FolderImages:
    """Every image of every class folder, stretched to ``imgsz`` x ``imgsz``.

    Example:
        data = load_image_folder("flowers/", 64, "RGB")
        data.x.shape, data.labels, data.warnings
    """
    from edgecnn.data.detection import ImageDecodeError, read_image

    root = Path(root)
    top = scan_images(root)
    classes = list(top.folders)
    if len(classes) < 2:
        raise UsageError(f"{root} has {len(classes)} class folder(s); a classifier needs at "
                         "least 2", "put each class's images in its own sub-folder")
    images, targets, skipped, empty = [], [], [], []
    scans = [top]
    for label, folder in enumerate(classes):
        scan = scan_images(folder)
        scans.append(scan)
        if not scan.images:
            empty.append(folder.name)
        for f in scan.images:
            try:
                image = read_image(f, gray=color == "GRAY")
            except ImageDecodeError:
                skipped.append(f"{folder.name}/{f.name}")
                continue
            image = cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_AREA
                               if min(image.shape[:2]) > imgsz else cv2.INTER_LINEAR)
            image = image[:, :, None] if color == "GRAY" else cv2.cvtColor(image,
                                                                           cv2.COLOR_BGR2RGB)
            images.append(image)
            targets.append(label)
    warnings = _passed_over(root, top, scans[1:])
    if skipped:
        warnings.append(f"skipped {len(skipped)} unreadable image file(s) in {root} "
                        f"({_some(skipped)})")
    if empty:
        warnings.append(f"class folder(s) without images: {', '.join(empty)}")
    present = len(set(targets))
    if present < 2:
        raise UsageError(f"{root} has readable images in {present} class folder(s); a "
                         "classifier needs at least 2", "check the images and the folder layout")
    return FolderImages(np.stack(images), np.asarray(targets, dtype=np.int64),
                        tuple(p.name for p in classes), tuple(warnings), len(skipped))


def _passed_over(root: Path, top: FolderScan, scans: list[FolderScan]) -> list[str]:
    """One warning line per kind of entry that was not read."""
    def rel(paths) -> list[str]:
        return [os.path.relpath(p, root) for p in paths]

    lines = []
    at_root = rel(top.images + top.other)
    if at_root:
        lines.append(f"skipped {len(at_root)} file(s) at the root of {root}, outside any "
                     f"class folder ({_some(at_root)})")
    hidden = rel(top.hidden + tuple(p for s in scans for p in s.hidden))
    if hidden:
        lines.append(f"skipped {len(hidden)} hidden file(s)/folder(s) ({_some(hidden)})")
    other = FolderScan(other=tuple(p for s in scans for p in s.other))
    if other.other:
        lines.append(f"skipped {len(other.other)} file(s) that are not images edgecnn reads "
                     f"({other.other_suffixes()}; e.g. {_some(rel(other.other), 2)})")
    nested = rel(p for s in scans for p in s.folders)
    if nested:
        lines.append(f"skipped {len(nested)} folder(s) inside class folders (not read: "
                     f"{_some(nested)})")
    special = rel(top.special + tuple(p for s in scans for p in s.special))
    if special:
        lines.append(f"skipped {len(special)} FIFO(s), device(s) or dangling link(s) "
                     f"({_some(special)})")
    return lines


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
