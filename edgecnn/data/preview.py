"""``edgecnn data check --preview OUT.jpg``: a grid of a dataset's images with their boxes.

The labels are drawn with the camera's overlay (class colour and name per box), on the first
images of the training split followed by the validation split, so a wrong class mapping, boxes
shifted by a header mix-up or a split full of backgrounds shows at a glance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError

PREVIEW_IMAGES, COLUMNS, CELL = 16, 4, 320
_WRITABLE = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def preview_grid(dataset, count: int = PREVIEW_IMAGES, columns: int = COLUMNS,
                 cell: int = CELL) -> tuple[np.ndarray, int]:
    """``(grid image, images shown)``: the first ``count`` readable images with their boxes.

    Images that cannot be decoded are skipped (``data check --decode`` lists them).
    """
    from edgecnn.camera import still
    from edgecnn.camera.overlay import draw_detections
    from edgecnn.data.detection import ImageDecodeError, read_image
    from edgecnn.runtime.types import Category, Detection, Rect

    tiles: list[np.ndarray] = []
    for sample in (dataset.train + dataset.val):
        if len(tiles) >= count:
            break
        try:
            image = read_image(sample.image_path)
        except ImageDecodeError:
            continue
        boxes = [Detection(Rect(*map(float, box)),
                           Category(int(c), _name(dataset.names, c), 1.0))
                 for box, c in zip(sample.boxes, sample.classes)]
        canvas, factor = still.enlarge(image, cell)
        draw_detections(canvas, [still.scaled(b, factor) for b in boxes], show_score=False)
        tiles.append(canvas)
    if not tiles:
        raise UsageError("no image of the dataset could be decoded for the preview",
                         "run 'edgecnn data check SPEC --decode' to list the broken files")
    return still.grid(tiles, columns=columns, cell=cell), len(tiles)


def _name(names, index) -> str:
    i = int(index)
    return str(names[i]) if 0 <= i < len(names) else str(i)


def write_preview(dataset, path: str | os.PathLike, count: int = PREVIEW_IMAGES) -> int:
    """Write the preview grid to ``path`` (jpg/png/webp/bmp, atomically); returns the count."""
    import cv2

    from edgecnn.fsutil import record_output_file, write_atomic

    path = Path(path)
    if path.suffix.lower() not in _WRITABLE:
        raise UsageError(f"--preview {path}: cannot write {path.suffix or 'no extension'!r}",
                         "use a .jpg or .png file name")
    grid, shown = preview_grid(dataset, count)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(path.suffix.lower(), grid, params)
    if not ok:
        raise UsageError(f"OpenCV cannot encode {path.suffix} images", "use a .jpg or .png name")
    write_atomic(path, encoded.tobytes())
    record_output_file(path)
    return shown
