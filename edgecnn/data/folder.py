"""Image-folder datasets: one sub-folder per class, jpg/png images inside.

Unreadable files are skipped and counted (the count is reported as a warning), never silently
dropped and never fatal: one bad file in ten thousand should not stop a training run.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def looks_like_image_folder(root: Path) -> bool:
    return root.is_dir() and any(
        f.suffix.lower() in IMAGE_SUFFIXES for d in class_folders(root) for f in d.iterdir())


def load_image_folder(root: str | os.PathLike, imgsz: int, color: str
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[str]]:
    """(x uint8 N x S x S x C, y, labels, warnings); images are stretched to ``imgsz``.

    Example:
        x, y, labels, warnings = load_image_folder("flowers/", 64, "RGB")
    """
    root = Path(root)
    classes = class_folders(root)
    if len(classes) < 2:
        raise UsageError(f"{root} has {len(classes)} class folder(s); a classifier needs at "
                         "least 2", "put each class's images in its own sub-folder")
    images, targets, skipped, empty = [], [], [], []
    flag = cv2.IMREAD_GRAYSCALE if color == "GRAY" else cv2.IMREAD_COLOR
    for label, folder in enumerate(classes):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            empty.append(folder.name)
        for f in files:
            image = cv2.imread(str(f), flag)
            if image is None or image.size == 0:
                skipped.append(f.name)
                continue
            image = cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_AREA
                               if min(image.shape[:2]) > imgsz else cv2.INTER_LINEAR)
            if color == "GRAY":
                image = image[:, :, None]
            else:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            images.append(image)
            targets.append(label)
    warnings = []
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.append(f"skipped {len(skipped)} unreadable image file(s) in {root} ({shown})")
    if empty:
        warnings.append(f"class folder(s) without images: {', '.join(empty)}")
    present = len(set(targets))
    if present < 2:
        raise UsageError(f"{root} has readable images in {present} class folder(s); a "
                         "classifier needs at least 2", "check the images and the folder layout")
    return (np.stack(images), np.asarray(targets, dtype=np.int64),
            tuple(p.name for p in classes), warnings)
