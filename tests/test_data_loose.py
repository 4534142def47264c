"""Loose real-world layouts: ``images/`` beside ``annots/`` / ``annotations/`` / ``labels/``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error
from edgecnn.data.detection import load_detection_dataset

VOC_XML = """<annotation><filename>{name}</filename>
<size><width>64</width><height>48</height><depth>3</depth></size>
<object><name>{label}</name><difficult>0</difficult>
<bndbox><xmin>11</xmin><ymin>5</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


def _images(root, n, folder="images"):
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(root / folder / f"{i:05d}.jpg"),
                    rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("labels_dir", ["annots", "annotations", "Annotations"])
def test_voc_xml_beside_images(tmp_path, labels_dir):
    root = tmp_path / "roo"
    _images(root, 10)
    (root / labels_dir).mkdir()
    for i in range(10):
        (root / labels_dir / f"{i:05d}.xml").write_text(
            VOC_XML.format(name=f"/elsewhere/{i:05d}.jpg", label="kangaroo" if i % 3 else "emu"))
    (root / labels_dir / ".DS_Store.xml").write_text("junk")   # hidden files are not data
    ds = load_detection_dataset(root, split_val=0.2, seed=1)
    assert ds.names == ("emu", "kangaroo")
    assert (len(ds.train), len(ds.val)) == (8, 2) and not ds.own_val
    assert ds.layout == f"Pascal VOC xml in {labels_dir}/ beside images/"
    box = ds.train[0].boxes[0].tolist()
    assert box == [10.0, 4.0, 40.0, 30.0]   # VOC's 1-based inclusive corners
    assert ds.report.ok
    # The same seed gives the same split.
    again = load_detection_dataset(root, split_val=0.2, seed=1)
    assert [s.image_path for s in again.val] == [s.image_path for s in ds.val]


def test_yolo_txt_beside_images_with_split_lists(tmp_path):
    root = tmp_path / "cars"
    _images(root, 6)
    (root / "labels").mkdir()
    for i in range(6):
        (root / "labels" / f"{i:05d}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.5\n")
    (root / "classes.txt").write_text("car\ntruck\n")
    (root / "train.txt").write_text("00000.jpg\n00001.jpg\n00002.jpg\n00003.jpg\n")
    (root / "val.txt").write_text("00004\n00005\n00009\n")   # 00009 has no label file
    ds = load_detection_dataset(root)
    assert ds.names == ("car", "truck") and ds.own_val
    assert [s.image_path.name for s in ds.val] == ["00004.jpg", "00005.jpg"]
    np.testing.assert_allclose(ds.val[0].boxes[0], [24, 12, 40, 36])
    assert ds.report.problems.get("missing_image") == 1


def test_data_check_names_the_layout(run_cli, tmp_path):
    root = tmp_path / "d"
    _images(root, 3)
    (root / "annots").mkdir()
    for i in range(3):
        (root / "annots" / f"{i:05d}.xml").write_text(VOC_XML.format(name=f"{i:05d}.jpg",
                                                                     label="k"))
    result = run_cli("data", "check", root)
    assert result.exit_code == 0, result.err
    assert "Pascal VOC xml in annots/ beside images/" in result.out
    doc = json.loads(run_cli("data", "check", root, "--json").out)
    assert doc["layout"] == "Pascal VOC xml in annots/ beside images/"


def test_a_folder_of_something_else_names_every_layout(run_cli, tmp_path):
    (tmp_path / "x" / "images").mkdir(parents=True)
    (tmp_path / "x" / "notes").mkdir()
    result = run_cli("data", "check", tmp_path / "x")
    assert_one_line_error(result, "cannot tell the dataset format", "annots/")


def test_a_loose_dataset_calibrates_a_foreign_model(tmp_path):
    """``convert --calib`` of a model without a run (a foreign one) reads ``images/`` beside
    ``annots/`` as the detection dataset it is, not as class folders: calibration images
    from its train split, held-out images with their boxes from val."""
    from converters.calibration import load_calibration_images
    from edgecnn.rundir import RunInfo

    root = tmp_path / "kangaroo"
    _images(root, 6)
    (root / "annots").mkdir()
    for i in range(6):
        (root / "annots" / f"{i:05d}.xml").write_text(
            VOC_XML.format(name=f"{i:05d}.jpg", label="kangaroo"))
    (root / "train.txt").write_text("00000\n00001\n00002\n00003\n")
    (root / "val.txt").write_text("00004\n00005\n")
    probe = RunInfo(task="classify", arch="", labels=["?"], imgsz=(32, 32), channels=3,
                    color="RGB", data=str(root))
    images = load_calibration_images(probe, str(root), 200, 200)
    assert (len(images.calib), len(images.held_out)) == (4, 2)
    assert images.labels == ("kangaroo",) and len(images.held_out_boxes) == 2
