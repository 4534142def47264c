"""Detection dataset readers (YOLO, VOC, COCO) and the label checks, on datasets written here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error
from edgecnn.data.checks import Problem
from edgecnn.data.detection import (ImageDecodeError, load_detection_dataset, read_image)
from edgecnn.data.imagesize import image_size
from edgecnn.errors import UsageError


def _image(path: Path, width: int = 64, height: int = 48, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, 3), value, np.uint8)
    image[: height // 2, : width // 3] = (0, 0, 255)  # asymmetric, so rotations are visible
    if not cv2.imwrite(str(path), image):
        raise RuntimeError(f"cannot write {path}")
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _yolo_dataset(root: Path) -> Path:
    """Two clean train images and one val image; names as a dict."""
    _image(root / "images/train/a.jpg")
    _write(root / "labels/train/a.txt", "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n")
    _image(root / "images/train/sub/b.png", 32, 32)
    _write(root / "labels/train/sub/b.txt", "1 0.5 0.5 0.5 0.5\n")
    _image(root / "images/val/c.jpg")
    _write(root / "labels/val/c.txt", "0 0.5 0.5 1.0 1.0\n")
    return _write(root / "data.yaml", "path: .\ntrain: images/train\nval: images/val\n"
                                      "nc: 2\nnames:\n  0: cat\n  1: dog\n")


def test_yolo_reader_converts_to_pixel_xyxy(tmp_path):
    ds = load_detection_dataset(_yolo_dataset(tmp_path / "ds"))
    assert ds.format == "yolo" and ds.names == ("cat", "dog")
    assert [s.image_path.name for s in ds.train] == ["a.jpg", "b.png"]
    a = ds.train[0]
    assert (a.width, a.height) == (64, 48)
    np.testing.assert_allclose(a.boxes, [[24, 12, 40, 36], [12, 6, 20, 18]], atol=1e-4)
    assert a.boxes.dtype == np.float32 and a.classes.dtype == np.int32
    assert a.classes.tolist() == [0, 1]
    np.testing.assert_allclose(ds.val[0].boxes, [[0, 0, 64, 48]])
    assert ds.report.ok and ds.report.images == {"train": 2, "val": 1}
    assert ds.report.class_counts == [2, 2]
    # A folder holding data.yaml is the same spec.
    assert len(load_detection_dataset(tmp_path / "ds").train) == 2


def test_yolo_list_files_and_split_without_val(tmp_path):
    root = tmp_path / "ds"
    for i in range(10):
        _image(root / f"images/all/{i}.jpg")
        _write(root / f"labels/all/{i}.txt", "0 0.5 0.5 0.5 0.5\n")
    _write(root / "train.txt", "".join(f"./images/all/{i}.jpg\n" for i in range(10)))
    _write(root / "data.yaml", "train: train.txt\nnames: [thing]\n")
    ds = load_detection_dataset(root / "data.yaml", split_val=0.2, seed=3)
    assert len(ds.train) == 8 and len(ds.val) == 2
    again = load_detection_dataset(root / "data.yaml", split_val=0.2, seed=3)
    assert [s.image_path for s in again.val] == [s.image_path for s in ds.val]
    other = load_detection_dataset(root / "data.yaml", split_val=0.2, seed=4)
    assert {s.image_path for s in other.val} != {s.image_path for s in ds.val}


def _problem_dataset(root: Path) -> Path:
    """One image per kind of label problem."""
    good = "0 0.5 0.5 0.5 0.5\n"
    cases = {
        "outside": "0 0.9 0.5 0.5 0.5\n" + good,  # x2 = 1.15 -> clipped
        "malformed": "0 0.5 0.5\nzero 0.1 0.1 0.1 0.1\n0 0.5 0.5 -0.2 0.1\n" + good,
        "emptyline": good + "\n   \n" + good,
        "unknown": "7 0.5 0.5 0.2 0.2\n-1 0.5 0.5 0.2 0.2\n" + good,
        "zero": "0 0.5 0.5 0 0.3\n" + good,
        "polygon": "1 0.1 0.1 0.5 0.1 0.5 0.6\n",
        "empty": "",
    }
    for stem, text in cases.items():
        _image(root / f"images/train/{stem}.jpg")
        _write(root / f"labels/train/{stem}.txt", text)
    _image(root / "images/train/nolabel.jpg")
    _write(root / "images/train/corrupt.jpg", "this is not a jpeg")
    _write(root / "labels/train/corrupt.txt", good)
    _write(root / "train.txt", "".join(f"images/train/{s}.jpg\n" for s in
                                       [*cases, "nolabel", "corrupt", "gone"]))
    _image(root / "images/val/v.jpg")
    _write(root / "labels/val/v.txt", good)
    _write(root / "labels/val/orphan.txt", good)  # its image was deleted
    return _write(root / "data.yaml", "train: train.txt\nval: images/val\nnames: [a, b]\n")


def test_every_label_problem_is_counted_with_file_names(tmp_path):
    ds = load_detection_dataset(_problem_dataset(tmp_path / "ds"))
    rep = ds.report
    expect = {
        Problem.BOX_OUTSIDE: (1, ["labels/train/outside.txt"]),
        Problem.MALFORMED: (3, ["labels/train/malformed.txt"]),
        Problem.EMPTY_LINE: (2, ["labels/train/emptyline.txt"]),
        Problem.UNKNOWN_CLASS: (2, ["labels/train/unknown.txt"]),
        Problem.ZERO_AREA: (1, ["labels/train/zero.txt"]),
        Problem.POLYGON: (1, ["labels/train/polygon.txt"]),
        Problem.BACKGROUND: (2, ["images/train/empty.jpg", "images/train/nolabel.jpg"]),
        Problem.MISSING_IMAGE: (1, ["images/train/gone.jpg"]),
        Problem.UNREADABLE_IMAGE: (1, ["images/train/corrupt.jpg"]),
        Problem.ORPHAN_LABEL: (1, ["labels/val/orphan.txt"]),
    }
    for kind, (count, files) in expect.items():
        assert rep.count(kind) == count, (kind, rep.counts)
        assert rep.files_of(kind) == files, (kind, rep.files)
    by_name = {s.image_path.stem: s for s in ds.train}
    # Missing and undecodable images are skipped; backgrounds are kept.
    assert set(by_name) == {"outside", "malformed", "emptyline", "unknown", "zero", "polygon",
                            "empty", "nolabel"}
    np.testing.assert_allclose(by_name["outside"].boxes[0], [41.6, 12, 64, 36], atol=1e-3)
    assert len(by_name["malformed"].boxes) == 1 and len(by_name["unknown"].boxes) == 1
    assert len(by_name["emptyline"].boxes) == 2 and len(by_name["zero"].boxes) == 1
    np.testing.assert_allclose(by_name["polygon"].boxes[0], [6.4, 4.8, 32, 28.8], atol=1e-3)
    assert by_name["polygon"].classes.tolist() == [1]
    assert len(by_name["nolabel"].boxes) == 0
    assert not rep.ok and Problem.BACKGROUND.value not in rep.problems
    with pytest.raises(UsageError, match="unknown_class"):
        load_detection_dataset(tmp_path / "ds" / "data.yaml", strict=True)


def test_check_command_prints_problems_and_strict_exits_2(tmp_path, run_cli):
    spec = _problem_dataset(tmp_path / "ds")
    result = run_cli("data", "check", spec)
    assert result.exit_code == 0, result.err
    assert "unknown class ids (boxes skipped): 2 in 1 files: labels/train/unknown.txt" in result.out
    assert "images that fail to decode (skipped): 1 in 1 files: images/train/corrupt.jpg" in \
        result.out
    result = run_cli("data", "check", spec, "--json", "--max-files", "1")
    payload = json.loads(result.out)
    assert payload["counts"]["missing_image"] == 1 and payload["ok"] is False
    assert payload["files"]["background_image"] == ["images/train/empty.jpg"]
    assert payload["images"] == {"train": 8, "val": 1}
    assert_one_line_error(run_cli("data", "check", spec, "--strict"), "label problems",
                          "malformed_label")
    clean = _yolo_dataset(tmp_path / "clean")
    assert run_cli("data", "check", clean, "--strict").exit_code == 0


def test_data_yaml_pointing_nowhere_is_a_one_line_error(tmp_path, run_cli):
    bad = _write(tmp_path / "data.yaml", "train: images/train\nval: images/val\nnames: [a]\n")
    assert_one_line_error(run_cli("data", "check", bad), "train", "points nowhere")
    bad_root = _write(tmp_path / "b" / "data.yaml", "path: ../nowhere\ntrain: x\nnames: [a]\n")
    assert_one_line_error(run_cli("data", "check", bad_root), "path", "points nowhere")
    broken = _write(tmp_path / "c" / "data.yaml", "train: [unclosed\n")
    assert_one_line_error(run_cli("data", "check", broken), "not valid YAML")
    assert_one_line_error(run_cli("data", "check", tmp_path / "missing.yaml"), "not found")
    _image(tmp_path / "d/images/train/a.jpg")
    no_names = _write(tmp_path / "d" / "data.yaml", "train: images/train\n")
    assert_one_line_error(run_cli("data", "check", no_names), "no class names")


def test_decode_option_finds_corrupt_pixels_behind_a_valid_header(tmp_path, run_cli):
    root = tmp_path / "ds"
    _yolo_dataset(root)
    # Keep the JPEG headers (size readable) but destroy the entropy-coded data.
    jpg = root / "images/train/a.jpg"
    data = jpg.read_bytes()
    sos = data.index(b"\xff\xda")
    jpg.write_bytes(data[:sos] + b"\xff\xda\x00\x02" + b"\xff\xd9")
    assert run_cli("data", "check", root / "data.yaml", "--json").exit_code == 0
    result = run_cli("data", "check", root / "data.yaml", "--json", "--decode")
    payload = json.loads(result.out)
    assert payload["files"].get("unreadable_image") == ["images/train/a.jpg"], payload
    with pytest.raises(ImageDecodeError):
        read_image(jpg)


def test_read_image_never_crashes(tmp_path):
    with pytest.raises(ImageDecodeError, match="not a decodable image"):
        read_image(_write(tmp_path / "x.jpg", "garbage"))
    with pytest.raises(ImageDecodeError):
        read_image(tmp_path / "absent.png")
    with pytest.raises(ImageDecodeError, match="empty"):
        read_image(_write(tmp_path / "empty.png", ""))
    assert read_image(_image(tmp_path / "ok.png")).shape == (48, 64, 3)


def _exif_rotated_jpeg(path: Path, orientation: int) -> Path:
    _image(path, 64, 48)
    data = path.read_bytes()
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    path.write_bytes(data[:2] + app1 + data[2:])
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp"])
def test_header_sizes_match_opencv(tmp_path, suffix):
    path = _image(tmp_path / f"x{suffix}", 37, 21)
    assert image_size(path) == (37, 21)


def test_header_size_follows_exif_rotation_like_imread(tmp_path):
    rotated = _exif_rotated_jpeg(tmp_path / "r.jpg", 6)
    height, width = cv2.imread(str(rotated)).shape[:2]
    assert (width, height) == (48, 64)  # OpenCV applied the rotation
    assert image_size(rotated) == (width, height)
    assert image_size(_exif_rotated_jpeg(tmp_path / "n.jpg", 1)) == (64, 48)


def _voc_xml(filename: str, objects: list[tuple], size=(64, 48)) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


def test_voc_reader(tmp_path):
    root = tmp_path / "VOC"
    for stem in ("1", "2", "3", "4"):
        _image(root / f"JPEGImages/{stem}.jpg")
    _write(root / "Annotations/1.xml", _voc_xml("1.jpg", [("dog", 0, (11, 6, 30, 20)),
                                                           ("cat", 1, (1, 1, 10, 10))]))
    _write(root / "Annotations/2.xml", _voc_xml("2.jpg", [("cat", 0, (1, 1, 80, 48)),
                                                           ("horse", 0, (5, 5, 9, 9))]))
    _write(root / "Annotations/3.xml", "<annotation><broken>")
    _write(root / "Annotations/4.xml", _voc_xml("4.jpg", [], size=(100, 100)))
    _write(root / "Annotations/5.xml", _voc_xml("5.jpg", [("cat", 0, (1, 1, 5, 5))]))
    _write(root / "labels.txt", "cat\ndog\n")
    _write(root / "ImageSets/Main/train.txt", "1\n2\n5\n")
    _write(root / "ImageSets/Main/val.txt", "4\n9\n")
    ds = load_detection_dataset(tmp_path / "VOC")
    assert ds.format == "voc" and ds.names == ("cat", "dog")
    assert [s.image_path.name for s in ds.train] == ["1.jpg", "2.jpg"]
    assert [s.image_path.name for s in ds.val] == ["4.jpg"]
    one = ds.train[0]
    np.testing.assert_allclose(one.boxes, [[10, 5, 30, 20]])  # 1-based inclusive -> xyxy
    assert one.classes.tolist() == [1]
    rep = ds.report
    assert rep.count(Problem.DIFFICULT) == 1 and rep.files_of(Problem.DIFFICULT) == [
        "Annotations/1.xml"]
    assert rep.count(Problem.BOX_OUTSIDE) == 1 and rep.count(Problem.UNKNOWN_CLASS) == 1
    assert rep.files_of(Problem.MALFORMED) == ["Annotations/3.xml"]
    assert rep.files_of(Problem.SIZE_MISMATCH) == ["Annotations/4.xml"]
    assert rep.files_of(Problem.MISSING_IMAGE) == ["JPEGImages/5.jpg",
                                                   "ImageSets/Main/val.txt:9"]
    assert rep.files_of(Problem.BACKGROUND) == ["JPEGImages/4.jpg"]
    # Without labels.txt the names are discovered (sorted) from the xml files.
    (root / "labels.txt").unlink()
    assert load_detection_dataset(root).names == ("cat", "dog", "horse")


def _coco_doc(files: list[str]) -> dict:
    return {
        "images": [{"id": 10 + i, "file_name": f, "width": 64, "height": 48}
                   for i, f in enumerate(files)],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"},
                       {"id": 7, "name": "train"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 90, "bbox": [4, 5, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 7, "bbox": [0, 0, 64, 48], "iscrowd": 0},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1},
            {"id": 4, "image_id": 11, "category_id": 3, "bbox": [1, 1, 0, 5], "iscrowd": 0},
            {"id": 5, "image_id": 11, "category_id": 55, "bbox": [1, 1, 5, 5]},
            {"id": 6, "image_id": 999, "category_id": 3, "bbox": [1, 1, 5, 5]},
        ],
    }


def test_coco_reader_remaps_category_ids(tmp_path):
    root = tmp_path / "coco"
    files = ["a.jpg", "b.jpg", "c.jpg"]
    for f in files:
        _image(root / "val2017" / f)
    ann = root / "annotations" / "instances_val2017.json"
    _write(ann, json.dumps(_coco_doc(files)))
    ds = load_detection_dataset(ann, split_val=0.0)
    assert ds.format == "coco"
    assert ds.names == ("car", "train", "toothbrush") and ds.category_ids == (3, 7, 90)
    by_id = {s.image_id: s for s in ds.train}
    np.testing.assert_allclose(by_id[10].boxes, [[4, 5, 14, 25], [0, 0, 64, 48]])
    assert by_id[10].classes.tolist() == [2, 1]
    assert [ds.category_ids[c] for c in by_id[10].classes] == [90, 7]
    rep = ds.report
    assert rep.files_of(Problem.CROWD) == ["val2017/a.jpg"]
    assert rep.files_of(Problem.ZERO_AREA) == ["val2017/b.jpg"]
    assert rep.files_of(Problem.UNKNOWN_CLASS) == ["val2017/b.jpg"]
    assert rep.files_of(Problem.MALFORMED) == ["instances_val2017.json: annotation 6"]
    assert rep.files_of(Problem.BACKGROUND) == ["val2017/b.jpg", "val2017/c.jpg"]


def test_coco_folder_with_train_and_val_and_images_override(tmp_path, run_cli):
    root = tmp_path / "coco"
    for f in ("a.jpg", "b.jpg"):
        _image(root / "pics" / f)
    _write(root / "annotations/instances_train.json", json.dumps(_coco_doc(["a.jpg"])))
    _write(root / "annotations/instances_val.json", json.dumps(_coco_doc(["b.jpg"])))
    assert_one_line_error(run_cli("data", "check", root), "cannot find the images", "--images")
    ds = load_detection_dataset(root, images=root / "pics")
    assert len(ds.train) == 1 and len(ds.val) == 1
    assert ds.train[0].image_path.name == "a.jpg" and ds.val[0].image_path.name == "b.jpg"
    result = run_cli("data", "check", root, "--images", root / "pics", "--json")
    assert json.loads(result.out)["images"] == {"train": 1, "val": 1}
    _write(tmp_path / "bad.json", "{not json")
    assert_one_line_error(run_cli("data", "check", tmp_path / "bad.json"), "not valid JSON")
    _write(tmp_path / "other.json", json.dumps({"images": []}))
    assert_one_line_error(run_cli("data", "check", tmp_path / "other.json"),
                          "not a COCO detection json")


def test_unknown_folder_format_is_a_one_line_error(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("data", "check", tmp_path / "empty"),
                          "cannot tell the dataset format")


def test_windows_line_endings_and_bom_in_labels(tmp_path):
    root = tmp_path / "ds"
    _image(root / "images/train/a.jpg")
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_bytes(
        "\ufeff0 0.5 0.5 0.5 0.5\r\n1 0.5 0.5 0.25 0.25\r\n".encode("utf-8"))
    _write(root / "data.yaml", "train: images/train\nval: images/train\nnames: [a, b]\n")
    ds = load_detection_dataset(root / "data.yaml")
    assert ds.report.ok, ds.report.counts
    assert ds.train[0].classes.tolist() == [0, 1]


@pytest.mark.parametrize("args", [("data", "--help"), ("data", "synth", "--help"),
                                  ("data", "check", "--help")])
def test_data_command_help(run_cli, args):
    result = run_cli(*args)
    assert result.exit_code == 0 and "Usage:" in result.out
