"""Cross-check the YOLO, VOC and COCO readers on real photos (COCO128).

Reads COCO128 (YOLO format) with the YOLO reader, writes the same labels as a Pascal VOC folder
and as a COCO json (with sparse category ids 1, 3, 5, ... to exercise the id remapping), reads
those back with the VOC and COCO readers and compares every box. The COCO json is also loaded
with pycocotools to show it is a valid COCO file.

Usage: python benchmarks/readers_coco128.py [PATH/TO/coco128/data.yaml]
       (default: ../shared/data/coco128/data.yaml relative to the repository)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np


def _write_voc(ds, root: Path) -> None:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "labels.txt").write_text("\n".join(ds.names) + "\n")
    for split, samples in (("train", ds.train), ("val", ds.val)):
        ids = []
        for s in samples:
            stem = f"{split}_{s.image_path.stem}"
            ids.append(stem)
            (root / "JPEGImages" / f"{stem}.jpg").symlink_to(s.image_path)
            objs = "".join(
                f"<object><name>{escape(ds.names[c])}</name><difficult>0</difficult><bndbox>"
                f"<xmin>{x1 + 1:.3f}</xmin><ymin>{y1 + 1:.3f}</ymin><xmax>{x2:.3f}</xmax>"
                f"<ymax>{y2:.3f}</ymax></bndbox></object>"
                for (x1, y1, x2, y2), c in zip(s.boxes.tolist(), s.classes.tolist()))
            (root / "Annotations" / f"{stem}.xml").write_text(
                f"<annotation><filename>{stem}.jpg</filename><size><width>{s.width}</width>"
                f"<height>{s.height}</height></size>{objs}</annotation>")
        (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def _write_coco(ds, root: Path) -> None:
    (root / "annotations").mkdir(parents=True)
    cats = [{"id": 1 + 2 * i, "name": n} for i, n in enumerate(ds.names)]
    ann_id = 1
    for split, samples in (("train", ds.train), ("val", ds.val)):
        (root / split).mkdir()
        images, anns = [], []
        for image_id, s in enumerate(samples, start=1):
            (root / split / s.image_path.name).symlink_to(s.image_path)
            images.append({"id": image_id, "file_name": s.image_path.name, "width": s.width,
                           "height": s.height})
            for (x1, y1, x2, y2), c in zip(s.boxes.tolist(), s.classes.tolist()):
                anns.append({"id": ann_id, "image_id": image_id, "category_id": 1 + 2 * c,
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                             "iscrowd": 0})
                ann_id += 1
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": cats}))


def _compare(reference, other, name_of) -> float:
    ref = {s.image_path.name: s for s in reference}
    worst = 0.0
    for s in other:
        r = ref[name_of(s)]
        if len(r.boxes) != len(s.boxes) or not np.array_equal(r.classes, s.classes):
            raise SystemExit(f"box/class mismatch for {s.image_path}")
        if len(r.boxes):
            worst = max(worst, float(np.abs(r.boxes - s.boxes).max()))
    return worst


def main() -> None:
    from edgecnn.data.detection import load_detection_dataset

    default = Path(__file__).resolve().parents[1].parent / "shared/data/coco128/data.yaml"
    spec = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    start = time.perf_counter()
    yolo = load_detection_dataset(spec)
    print(f"YOLO  {spec}: {len(yolo.train)} train / {len(yolo.val)} val images, "
          f"{yolo.report.boxes} boxes, read in {time.perf_counter() - start:.2f} s")
    print("      report:", json.dumps(yolo.report.to_dict(max_files=3)["counts"]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_voc(yolo, tmp / "voc")
        _write_coco(yolo, tmp / "coco")
        start = time.perf_counter()
        voc = load_detection_dataset(tmp / "voc")
        t_voc = time.perf_counter() - start
        start = time.perf_counter()
        coco = load_detection_dataset(tmp / "coco")
        t_coco = time.perf_counter() - start
        strip = lambda s: s.image_path.name.split("_", 1)[1]  # noqa: E731 - "train_x.jpg"
        same = lambda s: s.image_path.name  # noqa: E731
        print(f"VOC   {len(voc.train)}/{len(voc.val)} images in {t_voc:.2f} s, names equal: "
              f"{voc.names == yolo.names}, max box difference vs YOLO "
              f"{max(_compare(yolo.train, voc.train, strip), _compare(yolo.val, voc.val, strip)):.4f} px")
        print(f"COCO  {len(coco.train)}/{len(coco.val)} images in {t_coco:.2f} s, names equal: "
              f"{coco.names == yolo.names}, category_ids[:4] {coco.category_ids[:4]}, max box "
              f"difference vs YOLO {max(_compare(yolo.train, coco.train, same), _compare(yolo.val, coco.val, same)):.4f} px")
        from pycocotools.coco import COCO

        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(tmp / "coco/annotations/instances_val.json"))
        print(f"pycocotools reads the COCO val json: {len(gt.getImgIds())} images, "
              f"{len(gt.getAnnIds())} annotations, {len(gt.getCatIds())} categories")


if __name__ == "__main__":
    main()
