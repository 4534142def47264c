"""The loose layouts small real datasets ship in: ``images/`` beside an annotation folder.

``images/`` (or ``JPEGImages/``) next to ``annots/``, ``annotations/`` or ``Annotations/`` (or
``labels/``) holding one Pascal VOC ``.xml`` or one YOLO ``.txt`` per image, with no
``data.yaml`` and no ImageSets, as e.g. the kangaroo dataset is published. The split comes from
``train.txt`` / ``val.txt`` (or ``ImageSets/Main/``) when present, else a seeded random split.
YOLO class names come from ``classes.txt`` / ``labels.txt`` / ``names.txt`` at the root, else
the ids themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.detection import (
    DetectionDataset,
    DetectionSample,
    count_scan,
    finish_report,
    names_from_file,
    probe_image,
    read_label_text,
    relative_name,
    sanitize_boxes,
    split_train_val,
)
from edgecnn.errors import UsageError
from edgecnn.images import scan_images

IMAGE_DIRS = ("images", "JPEGImages", "Images")
LABEL_DIRS = ("annots", "annotations", "Annotations", "annotation", "labels")
NAME_FILES = ("classes.txt", "labels.txt", "names.txt")
# Without a names file the classes are the ids found; an id above this is a typo or an attack
# (range(2**31) names), so a names file is asked for instead.
MAX_IMPLICIT_CLASSES = 1000


@dataclass(frozen=True)
class LooseLayout:
    """Where the images and labels of a loose dataset are, and what the labels are."""

    root: Path
    images: str          # folder name inside root
    labels: str          # folder name inside root
    kind: str            # "xml" (Pascal VOC) or "txt" (YOLO)

    def describe(self) -> str:
        what = "Pascal VOC xml" if self.kind == "xml" else "YOLO txt"
        return f"{what} in {self.labels}/ beside {self.images}/"


def find_loose_layout(root: Path) -> LooseLayout | None:
    """The loose layout of ``root``, or None when it is not one."""
    images = next((d for d in IMAGE_DIRS if (root / d).is_dir()), None)
    if images is None:
        return None
    for labels in LABEL_DIRS:
        folder = root / labels
        if not folder.is_dir() or labels == images:
            continue
        names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        if any(n.endswith(".xml") for n in names):
            return LooseLayout(root, images, labels, "xml")
        if any(n.endswith(".txt") and n not in NAME_FILES for n in names):
            return LooseLayout(root, images, labels, "txt")
    return None


def read_loose(layout: LooseLayout, spec: str, split_val: float = 0.1, seed: int = 0,
               names: list[str] | tuple[str, ...] | None = None) -> DetectionDataset:
    """Read a loose dataset; raises UsageError when it holds nothing usable."""
    if layout.kind == "xml":
        from edgecnn.data.voc import read_voc

        return read_voc(layout.root, spec=spec, split_val=split_val, seed=seed, names=names,
                        annotations_dir=layout.labels, images_dir=layout.images,
                        layout=layout.describe())
    return _read_txt(layout, spec, split_val, seed, names)


def _read_txt(layout: LooseLayout, spec: str, split_val: float, seed: int,
              names) -> DetectionDataset:
    from edgecnn.data.voc import split_lists
    from edgecnn.data.yolo import parse_label_text

    root = layout.root.resolve()
    report = LabelReport()
    image_dir, label_dir = root / layout.images, root / layout.labels
    scan = scan_images(image_dir)
    count_scan(scan, root, report)
    images = scan.images
    if not images:
        raise UsageError(f"{image_dir} has no images", "put the images into it")
    samples: dict[str, DetectionSample] = {}
    parsed = []
    stems: set[str] = set()
    for image in images:
        if image.stem in stems:       # a.jpg and a.png would share a.txt
            report.add(Problem.DUPLICATE, relative_name(image, root))
            continue
        stems.add(image.stem)
        label = label_dir / f"{image.stem}.txt"
        size = probe_image(image, report, relative_name(image, root))
        if size is None:
            continue
        text = read_label_text(label, report, relative_name(label, root))
        boxes, classes = parse_label_text(text, size[0], size[1], report,
                                          relative_name(label, root))
        parsed.append((image, label, size, boxes, classes))
    class_names = _txt_names(root, names, parsed, report)
    for image, label, size, boxes, classes in parsed:
        boxes, classes = sanitize_boxes(boxes, classes, size[0], size[1], len(class_names),
                                        report, relative_name(label, root))
        if len(classes) == 0:
            report.add(Problem.BACKGROUND, relative_name(image, root))
        samples[image.stem] = DetectionSample(image_path=image, boxes=boxes, classes=classes,
                                              width=size[0], height=size[1])
    lists = split_lists(root, report, label_dir, ".txt")
    if lists:
        train = [samples[i] for i in lists["train"] if i in samples]
        val = [samples[i] for i in lists["val"] if i in samples]
    else:
        train, val = split_train_val(list(samples.values()), split_val, seed)
    finish_report(report, train, val, len(class_names))
    return DetectionDataset(train=train, val=val, names=tuple(class_names), report=report,
                            root=root, spec=spec, format="yolo", own_val=lists is not None,
                            layout=layout.describe())


def _txt_names(root: Path, names, parsed, report: LabelReport) -> list[str]:
    if names:
        return [str(n) for n in names]
    listed = names_from_file(root, NAME_FILES, report)
    if listed:
        return listed
    top = max((int(c.max()) for *_, c in parsed if len(c)), default=-1)
    if top < 0:
        raise UsageError(f"no labelled objects in {root}",
                         "label some objects, or give class names in classes.txt")
    if top >= MAX_IMPLICIT_CLASSES:
        raise UsageError(f"class id {top} in the labels of {root}, and no classes.txt",
                         "list the class names in classes.txt, one a line")
    return [str(i) for i in range(top + 1)]
