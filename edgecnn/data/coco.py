"""COCO detection datasets: ``instances_*.json`` plus a folder of images.

Category ids (sparse in COCO: 1..90) become contiguous class indices 0..C-1 in ascending id
order; ``DetectionDataset.category_ids[i]`` gives back the original id of class ``i``, so mAP
can be reported against the source json. Crowd annotations (``iscrowd=1``) are skipped and
counted, as COCO evaluation ignores them. Images are looked for in ``--images DIR``, else
relative to the json, in a sibling folder named after the json (``instances_val2017.json`` ->
``val2017/``) or under ``images/``.
"""

from __future__ import annotations

import json
import math
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


def read_coco(spec_path: Path | list[Path], spec: str, split_val: float = 0.1, seed: int = 0,
              images: str | Path | None = None) -> DetectionDataset:
    """Read one COCO json (split by ``split_val``) or a train/val pair of them.

    Args:
        spec_path: a json, or the ``instances_*.json`` files found in a dataset folder.
        images: folder holding the images (overrides the search next to the json).
    """
    jsons = spec_path if isinstance(spec_path, list) else [spec_path]
    train_json, val_json = _pick_train_val(jsons)
    docs = {p: _load_json(p) for p in (train_json, val_json) if p is not None}
    categories = _categories(docs)
    cat_ids = tuple(sorted(categories))
    index = {cid: i for i, cid in enumerate(cat_ids)}
    names = tuple(categories[cid] for cid in cat_ids)
    root = train_json.resolve().parent
    if root.name == "annotations":
        root = root.parent
    report = LabelReport()
    train = _read_json(train_json, docs[train_json], images, index, root, report)
    if val_json is not None:
        val = _read_json(val_json, docs[val_json], images, index, root, report)
    else:
        train, val = split_train_val(train, split_val, seed)
    finish_report(report, train, val, len(names))
    return DetectionDataset(train=train, val=val, names=names, report=report, root=root,
                            spec=spec, format="coco", category_ids=cat_ids,
                            own_val=val_json is not None, layout="COCO json")


def _pick_train_val(jsons: list[Path]) -> tuple[Path, Path | None]:
    if len(jsons) == 1:
        return jsons[0], None
    train = [p for p in jsons if "train" in p.stem]
    val = [p for p in jsons if "val" in p.stem]
    if not train:
        raise UsageError(f"no instances_train*.json among {', '.join(p.name for p in jsons)}",
                         "name the training annotations instances_train*.json or pass the json")
    return train[0], (val[0] if val else None)


def _load_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path} is not valid JSON ({err})", "fix or re-export the file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise UsageError(f"{path} is not a COCO detection json",
                         "it needs lists 'images', 'annotations' and 'categories'")
    return doc


def _categories(docs: dict[Path, dict]) -> dict[int, str]:
    categories: dict[int, str] = {}
    for path, doc in docs.items():
        for cat in doc["categories"]:
            try:
                cid, name = int(cat["id"]), str(cat["name"])
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"{path}: a category lacks an integer 'id' or a 'name'",
                                 "fix the categories list") from None
            if categories.setdefault(cid, name) != name:
                raise UsageError(f"category id {cid} is {categories[cid]!r} in one json and "
                                 f"{name!r} in another", "use the same categories in both")
    if not categories:
        raise UsageError(f"{next(iter(docs))} has no categories")
    return categories


def _image_dir(json_path: Path, entries: list[dict], override) -> Path:
    if override is not None:
        folder = Path(override).expanduser().absolute()
        if not folder.is_dir():
            raise UsageError(f"--images {override} is not a folder")
        return folder
    parent = json_path.resolve().parent
    split = json_path.stem.split("_", 1)[-1]  # instances_val2017 -> val2017
    candidates = [parent, parent / split, parent.parent / split, parent.parent / "images" / split,
                  parent / "images", parent.parent / "images"]
    probe = [str(e.get("file_name", "")) for e in entries[:5] if e.get("file_name")]
    for folder in candidates:
        if probe and any((folder / name).is_file() for name in probe):
            return folder
    if not entries:
        return parent
    raise UsageError(f"cannot find the images of {json_path} (looked for {probe[0] if probe else '?'}"
                     f" next to it, in {split}/ and images/)", "pass --images DIR")


def _read_json(path: Path, doc: dict, images, index: dict[int, int], root: Path,
               report: LabelReport) -> list[DetectionSample]:
    entries = [e for e in doc["images"] if isinstance(e, dict)]
    folder = _image_dir(path, entries, images)
    by_image: dict[int, list[dict]] = {}
    known_ids = set()
    for entry in entries:
        try:
            known_ids.add(int(entry["id"]))
        except (KeyError, TypeError, ValueError):
            report.add(Problem.MALFORMED, f"{path.name}: image entry {entry.get('file_name')}")
    for ann in doc["annotations"]:
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, int) or image_id not in known_ids:
            report.add(Problem.MALFORMED, f"{path.name}: annotation {ann.get('id', '?')}"
                       if isinstance(ann, dict) else f"{path.name}: annotation")
            continue
        by_image.setdefault(image_id, []).append(ann)
    samples = []
    for entry in entries:
        try:
            image_id = int(entry["id"])
            file_name = str(entry["file_name"])
        except (KeyError, TypeError, ValueError):
            continue  # counted above
        sample = _to_sample(folder / file_name, image_id, entry, by_image.get(image_id, []),
                            index, root, report)
        if sample is not None:
            samples.append(sample)
    return samples


def _to_sample(image_path: Path, image_id: int, entry: dict, anns: list[dict],
               index: dict[int, int], root: Path, report: LabelReport) -> DetectionSample | None:
    name = relative_name(image_path, root)
    size = probe_image(image_path, report, name)
    if size is None:
        return None
    if (entry.get("width"), entry.get("height")) != size:
        report.add(Problem.SIZE_MISMATCH, name)
    boxes, classes = [], []
    for ann in anns:
        if ann.get("iscrowd", 0):
            report.add(Problem.CROWD, name)
            continue
        bbox = ann.get("bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            report.add(Problem.MALFORMED, name)
            continue
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w < 0 or h < 0:
            report.add(Problem.MALFORMED, name)
            continue
        boxes.append((x, y, x + w, y + h))
        try:
            classes.append(index.get(int(ann.get("category_id")), -1))
        except (TypeError, ValueError):
            classes.append(-1)
    boxes, classes = sanitize_boxes(np.asarray(boxes, np.float32), np.asarray(classes),
                                    size[0], size[1], len(index), report, name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, name)
    return DetectionSample(image_path=image_path, boxes=boxes, classes=classes, width=size[0],
                           height=size[1], image_id=image_id)
