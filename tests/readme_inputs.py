"""The files README.md's examples name besides the quickstart's outputs, as small stand-ins:
Ultralytics-, MobileNet- and SSD-layout ``.tflite`` exports with the pictures and lists their
commands take, a few Fashion-MNIST images as ``fashion1k/``, a kangaroo-style folder of VOC
xml files, and scikit-learn's sample photos. :func:`write_readme_inputs` writes them into the
folder the README test runs in, so those examples run as written (with CI-sized numbers)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from foreign_models import build_tflite, with_ultralytics_metadata

ROOT = Path(__file__).resolve().parents[1]
# Ultralytics' YOLO11n head for one class at 256 px, channels first [1, 4 + 1, 1344]: cx, cy, w,
# h in 0..1 and the class score. Anchor 1 is anchor 0 shifted by 2% (NMS drops it); the rest
# score 0.
YOLO = np.zeros((1, 5, 1344), np.float32)
YOLO[0, :, 0] = [0.50, 0.55, 0.35, 0.60, 0.90]
YOLO[0, :, 1] = [0.51, 0.55, 0.35, 0.60, 0.60]
KANGAROO_BOX = "0 0.5 0.55 0.35 0.6"   # anchor 0 as a YOLO label: its mAP is 1
COCO = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
        "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
        "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite "
        "baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup "
        "fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut "
        "cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
        "cell_phone microwave oven toaster sink refrigerator book clock vase scissors "
        "teddy_bear hair_drier toothbrush").split()


def write_readme_inputs(work: Path) -> None:
    """Write every stand-in into ``work`` (the folder holding ``quickstart-run/``)."""
    _foreign_models(work)
    _kangaroo_yolo(work)
    _kangaroo_voc(work / "kangaroo")
    _photos(work)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from compact_folder import write_folder
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    write_folder(work / "fashion1k", 30)   # 3 images a class: 2 train, 1 val


def _picture(path: Path, seed: int, size=(480, 640)) -> None:
    """A photo-like picture: a gradient with a few filled shapes."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = np.linspace(60, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(4):
        x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(30, 80)), y + 60), colour, -1)
    cv2.imwrite(str(path), image)


def _foreign_models(work: Path) -> None:
    # outputs = constants + a thousandth of the input's mean: real images move the scores by
    # less than 0.001, so every command's answer is the constants'
    yolo = build_tflite([YOLO], shape=(1, 3, 256, 256), input_weight=1e-3)
    (work / "yolo11n_float32.tflite").write_bytes(with_ultralytics_metadata(
        yolo, imgsz=[256, 256], names={"0": "kangaroo"}))
    imagenet = (ROOT / "edgecnn" / "models" / "backbones" / "imagenet_labels.txt").read_text()
    (work / "labels.txt").write_text(imagenet)
    logits = np.zeros((1, len(imagenet.splitlines())), np.float32)
    logits[0, [281, 282, 285]] = [6.0, 4.0, 3.0]            # tabby, tiger cat, Egyptian cat
    (work / "mobilenet_v2.tflite").write_bytes(
        build_tflite([logits], shape=(1, 224, 224, 3), input_weight=1e-3))
    # TFLite_Detection_PostProcess: boxes ymin xmin ymax xmax (0..1), classes, scores, count
    ssd = (np.array([[[0.2, 0.1, 0.9, 0.6], [0.3, 0.5, 0.8, 0.9], [0, 0, 1, 1]]], np.float32),
           np.array([[16, 15, 0]], np.float32), np.array([[0.88, 0.71, 0.2]], np.float32),
           np.array([2], np.float32))
    (work / "ssd_mobilenet.tflite").write_bytes(
        build_tflite(list(ssd), shape=(1, 300, 300, 3), input_weight=1e-3))
    (work / "coco.txt").write_text("".join(f"{n.replace('_', ' ')}\n" for n in COCO))
    for seed, name in enumerate(("street.jpg", "cat.jpg", "dog.jpg")):
        _picture(work / name, seed)


def _kangaroo_yolo(work: Path) -> None:
    """``data.yaml``: two 256x256 val images with anchor 0's box, as the YOLO head expects."""
    folder = work / "kangaroo_yolo"
    for split in ("train", "val"):
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        for i in range(2):
            _picture(folder / "images" / split / f"{i}.jpg", 10 + i, (256, 256))
            (folder / "labels" / split / f"{i}.txt").write_text(KANGAROO_BOX + "\n")
    (work / "data.yaml").write_text("path: kangaroo_yolo\ntrain: images/train\n"
                                    "val: images/val\nnames: [kangaroo]\n")


def _kangaroo_voc(folder: Path) -> None:
    """The kangaroo dataset's layout (``images/`` beside ``annots/``, one VOC xml per image, no
    split files): ten 160x120 scenes with one brown ellipse each."""
    (folder / "images").mkdir(parents=True)
    (folder / "annots").mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        image = np.full((120, 160, 3), (90, 140, 170), np.uint8)
        x, y = int(rng.integers(10, 90)), int(rng.integers(10, 50))
        cv2.ellipse(image, (x + 25, y + 30), (20, 28), 0, 0, 360, (60, 80, 120), -1)
        cv2.imwrite(str(folder / "images" / f"{i:05d}.jpg"), image)
        (folder / "annots" / f"{i:05d}.xml").write_text(
            f"<annotation><filename>{i:05d}.jpg</filename><size><width>160</width>"
            "<height>120</height><depth>3</depth></size><object><name>kangaroo</name>"
            f"<difficult>0</difficult><bndbox><xmin>{x + 5}</xmin><ymin>{y + 2}</ymin>"
            f"<xmax>{x + 45}</xmax><ymax>{y + 58}</ymax></bndbox></object></annotation>")


def _photos(work: Path) -> None:
    """scikit-learn's two sample photos, beside the README's commands and in ``my_photos/``."""
    import sklearn

    (work / "my_photos").mkdir()
    for name in ("china.jpg", "flower.jpg"):
        source = Path(sklearn.__file__).parent / "datasets" / "images" / name
        shutil.copy(source, work / name)
        shutil.copy(source, work / "my_photos" / name)
