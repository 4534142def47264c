"""Ultralytics YOLO datasets: ``data.yaml`` plus one ``.txt`` label file per image.

``data.yaml`` keys: ``path`` (root; relative to the yaml's folder, default that folder),
``train`` / ``val`` (a folder of images, a ``.txt`` list of image paths, or a list of either),
``names`` (a list, or a dict ``{id: name}``) and optionally ``nc``. Labels live next to the
images by the Ultralytics rule: the last ``/images/`` of the image path becomes ``/labels/``
and the suffix ``.txt``. Each label line is ``class cx cy w h`` normalized to [0, 1]; a longer
line ``class x1 y1 x2 y2 ...`` is a segment polygon and becomes its bounding box.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np

from edgecnn import safeio
from edgecnn.data import safeyaml
from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.detection import (
    LIST_FILE_LIMIT,
    NAMES_FILE_LIMIT,
    DetectionDataset,
    DetectionSample,
    clean_lines,
    count_scan,
    finish_report,
    probe_image,
    read_label_text,
    read_text_file,
    relative_name,
    sanitize_boxes,
    split_train_val,
)
from edgecnn.errors import UsageError
from edgecnn.images import IMAGE_SUFFIXES, scan_images

# Class ids are small integers; a larger value is an unknown class, never an overflow.
MAX_CLASS_ID = 1 << 31


def read_yolo(yaml_path: Path, spec: str, split_val: float = 0.1, seed: int = 0
              ) -> DetectionDataset:
    """Read a YOLO dataset described by ``yaml_path`` (see the module docstring)."""
    report = LabelReport()
    config = _load_yaml(yaml_path, report)
    root = _resolve_root(yaml_path, config.get("path"))
    names = _names(config, yaml_path)
    if "train" not in config or config["train"] in (None, ""):
        raise UsageError(f"{yaml_path} has no 'train' entry",
                         "add e.g. 'train: images/train' to the data.yaml")
    train = _read_split(config["train"], "train", root, yaml_path, names, report)
    if config.get("val") not in (None, ""):
        val = _read_split(config["val"], "val", root, yaml_path, names, report)
    else:
        train, val = split_train_val(train, split_val, seed)
    finish_report(report, train, val, len(names))
    return DetectionDataset(train=train, val=val, names=names, report=report, root=root,
                            spec=spec, format="yolo",
                            own_val=config.get("val") not in (None, ""),
                            layout=f"YOLO ({yaml_path.name})")


def label_path_for(image_path: Path) -> Path:
    """The Ultralytics images->labels rule: ``.../images/a/b.jpg`` -> ``.../labels/a/b.txt``."""
    text = str(image_path)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        text = labels.join(text.rsplit(images, 1))
    return Path(text).with_suffix(".txt")


def parse_label_text(text: str, width: int, height: int, report: LabelReport, name: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Parse YOLO label lines into pixel xyxy boxes and raw class ids (unchecked range)."""
    boxes, classes = [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            report.add(Problem.EMPTY_LINE, name)
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            report.add(Problem.MALFORMED, name)
            continue
        cls = values[0]
        if not all(math.isfinite(v) for v in values) or cls != int(cls):
            report.add(Problem.MALFORMED, name)
            continue
        if not -MAX_CLASS_ID < cls < MAX_CLASS_ID:
            cls = -1      # counted as an unknown class by sanitize_boxes
        if len(values) == 5:
            cx, cy, w, h = values[1:]
            if w < 0 or h < 0:
                report.add(Problem.MALFORMED, name)
                continue
            box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        elif len(values) >= 7 and len(values) % 2 == 1:
            xs, ys = values[1::2], values[2::2]
            box = (min(xs), min(ys), max(xs), max(ys))
            report.add(Problem.POLYGON, name)
        else:
            report.add(Problem.MALFORMED, name)
            continue
        boxes.append((box[0] * width, box[1] * height, box[2] * width, box[3] * height))
        classes.append(int(cls))
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            np.asarray(classes, dtype=np.int64))


def _load_yaml(path: Path, report: LabelReport) -> dict:
    text = read_text_file(path, NAMES_FILE_LIMIT, "the data.yaml", report, path.name)
    config = safeyaml.load(text, str(path))
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a YOLO data.yaml (expected a mapping with train/val/names)")
    return config


def _path_text(value, yaml_path: Path, key: str) -> str:
    """A path entry of the data.yaml as text; lists, mappings and NUL bytes are refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)   # "train: 2017" is a folder name
    if not isinstance(value, str) or "\x00" in value:
        raise UsageError(f"{yaml_path}: {key} must be a path, got {_short(value)}",
                         "write a folder or .txt list, relative to 'path'")
    return value


def _short(value) -> str:
    text = repr(value) if not isinstance(value, (list, dict)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve_root(yaml_path: Path, path_entry) -> Path:
    base = yaml_path.resolve().parent
    if path_entry in (None, ""):
        return base
    root = safeio.user_path(_path_text(path_entry, yaml_path, "path"))
    if root.is_absolute():
        resolved = root
    elif safeio.exists(base / root) or not safeio.exists(root):
        resolved = safeio.resolved(base / root)
    else:  # relative to the working directory, as some hand-written yamls assume
        resolved = safeio.resolved(root)
    info = safeio.file_status(resolved)
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{yaml_path}: path: {path_entry} points nowhere ({resolved})",
                         "fix 'path' in the data.yaml (relative paths start at its folder)")
    return resolved


def _names(config: dict, yaml_path: Path) -> tuple[str, ...]:
    raw = config.get("names")
    nc = config.get("nc")
    if isinstance(nc, bool) or (nc is not None and not isinstance(nc, int)):
        raise UsageError(f"{yaml_path}: nc must be a whole number, got {_short(nc)}")
    if isinstance(raw, dict):
        keys = [_class_key(k) for k in raw]
        ids = [k for k in keys if k is not None]
        if len(ids) != len(keys):
            raise UsageError(f"{yaml_path}: names keys must be class ids 0..N-1")
        mapping = dict(zip(ids, (_name_text(v, yaml_path) for v in raw.values())))
        if sorted(mapping) != list(range(len(mapping))):
            raise UsageError(f"{yaml_path}: names ids must be 0..{len(mapping) - 1} without gaps",
                             "renumber the names mapping")
        names = tuple(mapping[i] for i in range(len(mapping)))
    elif isinstance(raw, (list, tuple)):
        names = tuple(_name_text(n, yaml_path) for n in raw)
    elif raw is None and isinstance(nc, int) and 0 < nc <= MAX_CLASS_ID:
        names = tuple(f"class{i}" for i in range(min(nc, 1_000_000)))
    else:
        raise UsageError(f"{yaml_path} has no class names", "add 'names: [a, b, ...]'")
    if not names:
        raise UsageError(f"{yaml_path} has an empty names list")
    if nc is not None and nc != len(names):
        raise UsageError(f"{yaml_path}: nc is {nc} but names lists {len(names)} classes",
                         "make nc match names (or remove nc)")
    return names


def _class_key(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
        value = int(key)
        return value if value < MAX_CLASS_ID else None
    return None


def _name_text(value, yaml_path: Path) -> str:
    """A class name: a string or a number, never a list or mapping (nor an alias bomb)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    raise UsageError(f"{yaml_path}: a class name is a {type(value).__name__}, not a name",
                     "write names as plain text: names: [cat, dog]")


def _read_split(entry, split: str, root: Path, yaml_path: Path, names: tuple[str, ...],
                report: LabelReport) -> list[DetectionSample]:
    entries = entry if isinstance(entry, (list, tuple)) else [entry]
    image_paths: list[Path] = []
    folders: list[Path] = []
    for item in entries:
        target = safeio.user_path(_path_text(item, yaml_path, split))
        target = target if target.is_absolute() else root / target
        info = safeio.file_status(target)
        if info is not None and stat.S_ISDIR(info.st_mode):
            folders.append(target)
            scan = scan_images(target, recursive=True, ignore=(".txt",))
            count_scan(scan, root, report)
            image_paths += scan.images
        elif info is not None and stat.S_ISREG(info.st_mode) and target.suffix.lower() == ".txt":
            image_paths += _read_list_file(target, root, report)
        else:
            raise UsageError(f"{yaml_path}: {split}: {item} points nowhere ({target})",
                             "fix the data.yaml: train/val are image folders or .txt lists, "
                             "relative to 'path'")
    if not image_paths:
        raise UsageError(f"{yaml_path}: {split} has no images",
                         f"put images ({', '.join(IMAGE_SUFFIXES)}) into the {split} folder")
    _count_orphan_labels(folders, image_paths, root, report)
    samples, seen = [], set()
    for image_path in image_paths:
        image_path = image_path.absolute()
        if image_path in seen:
            report.add(Problem.DUPLICATE, relative_name(image_path, root))
            continue
        seen.add(image_path)
        sample = _read_sample(image_path, root, names, report)
        if sample is not None:
            samples.append(sample)
    return samples


def _count_orphan_labels(folders: list[Path], image_paths: list[Path], root: Path,
                         report: LabelReport) -> None:
    """Label files in the labels folder of an image folder that match no image."""
    expected = {label_path_for(p.absolute()) for p in image_paths}
    for folder in folders:
        label_dir = label_path_for(folder.absolute() / "x.jpg").parent
        if label_dir == folder.absolute() or not safeio.exists(label_dir):
            continue  # labels share the image folder, or there are none: nothing to compare
        for label in scan_images(label_dir, recursive=True).other:
            if label.suffix == ".txt" and label not in expected:
                report.add(Problem.ORPHAN_LABEL, relative_name(label, root))


def _read_list_file(list_file: Path, root: Path, report: LabelReport) -> list[Path]:
    name = relative_name(list_file, root)
    text = read_text_file(list_file, LIST_FILE_LIMIT, "the image list", report, name)
    paths = []
    for line in clean_lines(text, report, name):
        path = safeio.user_path(line)
        if not path.is_absolute():
            # Ultralytics resolves "./x" against the list's folder; we also try the root.
            near = list_file.parent / path
            path = near if safeio.exists(near) or not safeio.exists(root / path) else root / path
        paths.append(path)
    return paths


def _read_sample(image_path: Path, root: Path, names: tuple[str, ...], report: LabelReport
                 ) -> DetectionSample | None:
    image_name = relative_name(image_path, root)
    size = probe_image(image_path, report, image_name)
    if size is None:
        return None
    width, height = size
    label_path = label_path_for(image_path)
    label_name = relative_name(label_path, root)
    text = read_label_text(label_path, report, label_name)
    boxes, classes = parse_label_text(text, width, height, report, label_name)
    boxes, classes = sanitize_boxes(boxes, classes, width, height, len(names), report,
                                    label_name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, image_name)
    return DetectionSample(image_path=image_path, boxes=boxes, classes=classes, width=width,
                           height=height)
