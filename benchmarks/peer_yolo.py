"""The peer model: Ultralytics YOLO11n trained from scratch on the kangaroo set, and its exports.

A benchmark tool, never a product dependency: run it with an interpreter that has Ultralytics
(``pip install torch==2.14.1 torchvision==0.29.1`` then ``pip install ultralytics``; a separate
virtual environment keeps Ultralytics' ``opencv-python`` and torch pins away from the product's
environment). Everything runs offline: ``YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0`` are set here, the
model is built from ``yolo11n.yaml`` (no downloaded weights).

Steps (each writes under ``--work``, outside the repository; the data set is never copied into it):

* ``dataset``: a YOLO-format view of a Pascal VOC folder (``images/`` beside ``annots/``),
  split as the kangaroo set's SOURCE.txt says (sorted names, the last 20% are val).
* ``train``: YOLO11n from its yaml, ``imgsz`` 256, 150 epochs, batch 16, on CPU, seed 0
  (``--seed N`` trains another seed beside it, to measure the peer's seed-to-seed spread).
* ``val``: Ultralytics' own val (mAP@0.5 and mAP@0.5:0.95) on the val split -> ``val.json``.
* ``export``: Ultralytics' ONNX (default opset, plain and simplified) and TFLite exports
  (float32 and int8 when its exporter's dependencies are installed) -> ``exports.json``.

Example:
    python benchmarks/peer_yolo.py dataset --src ../shared/data/kangaroo --work PEER_DIR
    python benchmarks/peer_yolo.py train --work PEER_DIR
    python benchmarks/peer_yolo.py val --work PEER_DIR
    python benchmarks/peer_yolo.py export --work PEER_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

VAL_FRACTION = 0.2
RUN_NAME = "yolo11n_kangaroo"


def voc_boxes(xml_path: Path, names: list[str]) -> list[tuple[int, float, float, float, float]]:
    """Pascal VOC objects as (class, xmin, ymin, xmax, ymax) in pixels; new names are appended."""
    root = ET.parse(xml_path).getroot()
    boxes = []
    for obj in root.iter("object"):
        name = obj.findtext("name").strip()
        if name not in names:
            names.append(name)
        bb = obj.find("bndbox")
        boxes.append((names.index(name), *(float(bb.findtext(k))
                                           for k in ("xmin", "ymin", "xmax", "ymax"))))
    return boxes


def split_names(images: list[str]) -> tuple[list[str], list[str]]:
    """The SOURCE.txt convention: sort the names, the last 20% (rounded) are the val split."""
    images = sorted(images)
    n_val = round(len(images) * VAL_FRACTION)
    return images[:-n_val], images[-n_val:]


def build_dataset(src: Path, out: Path) -> Path:
    """Writes ``out/{images,labels}/{train,val}`` (images symlinked) and ``out/data.yaml``."""
    from PIL import Image

    ann_dir = next(d for d in (src / "annots", src / "annotations", src / "Annotations")
                   if d.is_dir())
    images = [p.name for p in (src / "images").iterdir() if p.suffix.lower() in (".jpg", ".png")]
    train, val = split_names(images)
    names: list[str] = []
    for split, members in (("train", train), ("val", val)):
        for sub in ("images", "labels"):
            shutil.rmtree(out / sub / split, ignore_errors=True)
            (out / sub / split).mkdir(parents=True)
        for name in members:
            img = src / "images" / name
            # the real (EXIF-upright) size, not the xml's <size>, which tools often get wrong;
            # from the header only (one image of the set is truncated, yet decodes)
            with Image.open(img) as im:
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    w, h = h, w
            lines = []
            for c, x0, y0, x1, y1 in voc_boxes(ann_dir / (Path(name).stem + ".xml"), names):
                x0, x1 = max(0.0, x0), min(float(w), x1)
                y0, y1 = max(0.0, y0), min(float(h), y1)
                lines.append(f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                             f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
            (out / "images" / split / name).symlink_to(img.resolve())
            (out / "labels" / split / (Path(name).stem + ".txt")).write_text(
                "\n".join(lines) + "\n")
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n"
                    f"names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    print(json.dumps({"train": len(train), "val": len(val), "first_val": val[0],
                      "names": names, "data": str(yaml)}))
    return yaml


def versions() -> dict:
    import torch
    import ultralytics
    return {"python": platform.python_version(), "ultralytics": ultralytics.__version__,
            "torch": torch.__version__, "machine": platform.machine()}


def run_name(seed: int) -> str:
    """Seed 0 keeps the original run folder; other seeds train beside it."""
    return RUN_NAME if seed == 0 else f"{RUN_NAME}_seed{seed}"


def train(work: Path, imgsz: int, epochs: int, batch: int, seed: int = 0) -> None:
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")  # architecture only: random init, nothing downloaded
    t0 = time.perf_counter()
    model.train(data=str(work / "data.yaml"), imgsz=imgsz, epochs=epochs, batch=batch,
                device="cpu", workers=2, seed=seed, deterministic=True, pretrained=False,
                amp=False, plots=False, project=str(work / "runs"), name=run_name(seed),
                exist_ok=True, verbose=False)
    info = {"command": " ".join(sys.argv), "imgsz": imgsz, "epochs": epochs, "batch": batch,
            "seed": seed, "train_seconds": round(time.perf_counter() - t0, 1),
            "load_avg": os.getloadavg(), **versions()}
    name = "train.json" if seed == 0 else f"train_seed{seed}.json"
    (work / name).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


def best_weights(work: Path) -> Path:
    return work / "runs" / RUN_NAME / "weights" / "best.pt"


def val(work: Path, imgsz: int) -> None:
    from ultralytics import YOLO

    metrics = YOLO(str(best_weights(work))).val(
        data=str(work / "data.yaml"), split="val", imgsz=imgsz, batch=16, device="cpu",
        plots=False, project=str(work / "runs"), name="val", exist_ok=True)
    info = {"command": " ".join(sys.argv), "weights": str(best_weights(work)), "imgsz": imgsz,
            "map50": round(float(metrics.box.map50), 4), "map": round(float(metrics.box.map), 4),
            "precision": round(float(metrics.box.mp), 4),
            "recall": round(float(metrics.box.mr), 4), **versions()}
    (work / "val.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))


EXPORTS = {  # name -> Ultralytics export() options
    "onnx": {"format": "onnx"},
    "onnx_simplify": {"format": "onnx", "simplify": True},
    "tflite_float32": {"format": "tflite"},
    "tflite_int8": {"format": "tflite", "int8": True},
}


def export(work: Path, imgsz: int, only: list[str]) -> None:
    """Each export in its own copy of best.pt, so one format's files never overwrite another's."""
    from ultralytics import YOLO

    out_dir = work / "exports"
    out_dir.mkdir(exist_ok=True)
    report_path = work / "exports.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for name in only or EXPORTS:
        opts = dict(EXPORTS[name])
        src = out_dir / name / "yolo11n_kangaroo.pt"
        src.parent.mkdir(exist_ok=True)
        shutil.copy2(best_weights(work), src)
        if opts.get("int8"):
            opts["data"] = str(work / "data.yaml")  # calibration images: the train split
        t0 = time.perf_counter()
        try:
            path = YOLO(str(src)).export(imgsz=imgsz, device="cpu", **opts)
            report[name] = {"ok": True, "path": str(path), "options": opts,
                            "seconds": round(time.perf_counter() - t0, 1)}
        except Exception as exc:  # a benchmark records why an exporter failed, then goes on
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                            "options": opts}
        print(name, json.dumps(report[name]))
    report["versions"] = versions()
    report_path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("dataset", "train", "val", "export"))
    ap.add_argument("--work", required=True, type=Path, help="folder outside the repository")
    ap.add_argument("--src", type=Path, help="dataset step: VOC folder (images/ + annots/)")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0,
                    help="train step: seed (other seeds train in runs/yolo11n_kangaroo_seedN; "
                         "its results.csv holds Ultralytics' val of every epoch)")
    ap.add_argument("--only", nargs="*", choices=sorted(EXPORTS), default=[],
                    help="export step: these formats only")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "dataset":
        build_dataset(args.src, args.work)
    elif args.step == "train":
        train(args.work, args.imgsz, args.epochs, args.batch, args.seed)
    elif args.step == "val":
        val(args.work, args.imgsz)
    else:
        export(args.work, args.imgsz, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
