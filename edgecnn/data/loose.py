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
    finish_report,
    probe_image,
    relative_name,
    sanitize_boxes,
    split_train_val,
)
from edgecnn.errors import UsageError
from edgecnn.images import is_image_file

IMAGE_DIRS = ("images", "JPEGImages", "Images")
LABEL_DIRS = ("annots", "annotations", "Annotations", "annotation", "labels")
NAME_FILES = ("classes.txt", "labels.txt", "names.txt")


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
        if any(p.suffix == ".xml" for p in folder.iterdir()):
            return LooseLayout(root, images, labels, "xml")
        if any(p.suffix == ".txt" and p.name not in NAME_FILES for p in folder.iterdir()):
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
    images = sorted(p for p in image_dir.iterdir() if is_image_file(p))
    if not images:
        raise UsageError(f"{image_dir} has no images", "put the images into it")
    samples: dict[str, DetectionSample] = {}
    parsed = []
    for image in images:
        label = label_dir / f"{image.stem}.txt"
        size = probe_image(image, report, relative_name(image, root))
        if size is None:
            continue
        text = _read_label(label, report, relative_name(label, root))
        boxes, classes = parse_label_text(text, size[0], size[1], report,
                                          relative_name(label, root))
        parsed.append((image, label, size, boxes, classes))
    class_names = _txt_names(root, names, parsed)
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


def _read_label(path: Path, report: LabelReport, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        return ""
    except OSError:
        report.add(Problem.MALFORMED, name)
        return ""


def _txt_names(root: Path, names, parsed) -> list[str]:
    if names:
        return [str(n) for n in names]
    for fname in NAME_FILES:
        if (root / fname).is_file():
            listed = [ln.strip() for ln in (root / fname).read_text(encoding="utf-8",
                                                                     errors="replace")
                      .splitlines() if ln.strip()]
            if listed:
                return listed
    top = max((int(c.max()) for *_, c in parsed if len(c)), default=-1)
    if top < 0:
        raise UsageError(f"no labelled objects in {root}",
                         "label some objects, or give class names in classes.txt")
    return [str(i) for i in range(top + 1)]
