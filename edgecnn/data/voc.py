"""Pascal VOC datasets: ``Annotations/*.xml`` + ``JPEGImages/``.

Splits come from ``ImageSets/Main/train.txt`` and ``val.txt`` when both exist, otherwise a
seeded random split. VOC boxes are 1-based inclusive pixel indices; they become continuous
xyxy coordinates as ``(xmin - 1, ymin - 1, xmax, ymax)``. Objects marked ``difficult`` are
skipped (and counted), the same way the VOC and COCO evaluations ignore them.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edgecnn import safeio
from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.detection import (
    LABEL_FILE_LIMIT,
    LIST_FILE_LIMIT,
    DetectionDataset,
    DetectionSample,
    clean_lines,
    finish_report,
    names_from_file,
    probe_image,
    read_text_file,
    relative_name,
    sanitize_boxes,
    split_train_val,
)
from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES, scan_images

NAME_FILES = ("labels.txt", "classes.txt")
MAX_SIDE = 1 << 20   # an annotated image side above this is not a size; counted as malformed


class _Annotation:
    __slots__ = ("xml", "image", "size", "objects")

    def __init__(self, xml: Path, image: Path, size: tuple[int, int] | None, objects: list):
        self.xml, self.image, self.size, self.objects = xml, image, size, objects


def read_voc(root: Path, spec: str, split_val: float = 0.1, seed: int = 0,
             names: list[str] | tuple[str, ...] | None = None, annotations_dir: str = "Annotations",
             images_dir: str = "JPEGImages", layout: str = "") -> DetectionDataset:
    """Read a VOC folder (see the module docstring).

    Args:
        names: class names in order; default ``labels.txt``/``classes.txt`` in ``root`` (one
            name a line), else every object name found, sorted.
        annotations_dir, images_dir: the xml and image folders inside ``root`` (the loose
            ``images/`` + ``annots/`` layout of small real datasets uses other names).
        layout: how the layout is described to the user (``data check``).
    """
    root = root.resolve()
    report = LabelReport()
    xml_dir, image_dir = root / annotations_dir, root / images_dir
    xmls = _xml_files(xml_dir, root, report)
    if not xmls:
        raise UsageError(f"{xml_dir} has no .xml files",
                         f"a VOC dataset needs one {annotations_dir}/<id>.xml per image")
    annotations = [a for a in (_parse_xml(x, root, image_dir, report) for x in xmls)
                   if a is not None]
    names = _class_names(root, names, annotations, xml_dir, report)
    index = {n: i for i, n in enumerate(names)}
    samples: dict[str, DetectionSample] = {}
    for ann in annotations:
        sample = _to_sample(ann, root, index, report)
        if sample is not None:
            samples[ann.xml.stem] = sample
    lists = split_lists(root, report, xml_dir)
    train, val = (_listed(samples, lists) if lists
                  else split_train_val(list(samples.values()), split_val, seed))
    finish_report(report, train, val, len(names))
    return DetectionDataset(train=train, val=val, names=tuple(names), report=report, root=root,
                            spec=spec, format="voc", own_val=lists is not None,
                            layout=layout or "Pascal VOC (Annotations/ + JPEGImages/)")


def _xml_files(xml_dir: Path, root: Path, report: LabelReport) -> list[Path]:
    """The .xml files of the annotation folder; hidden ones and FIFOs/devices are counted."""
    scan = scan_images(xml_dir)
    for path in scan.hidden:
        report.add(Problem.HIDDEN, relative_name(path, root))
    for path in scan.special:
        if path.suffix.lower() == ".xml":
            report.add(Problem.NOT_REGULAR, relative_name(path, root))
    return [p for p in scan.other if p.suffix.lower() == ".xml"]


def _parse_xml(xml: Path, root: Path, image_dir: Path, report: LabelReport
               ) -> _Annotation | None:
    name = relative_name(xml, root)
    tree = _read_xml(xml, report, name)
    if tree is None:
        return None
    filename = (tree.findtext("filename") or "").strip()
    image = _find_image(image_dir, Path(filename).name, xml.stem)
    width, height = _side(tree.findtext("size/width")), _side(tree.findtext("size/height"))
    if width is None or height is None:
        report.add(Problem.MALFORMED, name)
    size = (width, height) if width and height else None
    objects = []
    for obj in tree.iter("object"):
        label = (obj.findtext("name") or "").strip()
        difficult = _number(obj.findtext("difficult") or "0")
        box = [_number(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        if not label or difficult is None or None in box:
            report.add(Problem.MALFORMED, name)
            continue
        objects.append((label, difficult == 1, box))
    return _Annotation(xml, image, size, objects)


def _read_xml(xml: Path, report: LabelReport, name: str) -> ET.Element | None:
    """The parsed file, or None after counting why not. An xml without an encoding
    declaration that is not UTF-8 (Latin-1 from old tools) is read as Latin-1 and counted."""
    try:
        data = safeio.read_bytes(xml, LABEL_FILE_LIMIT)
    except safeio.NotRegularFileError:
        report.add(Problem.NOT_REGULAR, name)
        return None
    except safeio.FileTooLargeError:
        report.add(Problem.TOO_LARGE, name)
        return None
    except OSError:
        report.add(Problem.MALFORMED, name)
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        text, encoding = safeio.decode_text(data)
        if encoding != "latin-1":
            report.add(Problem.MALFORMED, name)
            return None
    try:
        tree = ET.fromstring(text)
    except ET.ParseError:
        report.add(Problem.MALFORMED, name)
        return None
    report.add(Problem.NOT_UTF8, name)
    return tree


def _number(text: str | None) -> float | None:
    """A finite number from an xml field, else None (missing, text, NaN, inf)."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _side(text: str | None) -> int | None:
    """An annotated image side: 0 when absent (no size given), None when it is not a size."""
    if text is None or not text.strip():
        return 0
    value = _number(text)
    if value is None or not 0 <= value <= MAX_SIDE:
        return None
    return int(value)


def _find_image(folder: Path, filename: str, stem: str) -> Path:
    if filename and safeio.exists(folder / filename):
        return folder / filename
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if safeio.exists(candidate):
            return candidate
    return folder / (filename or f"{stem}.jpg")


def _class_names(root: Path, names, annotations: list[_Annotation], xml_dir: Path,
                 report: LabelReport) -> list[str]:
    if names:
        return [str(n) for n in names]
    listed = names_from_file(root, NAME_FILES, report)
    if listed:
        return listed
    found = sorted({label for ann in annotations for label, _, _ in ann.objects})
    if not found:
        raise UsageError(f"no objects in {xml_dir}",
                         "label some objects, or give class names in labels.txt")
    return found


def _to_sample(ann: _Annotation, root: Path, index: dict[str, int], report: LabelReport
               ) -> DetectionSample | None:
    image_name = relative_name(ann.image, root)
    xml_name = relative_name(ann.xml, root)
    size = probe_image(ann.image, report, image_name)
    if size is None:
        return None
    if ann.size is not None and ann.size != size:
        report.add(Problem.SIZE_MISMATCH, xml_name)
    raw_boxes, raw_classes = [], []
    for label, difficult, (x1, y1, x2, y2) in ann.objects:
        if difficult:
            report.add(Problem.DIFFICULT, xml_name)
            continue
        raw_boxes.append((x1 - 1, y1 - 1, x2, y2))
        raw_classes.append(index.get(label, -1))  # -1 is counted as an unknown class below
    boxes, classes = sanitize_boxes(np.asarray(raw_boxes, np.float64), np.asarray(raw_classes),
                                    size[0], size[1], len(index), report, xml_name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, image_name)
    return DetectionSample(image_path=ann.image, boxes=boxes, classes=classes, width=size[0],
                           height=size[1])


def split_lists(root: Path, report: LabelReport, label_dir: Path,
                label_suffix: str = ".xml") -> dict[str, list[str]] | None:
    """The dataset's own split as image ids, from ``ImageSets/Main/{train,val}.txt`` or
    ``{train,val}.txt`` at the root (ids or file names, one a line); None when it has none.

    Listed ids without a label file are counted, not silently dropped; an id listed twice
    (in one list, or in both) is counted and kept only where it first appears, train first,
    so no image is both trained and validated on.
    """
    for folder in (root / "ImageSets" / "Main", root):
        paths = {split: folder / f"{split}.txt" for split in ("train", "val")}
        if not all(safeio.is_regular_file(p) for p in paths.values()):
            continue
        lists: dict[str, list[str]] = {}
        seen: set[str] = set()
        for split, path in paths.items():
            name = relative_name(path, root)
            text = read_text_file(path, LIST_FILE_LIMIT, "the split list", report, name)
            lists[split] = []
            for line in clean_lines(text, report, name):
                image_id = Path(line.split()[0]).stem
                if image_id in seen:
                    report.add(Problem.DUPLICATE, f"{name}:{image_id}")
                    continue
                seen.add(image_id)
                lists[split].append(image_id)
                if not safeio.exists(label_dir / f"{image_id}{label_suffix}"):
                    report.add(Problem.MISSING_IMAGE, f"{name}:{image_id}")
        return lists
    return None


def _listed(samples: dict[str, DetectionSample], lists: dict[str, list[str]]):
    return ([samples[i] for i in lists["train"] if i in samples],
            [samples[i] for i in lists["val"] if i in samples])
