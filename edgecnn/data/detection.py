"""Detection datasets: common types, format dispatch and safe image reading.

``load_detection_dataset(SPEC)`` reads a YOLO ``data.yaml``, a Pascal VOC folder or a COCO json
into one shape: lists of :class:`DetectionSample` (image path, boxes in absolute pixel xyxy of
the original image, class indices) plus class names and a :class:`LabelReport` of everything
that was clipped, skipped or looked wrong. Only image headers are read at load time; pixels
are decoded later with :func:`read_image`.

Example:
    ds = load_detection_dataset("coco128/data.yaml")
    for sample in ds.train:
        image = read_image(sample.image_path)  # BGR uint8, raises ImageDecodeError
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgecnn import safeio
from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.imagesize import ImageHeaderError, image_size
from edgecnn.errors import UsageError
from edgecnn.images import FolderScan

if TYPE_CHECKING:  # edgecnn.data.loose imports this module
    from edgecnn.data.loose import LooseLayout

# Size limits of the files a dataset names: far above any real file of the kind, far below
# what would exhaust memory. A COCO json for all of COCO train2017 is 448 MB.
LABEL_FILE_LIMIT = 4 << 20       # one YOLO .txt or VOC .xml per image
LIST_FILE_LIMIT = 64 << 20       # train.txt / ImageSets lists of image paths
NAMES_FILE_LIMIT = 1 << 20       # classes.txt / labels.txt, data.yaml
JSON_FILE_LIMIT = 2 << 30        # COCO instances_*.json

# Boxes that leave the image by less than this many pixels are clipped without a report:
# that is rounding in the label file (e.g. normalized coordinates with 6 decimals), not an error.
OUTSIDE_TOLERANCE_PX = 1.0


@dataclass(frozen=True, eq=False)
class DetectionSample:
    """One image and its boxes.

    Attributes:
        image_path: absolute path of the image file.
        boxes: float32 (K, 4) ``x1, y1, x2, y2`` in pixels of the original (EXIF-rotated,
            as ``cv2.imread`` returns it) image; K may be 0 for a background image.
        classes: int32 (K,) class indices into the dataset's ``names``.
        width: image width in pixels.
        height: image height in pixels.
        image_id: the COCO image id when read from a COCO json, else None.
    """

    image_path: Path
    boxes: np.ndarray
    classes: np.ndarray
    width: int
    height: int
    image_id: int | None = None


@dataclass(frozen=True, eq=False)
class DetectionDataset:
    """Train and val samples of a detection dataset plus what the label check found.

    Attributes:
        train: training samples.
        val: validation samples (from the dataset's own split, or split off ``train``).
        names: class names; class index ``i`` is ``names[i]``.
        report: counts and file names of label problems.
        root: dataset root folder (file names in the report are relative to it).
        spec: the SPEC string the dataset was loaded from.
        format: ``"yolo"``, ``"voc"`` or ``"coco"``.
        category_ids: for COCO, the original category id of each class index (class ``i`` was
            category ``category_ids[i]``), so mAP can be reported in the source's ids; None for
            formats whose ids are already contiguous.
        own_val: whether ``val`` is the dataset's own split (False: drawn from ``train``).
    """

    train: list[DetectionSample]
    val: list[DetectionSample]
    names: tuple[str, ...]
    report: LabelReport
    root: Path
    spec: str
    format: str = ""
    category_ids: tuple[int, ...] | None = None
    own_val: bool = True      # False when val was drawn from train (the dataset names none)
    layout: str = ""          # the layout recognized, in words (shown by ``data check``)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def split(self, name: str) -> list[DetectionSample]:
        """``"train"``, ``"val"`` or ``"all"`` (train followed by val)."""
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        if name == "all":
            return self.train + self.val
        raise UsageError(f"unknown split {name!r}", "use train, val or all")


class ImageDecodeError(ValueError):
    """An image file is missing or cannot be decoded; callers count it and move on."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_image(path: str | Path, gray: bool = False) -> np.ndarray:
    """Decode an image to BGR uint8 (H, W, 3), or (H, W) with ``gray``, applying EXIF
    orientation like cv2.imread.

    Never crashes, hangs or exhausts memory on a bad file (:func:`edgecnn.predict.read_bgr`:
    a FIFO or device is not opened, a header over the pixel limit is not decoded); any
    failure becomes :class:`ImageDecodeError`.
    """
    from edgecnn.predict import read_bgr

    try:
        return read_bgr(Path(path), gray=gray)
    except ValueError as err:
        raise ImageDecodeError(path, str(err)) from None


def load_detection_dataset(spec: str | Path, split_val: float = 0.1, seed: int = 0,
                           strict: bool = False, images: str | Path | None = None,
                           names: list[str] | tuple[str, ...] | None = None) -> DetectionDataset:
    """Read a YOLO, Pascal VOC or COCO dataset, or a loose ``images/`` + ``annots/`` folder.

    Args:
        spec: a YOLO ``data.yaml`` (or a folder holding one), a VOC folder (``Annotations/`` +
            ``JPEGImages/``, optional ``ImageSets/Main/{train,val}.txt``), a COCO json, a
            folder with ``annotations/instances_{train,val}*.json``, or a loose folder
            (``images/`` beside ``annots/``, ``annotations/`` or ``labels/`` of .xml or .txt
            files; :mod:`edgecnn.data.loose`).
        split_val: fraction of the training images used for validation when the dataset has no
            val split of its own.
        seed: seed of that split.
        strict: raise a UsageError on any label problem instead of clipping/skipping.
        images: COCO only: folder holding the images named by ``file_name``.
        names: VOC and loose only: class names in order (default: ``labels.txt`` /
            ``classes.txt`` in the root, else every name found, sorted).

    Raises:
        UsageError: the spec points nowhere, has no images, or (strict) has label problems.
    """
    path = safeio.user_path(str(spec))
    if not path.exists():
        raise UsageError(f"dataset {spec} not found",
                         "give a YOLO data.yaml, a VOC folder or a COCO json")
    found = _detect_format(path)
    if found[0] == "yolo":
        from edgecnn.data.yolo import read_yolo
        dataset = read_yolo(found[1], spec=str(spec), split_val=split_val, seed=seed)
    elif found[0] == "voc":
        from edgecnn.data.voc import read_voc
        dataset = read_voc(found[1], spec=str(spec), split_val=split_val, seed=seed, names=names)
    elif found[0] == "loose":
        from edgecnn.data.loose import read_loose
        dataset = read_loose(found[1], spec=str(spec), split_val=split_val, seed=seed,
                             names=names)
    else:
        from edgecnn.data.coco import read_coco
        dataset = read_coco(found[1], spec=str(spec), split_val=split_val, seed=seed,
                            images=images)
    if not dataset.train:
        raise UsageError(f"dataset {spec} has no usable training images",
                         "check the image paths; `edgecnn data check` lists what was skipped")
    if strict:
        dataset.report.raise_if_problems(str(spec))
    return dataset


# (format, what its reader takes): a data.yaml or VOC root, COCO json(s), a loose layout.
_Format = (tuple[Literal["yolo", "voc"], Path] | tuple[Literal["coco"], Path | list[Path]]
           | tuple[Literal["loose"], "LooseLayout"])


def _detect_format(path: Path) -> _Format:
    if not path.is_dir() and not safeio.is_regular_file(path):
        try:
            safeio.open_regular(path).close()   # raises with what it is instead
        except OSError as err:
            raise UsageError(f"dataset {path}: {safeio.reason(err)}",
                             "give a YOLO data.yaml, a VOC folder or a COCO json") from None
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo", path
        if path.suffix.lower() == ".json":
            return "coco", path
        raise UsageError(f"{path} is not a dataset spec",
                         "give a YOLO data.yaml, a VOC folder or a COCO .json")
    yamls = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
    preferred = [p for p in yamls if p.stem == "data"]
    if preferred or len(yamls) == 1:
        return "yolo", (preferred or yamls)[0]
    for voc in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        # Annotations/ beside images/ (not JPEGImages/) is the loose layout, read below.
        if (voc / "Annotations").is_dir() and not (voc / "images").is_dir():
            return "voc", voc
    jsons = sorted((path / "annotations").glob("instances_*.json")) if (
        path / "annotations").is_dir() else []
    jsons = jsons or sorted(path.glob("instances_*.json"))
    if jsons:
        return "coco", jsons
    from edgecnn.data.loose import find_loose_layout

    for root in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        layout = find_loose_layout(root)
        if layout is not None:
            return "loose", layout
    raise UsageError(f"cannot tell the dataset format of folder {path}",
                     "expected data.yaml (YOLO), Annotations/ + JPEGImages/ (VOC), "
                     "annotations/instances_*.json (COCO), or images/ beside annots/, "
                     "annotations/ or labels/ holding .xml or .txt labels")


# --- helpers shared by the readers -----------------------------------------------------------

def relative_name(path: Path, root: Path) -> str:
    """A file name for reports: relative to the dataset root when inside it."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    if text.startswith(prefix):  # the common case, without a syscall per file
        return text[len(prefix):]
    try:
        return str(safeio.resolved(path).relative_to(safeio.resolved(root)))
    except ValueError:
        return text


def probe_image(path: Path, report: LabelReport, name: str) -> tuple[int, int] | None:
    """Image size from its header, or None after counting it as missing/unreadable."""
    try:
        return image_size(path)
    except FileNotFoundError:
        report.add(Problem.MISSING_IMAGE, name)
    except safeio.NotRegularFileError:
        report.add(Problem.NOT_REGULAR, name)
    except (ImageHeaderError, OSError):
        report.add(Problem.UNREADABLE_IMAGE, name)
    return None


def read_label_text(path: Path, report: LabelReport, name: str) -> str:
    """The text of a per-image label file; "" when there is none (a background image).

    What cannot be read is counted (FIFO or device, over :data:`LABEL_FILE_LIMIT`, unreadable)
    and read as empty; text that is not UTF-8 is read as Latin-1 and counted.
    """
    try:
        text, encoding = safeio.read_text(path, LABEL_FILE_LIMIT)
    except FileNotFoundError:
        return ""
    except safeio.NotRegularFileError:
        report.add(Problem.NOT_REGULAR, name)
        return ""
    except safeio.FileTooLargeError:
        report.add(Problem.TOO_LARGE, name)
        return ""
    except OSError:
        report.add(Problem.MALFORMED, name)
        return ""
    if encoding == "latin-1":
        report.add(Problem.NOT_UTF8, name)
    return text


def read_text_file(path: Path, limit: int, what: str, report: LabelReport | None = None,
                   name: str = "") -> str:
    """A file the whole dataset depends on (data.yaml, a split list, a names file): any
    failure to read it is one UsageError naming it; Latin-1 text is counted in ``report``."""
    try:
        text, encoding = safeio.read_text(path, limit)
    except OSError as err:
        raise UsageError(f"cannot read {what} {safeio.describe(path)}: {safeio.reason(err)}",
                         "give a regular text file") from None
    if encoding == "latin-1" and report is not None:
        report.add(Problem.NOT_UTF8, name or str(path))
    return text


def names_from_file(root: Path, candidates: tuple[str, ...], report: LabelReport
                    ) -> list[str] | None:
    """Class names, one a line, from the first of ``candidates`` in ``root`` that lists any."""
    for fname in candidates:
        path = root / fname
        if safeio.exists(path):     # a FIFO or folder by that name is refused, not passed over
            text = read_text_file(path, NAMES_FILE_LIMIT, "the class names file", report, fname)
            listed = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if listed:
                return listed
    return None


def count_scan(scan: FolderScan, root: Path, report: LabelReport) -> None:
    """Count what an image-folder scan passed over, by file: hidden entries, files of other
    formats, FIFOs/devices/dangling links."""
    for kind, paths in ((Problem.HIDDEN, scan.hidden), (Problem.NOT_IMAGE, scan.other),
                        (Problem.NOT_REGULAR, scan.special)):
        for path in paths:
            report.add(kind, relative_name(path, root))


def clean_lines(text: str, report: LabelReport, name: str) -> list[str]:
    """Non-empty stripped lines of a list file; lines with a NUL byte (no such path can exist)
    are counted as malformed."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if "\x00" in line:
            report.add(Problem.MALFORMED, name)
        elif line:
            lines.append(line)
    return lines


def sanitize_boxes(boxes: np.ndarray, classes: np.ndarray, width: int, height: int,
                   num_classes: int, report: LabelReport, name: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and drop unknown classes and zero-area boxes, counting each.

    Args:
        boxes: (K, 4) pixel xyxy.
        classes: (K,) integer class ids (may be out of range).
        name: file name used in the report.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)   # float32 after clipping
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    known = (classes >= 0) & (classes < num_classes)
    if not known.all():
        report.add(Problem.UNKNOWN_CLASS, name, int((~known).sum()))
        boxes, classes = boxes[known], classes[known]
    limits = np.array([width, height, width, height], dtype=np.float64)
    outside = ((boxes[:, :2] < -OUTSIDE_TOLERANCE_PX).any(axis=1)
               | (boxes[:, 2:] > limits[2:] + OUTSIDE_TOLERANCE_PX).any(axis=1))
    if outside.any():
        report.add(Problem.BOX_OUTSIDE, name, int(outside.sum()))
    boxes = np.clip(boxes, 0.0, limits)
    area_ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not area_ok.all():
        report.add(Problem.ZERO_AREA, name, int((~area_ok).sum()))
        boxes, classes = boxes[area_ok], classes[area_ok]
    return boxes.astype(np.float32), classes.astype(np.int32)


def split_train_val(samples: list[DetectionSample], split_val: float, seed: int
                    ) -> tuple[list[DetectionSample], list[DetectionSample]]:
    """Deterministic random split; keeps at least one training image."""
    if not 0.0 <= split_val < 1.0:
        raise UsageError(f"split_val must be in [0, 1), got {split_val}")
    n_val = int(round(len(samples) * split_val))
    if split_val > 0 and len(samples) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(len(samples) - 1, 0))
    order = np.random.default_rng(seed).permutation(len(samples))
    val_idx = set(order[:n_val].tolist())
    train = [s for i, s in enumerate(samples) if i not in val_idx]
    val = [s for i, s in enumerate(samples) if i in val_idx]
    return train, val


def finish_report(report: LabelReport, train: list[DetectionSample], val: list[DetectionSample],
                  num_classes: int) -> None:
    """Fill per-split image/box totals and per-class box counts."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for split, samples in (("train", train), ("val", val)):
        report.images[split] = len(samples)
        report.boxes[split] = int(sum(len(s.classes) for s in samples))
        for s in samples:
            counts += np.bincount(s.classes, minlength=num_classes)[:num_classes]
    report.class_counts = counts.tolist()


def check_dataset(spec: str | Path, images: str | Path | None = None, decode: bool = False
                  ) -> DetectionDataset:
    """Load a dataset for ``edgecnn data check``; ``decode`` also decodes every image.

    A header can be intact while the pixel data is corrupt, so ``decode=True`` reads each image
    fully and counts failures as ``unreadable_image``.
    """
    dataset = load_detection_dataset(spec, images=images)
    if decode:
        for sample in dataset.train + dataset.val:
            try:
                image = read_image(sample.image_path)
            except ImageDecodeError:
                dataset.report.add(Problem.UNREADABLE_IMAGE,
                                   relative_name(sample.image_path, dataset.root))
                continue
            if image.shape[:2] != (sample.height, sample.width):
                dataset.report.add(Problem.SIZE_MISMATCH,
                                   relative_name(sample.image_path, dataset.root))
    return dataset
