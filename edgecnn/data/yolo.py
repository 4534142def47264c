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
from edgecnn.lazy import require


def read_yolo(yaml_path: Path, spec: str, split_val: float = 0.1, seed: int = 0
              ) -> DetectionDataset:
    """Read a YOLO dataset described by ``yaml_path`` (see the module docstring)."""
    config = _load_yaml(yaml_path)
    root = _resolve_root(yaml_path, config.get("path"))
    names = _names(config, yaml_path)
    if "train" not in config or config["train"] in (None, ""):
        raise UsageError(f"{yaml_path} has no 'train' entry",
                         "add e.g. 'train: images/train' to the data.yaml")
    report = LabelReport()
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
    return (np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(classes, dtype=np.int64))


def _load_yaml(path: Path) -> dict:
    yaml = require("yaml", package="pyyaml", extra="train", purpose="reading data.yaml")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path} is not valid YAML{where}", "fix the data.yaml syntax") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a YOLO data.yaml (expected a mapping with train/val/names)")
    return config


def _resolve_root(yaml_path: Path, path_entry) -> Path:
    base = yaml_path.resolve().parent
    if path_entry in (None, ""):
        return base
    root = Path(str(path_entry)).expanduser()
    if root.is_absolute():
        resolved = root
    elif (base / root).exists() or not root.exists():
        resolved = (base / root).resolve()
    else:  # relative to the working directory, as some hand-written yamls assume
        resolved = root.resolve()
    if not resolved.is_dir():
        raise UsageError(f"{yaml_path}: path: {path_entry} points nowhere ({resolved})",
                         "fix 'path' in the data.yaml (relative paths start at its folder)")
    return resolved


def _names(config: dict, yaml_path: Path) -> tuple[str, ...]:
    raw = config.get("names")
    nc = config.get("nc")
    if isinstance(raw, dict):
        try:
            mapping = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise UsageError(f"{yaml_path}: names keys must be class ids 0..N-1") from None
        if sorted(mapping) != list(range(len(mapping))):
            raise UsageError(f"{yaml_path}: names ids must be 0..{len(mapping) - 1} without gaps",
                             "renumber the names mapping")
        names = tuple(mapping[i] for i in range(len(mapping)))
    elif isinstance(raw, (list, tuple)):
        names = tuple(str(n) for n in raw)
    elif raw is None and isinstance(nc, int) and nc > 0:
        names = tuple(f"class{i}" for i in range(nc))
    else:
        raise UsageError(f"{yaml_path} has no class names", "add 'names: [a, b, ...]'")
    if not names:
        raise UsageError(f"{yaml_path} has an empty names list")
    if nc is not None and nc != len(names):
        raise UsageError(f"{yaml_path}: nc is {nc} but names lists {len(names)} classes",
                         "make nc match names (or remove nc)")
    return names


def _read_split(entry, split: str, root: Path, yaml_path: Path, names: tuple[str, ...],
                report: LabelReport) -> list[DetectionSample]:
    entries = entry if isinstance(entry, (list, tuple)) else [entry]
    image_paths: list[Path] = []
    folders: list[Path] = []
    for item in entries:
        target = Path(str(item)).expanduser()
        target = target if target.is_absolute() else root / target
        if target.is_dir():
            folders.append(target)
            image_paths += sorted(p for p in target.rglob("*")
                                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif target.is_file() and target.suffix.lower() == ".txt":
            image_paths += _read_list_file(target, root)
        else:
            raise UsageError(f"{yaml_path}: {split}: {item} points nowhere ({target})",
                             "fix the data.yaml: train/val are image folders or .txt lists, "
                             "relative to 'path'")
    if not image_paths:
        raise UsageError(f"{yaml_path}: {split} has no images",
                         f"put images ({', '.join(IMAGE_SUFFIXES)}) into the {split} folder")
    _count_orphan_labels(folders, image_paths, root, report)
    samples = []
    for image_path in image_paths:
        sample = _read_sample(image_path.absolute(), root, names, report)
        if sample is not None:
            samples.append(sample)
    return samples


def _count_orphan_labels(folders: list[Path], image_paths: list[Path], root: Path,
                         report: LabelReport) -> None:
    """Label files in the labels folder of an image folder that match no image."""
    expected = {label_path_for(p.absolute()) for p in image_paths}
    for folder in folders:
        label_dir = label_path_for(folder.absolute() / "x.jpg").parent
        if label_dir == folder.absolute() or not label_dir.is_dir():
            continue  # labels share the image folder, or there are none: nothing to compare
        for label in sorted(label_dir.rglob("*.txt")):
            if label not in expected:
                report.add(Problem.ORPHAN_LABEL, relative_name(label, root))


def _read_list_file(list_file: Path, root: Path) -> list[Path]:
    paths = []
    for line in list_file.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        path = Path(line).expanduser()
        if not path.is_absolute():
            # Ultralytics resolves "./x" against the list's folder; we also try the root.
            near = list_file.parent / path
            path = near if near.exists() or not (root / path).exists() else root / path
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
    try:
        text = label_path.read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        text = ""
    except OSError:
        report.add(Problem.MALFORMED, label_name)
        text = ""
    boxes, classes = parse_label_text(text, width, height, report, label_name)
    boxes, classes = sanitize_boxes(boxes, classes, width, height, len(names), report,
                                    label_name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, image_name)
    return DetectionSample(image_path=image_path, boxes=boxes, classes=classes, width=width,
                           height=height)
