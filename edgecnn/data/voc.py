"""Pascal VOC datasets: ``Annotations/*.xml`` + ``JPEGImages/``.

Splits come from ``ImageSets/Main/train.txt`` and ``val.txt`` when both exist, otherwise a
seeded random split. VOC boxes are 1-based inclusive pixel indices; they become continuous
xyxy coordinates as ``(xmin - 1, ymin - 1, xmax, ymax)``. Objects marked ``difficult`` are
skipped (and counted), the same way the VOC and COCO evaluations ignore them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.detection import (
    DetectionDataset,
    DetectionSample,
    finish_report,
    probe_image,
    relative_name,
    sanitize_boxes,
    split_train_val,
)
from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES

NAME_FILES = ("labels.txt", "classes.txt")


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
    xmls = sorted(p for p in xml_dir.glob("*.xml") if not p.name.startswith("."))
    if not xmls:
        raise UsageError(f"{xml_dir} has no .xml files",
                         f"a VOC dataset needs one {annotations_dir}/<id>.xml per image")
    annotations = [a for a in (_parse_xml(x, root, image_dir, report) for x in xmls)
                   if a is not None]
    names = _class_names(root, names, annotations, xml_dir)
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


def _parse_xml(xml: Path, root: Path, image_dir: Path, report: LabelReport
               ) -> _Annotation | None:
    name = relative_name(xml, root)
    try:
        tree = ET.parse(xml).getroot()
    except (ET.ParseError, OSError):
        report.add(Problem.MALFORMED, name)
        return None
    filename = (tree.findtext("filename") or "").strip()
    image = _find_image(image_dir, Path(filename).name, xml.stem)
    size = None
    try:
        width = int(float(tree.findtext("size/width") or 0))
        height = int(float(tree.findtext("size/height") or 0))
        size = (width, height) if width > 0 and height > 0 else None
    except ValueError:
        report.add(Problem.MALFORMED, name)
    objects = []
    for obj in tree.iter("object"):
        try:
            label = (obj.findtext("name") or "").strip()
            difficult = int(float(obj.findtext("difficult") or 0)) == 1
            box = [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            report.add(Problem.MALFORMED, name)
            continue
        if not label or not np.isfinite(box).all():
            report.add(Problem.MALFORMED, name)
            continue
        objects.append((label, difficult, box))
    return _Annotation(xml, image, size, objects)


def _find_image(folder: Path, filename: str, stem: str) -> Path:
    if filename and (folder / filename).exists():
        return folder / filename
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return folder / (filename or f"{stem}.jpg")


def _class_names(root: Path, names, annotations: list[_Annotation], xml_dir: Path) -> list[str]:
    if names:
        return [str(n) for n in names]
    for fname in NAME_FILES:
        if (root / fname).is_file():
            listed = [ln.strip() for ln in (root / fname).read_text(encoding="utf-8").splitlines()
                      if ln.strip()]
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
    boxes, classes = [], []
    for label, difficult, (x1, y1, x2, y2) in ann.objects:
        if difficult:
            report.add(Problem.DIFFICULT, xml_name)
            continue
        boxes.append((x1 - 1, y1 - 1, x2, y2))
        classes.append(index.get(label, -1))  # -1 is counted as an unknown class below
    boxes, classes = sanitize_boxes(np.asarray(boxes, np.float32), np.asarray(classes),
                                    size[0], size[1], len(index), report, xml_name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, image_name)
    return DetectionSample(image_path=ann.image, boxes=boxes, classes=classes, width=size[0],
                           height=size[1])


def split_lists(root: Path, report: LabelReport, label_dir: Path,
                label_suffix: str = ".xml") -> dict[str, list[str]] | None:
    """The dataset's own split as image ids, from ``ImageSets/Main/{train,val}.txt`` or
    ``{train,val}.txt`` at the root (ids or file names, one a line); None when it has none.

    Listed ids without a label file are counted, not silently dropped.
    """
    for folder in (root / "ImageSets" / "Main", root):
        paths = {split: folder / f"{split}.txt" for split in ("train", "val")}
        if not all(p.is_file() for p in paths.values()):
            continue
        lists = {split: [Path(ln.split()[0]).stem for ln in
                         p.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
                 for split, p in paths.items()}
        for split, ids in lists.items():
            for image_id in ids:
                if not (label_dir / f"{image_id}{label_suffix}").exists():
                    report.add(Problem.MISSING_IMAGE,
                               f"{relative_name(paths[split], root)}:{image_id}")
        return lists
    return None


def _listed(samples: dict[str, DetectionSample], lists: dict[str, list[str]]):
    return ([samples[i] for i in lists["train"] if i in samples],
            [samples[i] for i in lists["val"] if i in samples])
