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
from collections import Counter
from pathlib import Path

import numpy as np

from edgecnn import safeio
from edgecnn.data.checks import LabelReport, Problem
from edgecnn.data.detection import (
    JSON_FILE_LIMIT,
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
        doc = json.loads(safeio.read_bytes(path, JSON_FILE_LIMIT))
    except RecursionError:
        raise UsageError(f"{path} nests too deeply to be a COCO json",
                         "fix or re-export the file") from None
    except (ValueError, UnicodeDecodeError) as err:   # JSONDecodeError, 5,000-digit numbers
        raise UsageError(f"{path} is not valid JSON ({str(err)[:120]})",
                         "fix or re-export the file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {safeio.reason(err)}") from None
    if not isinstance(doc, dict) or not all(
            isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise UsageError(f"{path} is not a COCO detection json",
                         "it needs lists 'images', 'annotations' and 'categories'")
    return doc


def _int(value) -> int | None:
    """A COCO id: an integer (or an integral float), never a bool, a string or inf/NaN."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _numbers(value, count: int) -> list[float] | None:
    """Exactly ``count`` finite numbers (a string such as "1234" is not a list of digits)."""
    if not isinstance(value, (list, tuple)) or len(value) != count:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            v = float(v)
        except OverflowError:     # an integer with hundreds of digits
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def _categories(docs: dict[Path, dict]) -> dict[int, str]:
    categories: dict[int, str] = {}
    for path, doc in docs.items():
        for cat in doc["categories"]:
            cid = _int(cat.get("id")) if isinstance(cat, dict) else None
            name = cat.get("name") if isinstance(cat, dict) else None
            if cid is None or not isinstance(name, str):
                raise UsageError(f"{path}: a category lacks an integer 'id' or a 'name'",
                                 "fix the categories list")
            if categories.setdefault(cid, name) != name:
                raise UsageError(f"category id {cid} is {categories[cid]!r} and {name!r}",
                                 "give each category id one name (in both jsons)")
    if not categories:
        raise UsageError(f"{next(iter(docs))} has no categories")
    return categories


def _image_dir(json_path: Path, entries: list[dict], override) -> Path:
    if override is not None:
        folder = safeio.user_path(str(override)).absolute()
        if not folder.is_dir():
            raise UsageError(f"--images {override} is not a folder")
        return folder
    parent = json_path.resolve().parent
    split = json_path.stem.split("_", 1)[-1]  # instances_val2017 -> val2017
    candidates = [parent, parent / split, parent.parent / split, parent.parent / "images" / split,
                  parent / "images", parent.parent / "images"]
    probe = [e["file_name"] for e in entries[:5] if isinstance(e.get("file_name"), str)
             and e["file_name"]]
    for folder in candidates:
        if probe and any(safeio.is_regular_file(folder / name) for name in probe):
            return folder
    if not entries:
        return parent
    raise UsageError(f"cannot find the images of {json_path} (looked for "
                     f"{safeio.describe(probe[0])[:80] if probe else '?'}"
                     f" next to it, in {split}/ and images/)", "pass --images DIR")


def _read_json(path: Path, doc: dict, images, index: dict[int, int], root: Path,
               report: LabelReport) -> list[DetectionSample]:
    """Samples of one json. Image entries without an integer id or a file name are counted
    as malformed; an id used by two entries is ambiguous (whose boxes are they?), so every
    entry with it is skipped and counted as a duplicate."""
    entries = [e for e in doc["images"] if isinstance(e, dict)]
    for _ in range(len(doc["images"]) - len(entries)):
        report.add(Problem.MALFORMED, f"{path.name}: image entry")
    folder = _image_dir(path, entries, images)
    ids = [_int(e.get("id")) for e in entries]
    uses = Counter(ids)
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        image_id = _int(ann.get("image_id")) if isinstance(ann, dict) else None
        if image_id is None or image_id not in uses:
            report.add(Problem.MALFORMED, f"{path.name}: annotation {_short(ann)}")
            continue
        by_image.setdefault(image_id, []).append(ann)
    samples = []
    for entry, image_id in zip(entries, ids):
        file_name = entry.get("file_name")
        if image_id is None or not isinstance(file_name, str) or not file_name.strip() \
                or "\x00" in file_name:
            report.add(Problem.MALFORMED, f"{path.name}: image id {_short(entry.get('id'))} "
                                          f"file_name {_short(file_name)}")
            continue
        if uses[image_id] > 1:
            report.add(Problem.DUPLICATE, f"{path.name}: image id {image_id} ({file_name})")
            continue
        sample = _to_sample(folder / file_name, image_id, entry, by_image.get(image_id, []),
                            index, root, report)
        if sample is not None:
            samples.append(sample)
    return samples


def _short(value) -> str:
    text = repr(value.get("id", "?")) if isinstance(value, dict) else repr(value)
    return safeio.describe(text if len(text) <= 40 else text[:37] + "...")


def _to_sample(image_path: Path, image_id: int, entry: dict, anns: list[dict],
               index: dict[int, int], root: Path, report: LabelReport) -> DetectionSample | None:
    name = relative_name(image_path, root)
    size = probe_image(image_path, report, name)
    if size is None:
        return None
    if (_int(entry.get("width")), _int(entry.get("height"))) != size:
        report.add(Problem.SIZE_MISMATCH, name)
    raw_boxes, raw_classes = [], []
    for ann in anns:
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):           # True/False compare equal to 1/0 and are accepted
            report.add(Problem.MALFORMED, name)
            continue
        if crowd:
            report.add(Problem.CROWD, name)
            continue
        bbox = _numbers(ann.get("bbox"), 4)
        if bbox is None or bbox[2] < 0 or bbox[3] < 0:
            report.add(Problem.MALFORMED, name)
            continue
        x, y, w, h = bbox
        raw_boxes.append((x, y, x + w, y + h))
        category = _int(ann.get("category_id"))
        raw_classes.append(index.get(category, -1) if category is not None else -1)
    boxes, classes = sanitize_boxes(np.asarray(raw_boxes, np.float64), np.asarray(raw_classes),
                                    size[0], size[1], len(index), report, name)
    if len(classes) == 0:
        report.add(Problem.BACKGROUND, name)
    return DetectionSample(image_path=image_path, boxes=boxes, classes=classes, width=size[0],
                           height=size[1], image_id=image_id)
