"""Dataset readers against the faults of issue 15, each rebuilt from its one-line reproducer:
numbers that overflow, text that is not UTF-8, nesting and alias bombs, FIFOs and devices in
place of files, duplicate ids, type confusion, and image folders holding more than images."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn import safeio
from edgecnn.data.checks import Problem
from edgecnn.data.detection import load_detection_dataset
from edgecnn.errors import UsageError
from edgecnn.images import scan_images

CAT = "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax>" \
      "<ymax>20</ymax></bndbox></object>"
SIZE = "<size><width>64</width><height>48</height></size>"


def _image(path: Path, width: int = 64, height: int = 48, suffix_ok: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.full((height, width, 3), 120, np.uint8)):
        raise RuntimeError(f"cannot write {path}")
    return path


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _yolo(root: Path, label: str | None = "0 0.5 0.5 0.2 0.2\n",
          yaml: str = "train: images/train\nnames: [a, b]\n") -> Path:
    """Images a.jpg (label ``label``) and b.jpg (one good box)."""
    _image(root / "images/train/a.jpg")
    _image(root / "images/train/b.jpg")
    _write(root / "labels/train/b.txt", "1 0.5 0.5 0.2 0.2\n")
    if label is not None:
        _write(root / "labels/train/a.txt", label)
    return _write(root / "data.yaml", yaml)


def _voc(root: Path, xml: str | bytes, name: str = "a") -> Path:
    _image(root / f"JPEGImages/{name}.jpg")
    _write(root / f"Annotations/{name}.xml", xml)
    return root


def _xml(objects: str = CAT, size: str = SIZE) -> str:
    return f"<annotation><filename>a.jpg</filename>{size}{objects}</annotation>"


def _coco(root: Path, doc: dict | str, images=("a.jpg", "b.jpg", "c.jpg")) -> Path:
    for name in images:
        _image(root / name)
    return _write(root / "instances.json", doc if isinstance(doc, str) else json.dumps(doc))


def _boxes(ds) -> dict[str, list]:
    return {s.image_path.name: s.boxes.tolist() for s in ds.train + ds.val}


# ---- numbers ---------------------------------------------------------------------------------

def test_yolo_class_id_1e20_is_an_unknown_class_not_an_overflow(tmp_path):
    labels = "1e20 0.5 0.5 0.1 0.1\n-1e20 0.5 0.5 0.1 0.1\n0 nan 0.5 0.1 0.1\n" \
             "0 0.5 0.5 -0.1 0.1\n0 0.5 0.5 1e308 0.2\n0 0.5 0.5 0.25 0.5\n"
    ds = load_detection_dataset(_yolo(tmp_path, labels), split_val=0)
    report = ds.report
    assert report.count(Problem.UNKNOWN_CLASS) == 2
    assert report.count(Problem.MALFORMED) == 2          # NaN, negative width
    assert report.files_of(Problem.UNKNOWN_CLASS) == ["labels/train/a.txt"]
    a = next(s for s in ds.train if s.image_path.name == "a.jpg")
    np.testing.assert_allclose(a.boxes, [[0, 19.2, 64, 28.8], [24, 12, 40, 36]], atol=1e-4)


@pytest.mark.parametrize("field", ["<width>inf</width><height>48</height>",
                                   "<width>1e400</width><height>48</height>",
                                   "<width>-5</width><height>nan</height>",
                                   "<width>99999999999</width><height>48</height>"])
def test_voc_size_that_is_not_a_size_is_counted(tmp_path, field):
    ds = load_detection_dataset(_voc(tmp_path, _xml(size=f"<size>{field}</size>")), split_val=0)
    assert ds.report.count(Problem.MALFORMED) == 1
    assert _boxes(ds) == {"a.jpg": [[0.0, 0.0, 20.0, 20.0]]}


def test_voc_difficult_and_coordinates_that_are_not_numbers(tmp_path):
    objects = CAT.replace("</name>", "</name><difficult>inf</difficult>") + \
        CAT.replace("<xmin>1</xmin>", "<xmin>nan</xmin>") + \
        CAT.replace("<xmax>20</xmax>", "<xmax>1e40</xmax>") + CAT
    ds = load_detection_dataset(_voc(tmp_path, _xml(objects)), split_val=0)
    assert ds.report.count(Problem.MALFORMED) == 2
    assert _boxes(ds)["a.jpg"] == [[0.0, 0.0, 64.0, 20.0], [0.0, 0.0, 20.0, 20.0]]


# ---- encodings -------------------------------------------------------------------------------

@pytest.mark.parametrize("declaration", ["", '<?xml version="1.0" encoding="utf-8"?>'])
def test_latin1_voc_xml_is_read_and_counted(tmp_path, declaration):
    xml = (declaration + _xml(CAT.replace("cat", "caf\xe9"))).encode("latin-1")
    ds = load_detection_dataset(_voc(tmp_path, xml), split_val=0)
    assert ds.names == ("caf\xe9",)
    assert ds.report.files_of(Problem.NOT_UTF8) == ["Annotations/a.xml"]


def test_latin1_names_file_and_image_sets(tmp_path):
    root = _voc(tmp_path, _xml(CAT.replace("cat", "caf\xe9")))
    _voc(root, _xml(CAT.replace("cat", "caf\xe9")).replace("a.jpg", "\xe9t\xe9.jpg"),
         name="\xe9t\xe9")
    _write(root / "labels.txt", "caf\xe9\n".encode("latin-1"))
    _write(root / "ImageSets/Main/train.txt", "a\n\xe9t\xe9\n".encode("latin-1"))
    _write(root / "ImageSets/Main/val.txt", "\xe9t\xe9\n".encode("cp1252"))  # also in train
    ds = load_detection_dataset(root)
    assert ds.names == ("caf\xe9",)
    assert [s.image_path.name for s in ds.train] == ["a.jpg", "\xe9t\xe9.jpg"] and not ds.val
    assert set(ds.report.files_of(Problem.NOT_UTF8)) == {
        "labels.txt", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt"}
    assert ds.report.files_of(Problem.DUPLICATE) == ["ImageSets/Main/val.txt:\xe9t\xe9"]


def test_utf16_and_latin1_yolo_labels(tmp_path):
    label = "0 0.5 0.5 0.25 0.5\n".encode("utf-16")        # with a byte-order mark
    root = tmp_path
    _yolo(root, None)
    _write(root / "labels/train/a.txt", label)
    _write(root / "labels/train/b.txt", "1 0.5 0.5 0.2 0.2 # \xe9\n".encode("latin-1"))
    ds = load_detection_dataset(root / "data.yaml", split_val=0)
    assert _boxes(ds)["a.jpg"] == [[24.0, 12.0, 40.0, 36.0]]
    assert ds.report.files_of(Problem.NOT_UTF8) == ["labels/train/b.txt"]


# ---- nesting and aliases ---------------------------------------------------------------------

def test_deeply_nested_yaml_is_one_line_error(tmp_path):
    yaml = "train: images/train\nnames: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(UsageError, match="nests deeper than 64 levels"):
        load_detection_dataset(_yolo(tmp_path, yaml=yaml))


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):     # 9**9 = 387,420,489 values
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    yaml = "\n".join(lines) + "\ntrain: images/train\nnames: *i\n"
    assert len(yaml) < 400
    start = time.perf_counter()
    with pytest.raises(UsageError, match="expands to more than 1,000,000 values"):
        load_detection_dataset(_yolo(tmp_path, yaml=yaml))
    assert time.perf_counter() - start < 10


def test_yaml_with_control_characters_is_one_line_error(tmp_path):
    with pytest.raises(UsageError, match="data.yaml holds control characters"):
        load_detection_dataset(_yolo(tmp_path, yaml="train: images/train\nnames: [a\x04]\n"))
    with pytest.raises(UsageError, match="Exceeds the limit"):
        load_detection_dataset(_yolo(tmp_path, yaml=f"train: images/train\nnc: {'9' * 5000}\n"))


def test_yaml_names_must_be_plain_values(tmp_path):
    yaml = "x: &x [1, 2]\ntrain: images/train\nnames: [a, *x]\n"
    with pytest.raises(UsageError, match="a class name is a list"):
        load_detection_dataset(_yolo(tmp_path / "1", yaml=yaml))
    yaml = "train: [images/train, {a: 1}]\nnames: [a, b]\n"
    with pytest.raises(UsageError, match="train must be a path"):
        load_detection_dataset(_yolo(tmp_path / "2", yaml=yaml))
    yaml = "train: images/train\nnames: {0: a, .inf: b}\n"
    with pytest.raises(UsageError, match="names keys must be class ids"):
        load_detection_dataset(_yolo(tmp_path / "3", yaml=yaml))


def test_deeply_nested_coco_json_is_one_line_error(tmp_path):
    doc = '{"images": [], "annotations": [], "categories": [], "x": ' + "[" * 100000 + \
          "]" * 100000 + "}"
    with pytest.raises(UsageError, match="nests too deeply"):
        load_detection_dataset(_coco(tmp_path, doc))


def test_coco_numbers_too_big_for_a_float(tmp_path):
    doc = ('{"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],'
           '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 1%s, 9]}],'
           '"categories": [{"id": 1, "name": "c"}]}' % ("0" * 400))
    ds = load_detection_dataset(_coco(tmp_path / "1", doc), split_val=0)
    assert ds.report.count(Problem.MALFORMED) == 1
    doc = doc.replace('"categories": [{"id": 1', '"categories": [{"id": Infinity')
    with pytest.raises(UsageError, match="lacks an integer 'id'"):
        load_detection_dataset(_coco(tmp_path / "2", doc))
    with pytest.raises(UsageError, match="not valid JSON"):      # over Python's 4,300 digits
        load_detection_dataset(_coco(tmp_path / "3", doc.replace("0" * 400, "0" * 5000)))


# ---- regular files only ----------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_label_that_is_a_fifo_or_dev_zero_is_counted_not_read(tmp_path, kind):
    yaml = _yolo(tmp_path, None)
    label = tmp_path / "labels/train/a.txt"
    if kind == "fifo":
        os.mkfifo(label)
    else:
        label.symlink_to("/dev/zero")
    ds = load_detection_dataset(yaml, split_val=0)
    assert ds.report.files_of(Problem.NOT_REGULAR) == ["labels/train/a.txt"]
    assert _boxes(ds)["a.jpg"] == []


@pytest.mark.timeout(60)
def test_fifo_images_and_annotations_are_never_opened(tmp_path):
    root = _voc(tmp_path / "voc", _xml())
    os.mkfifo(root / "Annotations/b.xml")
    (root / "Annotations/c.xml").write_text(_xml().replace("a.jpg", "c.jpg"))
    os.mkfifo(root / "JPEGImages/c.jpg")
    ds = load_detection_dataset(root, split_val=0)
    assert ds.report.files_of(Problem.NOT_REGULAR) == ["Annotations/b.xml", "JPEGImages/c.jpg"]
    coco = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "fifo.jpg"}],
            "annotations": [], "categories": [{"id": 1, "name": "c"}]}
    path = _coco(tmp_path / "coco", coco, images=("a.jpg",))
    os.mkfifo(tmp_path / "coco/fifo.jpg")
    ds = load_detection_dataset(path, split_val=0)
    assert ds.report.files_of(Problem.NOT_REGULAR) == ["fifo.jpg"]


@pytest.mark.timeout(60)
def test_dataset_files_that_are_fifos_or_devices_are_one_line_errors(tmp_path):
    yaml = tmp_path / "y/data.yaml"
    yaml.parent.mkdir()
    yaml.symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="not a regular file"):
        load_detection_dataset(yaml)
    os.mkfifo(tmp_path / "instances.json")
    with pytest.raises(UsageError, match="a FIFO"):
        load_detection_dataset(tmp_path / "instances.json")
    big = _yolo(tmp_path / "big", "0 0.5 0.5 0.1 0.1\n" * 250_000)    # 4.5 MB of labels
    assert load_detection_dataset(big, split_val=0).report.count(Problem.TOO_LARGE) == 1


def test_paths_no_file_system_can_hold(tmp_path):
    root = tmp_path
    _yolo(root, None, yaml="train: list.txt\nnames: [a, b]\n")
    _write(root / "list.txt", "images/train/a.jpg\nimages/\x00x.jpg\n" + "y" * 5000 + ".jpg\n"
           "~nosuchuser/z.jpg\nimages/train/a.jpg\n")
    ds = load_detection_dataset(root / "data.yaml", split_val=0)
    assert ds.report.count(Problem.MALFORMED) == 1            # the NUL line
    assert ds.report.count(Problem.MISSING_IMAGE) == 2
    assert ds.report.count(Problem.DUPLICATE) == 1
    assert [s.image_path.name for s in ds.train] == ["a.jpg"]


# ---- ids and types ---------------------------------------------------------------------------

def _coco_doc(images, annotations):
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 3, "name": "cat"}]}


def test_coco_duplicate_image_ids_are_skipped_and_counted(tmp_path):
    doc = _coco_doc([{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                     {"id": 1, "file_name": "b.jpg", "width": 64, "height": 48},
                     {"id": 2, "file_name": "c.jpg", "width": 64, "height": 48}],
                    [{"id": 1, "image_id": 1, "bbox": [1, 1, 10, 10], "category_id": 3},
                     {"id": 2, "image_id": 2, "bbox": [2, 2, 10, 10], "category_id": 3}])
    ds = load_detection_dataset(_coco(tmp_path, doc), split_val=0)
    assert _boxes(ds) == {"c.jpg": [[2.0, 2.0, 12.0, 12.0]]}   # b.jpg never gets a.jpg's box
    assert ds.report.count(Problem.DUPLICATE) == 2
    assert ds.report.files_of(Problem.DUPLICATE)[0] == "instances.json: image id 1 (a.jpg)"


def test_coco_images_without_file_name_or_id_are_counted(tmp_path):
    doc = _coco_doc([{"id": 1, "file_name": "a.jpg"}, {"id": 2}, {"id": "3", "file_name": "b.jpg"},
                     {"id": 4, "file_name": ["c.jpg"]}, {"id": True, "file_name": "c.jpg"}, 7],
                    [])
    ds = load_detection_dataset(_coco(tmp_path, doc), split_val=0)
    assert list(_boxes(ds)) == ["a.jpg"]
    assert ds.report.count(Problem.MALFORMED) == 5


@pytest.mark.parametrize("bbox", ["1234", [1, 2, 3], [1, 2, "3", 4], [1, 2, True, 4],
                                  {"x": 1}, [1, 2, None, 4], None])
def test_coco_bbox_must_be_four_numbers(tmp_path, bbox):
    doc = _coco_doc([{"id": 1, "file_name": "a.jpg"}],
                    [{"id": 1, "image_id": 1, "bbox": bbox, "category_id": 3},
                     {"id": 2, "image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 3,
                      "iscrowd": "0"}])
    ds = load_detection_dataset(_coco(tmp_path, doc), split_val=0)
    assert _boxes(ds) == {"a.jpg": []}
    assert ds.report.count(Problem.MALFORMED) == 2          # and iscrowd "0" is not 0


def test_loose_class_id_without_names_file_is_bounded(tmp_path):
    _image(tmp_path / "images/a.jpg")
    _write(tmp_path / "labels/a.txt", "2147483646 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UsageError, match="class id 2147483646 .* no classes.txt"):
        load_detection_dataset(tmp_path)


def test_loose_images_sharing_a_stem_are_counted(tmp_path):
    _image(tmp_path / "images/a.jpg")
    _image(tmp_path / "images/a.png")
    _write(tmp_path / "labels/a.txt", "0 0.5 0.5 0.1 0.1\n")
    ds = load_detection_dataset(tmp_path, split_val=0)
    assert [s.image_path.name for s in ds.train] == ["a.jpg"]
    assert ds.report.files_of(Problem.DUPLICATE) == ["images/a.png"]


# ---- image folders hold more than images -----------------------------------------------------

def test_yolo_folder_counts_hidden_other_formats_and_fifos(tmp_path):
    yaml = _yolo(tmp_path)
    _image(tmp_path / "images/train/.ipynb_checkpoints/a-checkpoint.jpg")
    _image(tmp_path / "images/train/._a.jpg")
    cv2.imwrite(str(tmp_path / "images/train/anim.gif"), np.zeros((8, 8, 3), np.uint8))
    _image(tmp_path / "images/train/sub/c.tif")
    os.mkfifo(tmp_path / "images/train/pipe.jpg")
    ds = load_detection_dataset(yaml, split_val=0)
    assert sorted(s.image_path.name for s in ds.train) == ["a.jpg", "b.jpg", "c.tif"]
    report = ds.report
    assert report.files_of(Problem.HIDDEN) == ["images/train/._a.jpg",
                                               "images/train/.ipynb_checkpoints"]
    assert report.files_of(Problem.NOT_IMAGE) == ["images/train/anim.gif"]
    assert report.files_of(Problem.NOT_REGULAR) == ["images/train/pipe.jpg"]
    assert "hidden_skipped" not in report.problems      # informational


def test_image_folder_says_what_it_did_not_read(tmp_path):
    from edgecnn.data import load_classification

    for cls in ("cat", "dog"):
        for i in range(3):
            _image(tmp_path / cls / f"{i}.png", 16, 16)
    _image(tmp_path / "cat/scan.tif", 16, 16)
    cv2.imwrite(str(tmp_path / "dog/anim.gif"), np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / "dog/notes.txt", "x")
    _image(tmp_path / "stray.jpg", 16, 16)
    _image(tmp_path / ".thumbnails/x.png", 16, 16)
    _image(tmp_path / "cat/._0.png", 16, 16)
    _image(tmp_path / "cat/more/5.png", 16, 16)
    _write(tmp_path / "dog/broken.jpg", b"\xff\xd8\xff\xe0garbage")
    os.mkfifo(tmp_path / "dog/pipe.png")
    data = load_classification(str(tmp_path), imgsz=16)
    assert data.labels == ("cat", "dog")
    assert len(data.x_train) + len(data.x_val) == 7       # 3 + 3 + scan.tif
    assert data.skipped_images == 1
    text = "\n".join(data.warnings)
    for needle in ("1 file(s) at the root", "stray.jpg", "2 hidden", ".thumbnails",
                   "cat/._0.png", ".gif: 1", ".txt: 1", "1 folder(s) inside class folders",
                   "cat/more", "1 unreadable image", "dog/broken.jpg", "1 FIFO", "dog/pipe.png"):
        assert needle in text, (needle, text)


def test_idx_files_that_are_bombs_devices_or_broken(tmp_path):
    from edgecnn.data.idx import read_idx

    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(UsageError, match="not a regular file"):
        read_idx(tmp_path / "zero")
    header = b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big") + (100000).to_bytes(4, "big") * 2
    bomb = _write(tmp_path / "bomb.gz", gzip.compress(header + bytes(300 << 20), 9))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UsageError, match="inflates to more than 256 MB"):
        read_idx(bomb)
    broken = bytearray(gzip.compress(header + bytes(1000)))
    broken[20:30] = b"\xff" * 10
    with pytest.raises(UsageError, match="cannot read idx file"):
        read_idx(_write(tmp_path / "broken.gz", bytes(broken)))
    wrap = b"\x00\x00\x08\x04" + ((1 << 32) - 1).to_bytes(4, "big") * 4      # 2**128 bytes
    with pytest.raises(UsageError, match="truncated"):
        read_idx(_write(tmp_path / "wrap", wrap))
    with pytest.raises(UsageError, match="0 dimensions"):
        read_idx(_write(tmp_path / "scalar", b"\x00\x00\x08\x00"))


# ---- the helpers -----------------------------------------------------------------------------

def test_decode_text_and_bounded_reads(tmp_path):
    assert safeio.decode_text("é".encode()) == ("é", "utf-8")
    assert safeio.decode_text(b"\xef\xbb\xbfx") == ("x", "utf-8")
    assert safeio.decode_text("é".encode("utf-16-le").join([b"\xff\xfe", b""])) == \
        ("é", "utf-16-le")
    assert safeio.decode_text(b"caf\xe9") == ("café", "latin-1")
    path = _write(tmp_path / "f", b"12345")
    assert safeio.read_bytes(path, 5) == b"12345"
    with pytest.raises(safeio.FileTooLargeError):
        safeio.read_bytes(path, 4)
    with pytest.raises(FileNotFoundError):
        safeio.read_bytes(tmp_path / "a\x00b", 4)
    assert not safeio.exists("x" * 5000) and not safeio.is_regular_file("a\x00b")
    assert safeio.user_path("~nosuchuser/x") == Path("~nosuchuser/x")


def test_scan_survives_link_loops(tmp_path):
    _image(tmp_path / "a/x.png", 8, 8)
    (tmp_path / "a/loop").symlink_to(tmp_path / "a")
    (tmp_path / "a/dangling.png").symlink_to(tmp_path / "nowhere.png")
    scan = scan_images(tmp_path, recursive=True)
    assert [p.name for p in scan.images] == ["x.png"]
    assert [p.name for p in scan.special] == ["dangling.png"]


def test_data_check_prints_the_new_kinds(tmp_path, run_cli):
    root = _voc(tmp_path, _xml(CAT.replace("cat", "caf\xe9")).encode("latin-1"))
    res = run_cli("data", "check", root, "--json")
    assert res.exit_code == 0, res.err
    assert json.loads(res.out)["counts"] == {"not_utf8": 1}
    res = run_cli("data", "check", root, "--strict")
    assert res.exit_code == 2 and "not_utf8" in res.err and "Annotations/a.xml" in res.err


def test_png_chunk_longer_than_the_file_is_refused_before_decoding(tmp_path):
    """Found by the dataset fuzzer: one flipped byte in the IDAT length of a 149-byte PNG made
    OpenCV 5.0 allocate 2.9 GB for 6 s. Checked in a fresh process, for its peak RSS."""
    import subprocess
    import sys

    data = bytearray(cv2.imencode(".png", np.full((12, 20, 3), 7, np.uint8))[1].tobytes())
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = (0xB600005C).to_bytes(4, "big")
    path = _write(tmp_path / "flipped.png", bytes(data))
    code = ("import sys\nfrom edgecnn.data.detection import ImageDecodeError, read_image\n"
            f"try:\n    read_image({str(path)!r})\nexcept ImageDecodeError as err:\n"
            "    print(err.reason)\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0] == "corrupt PNG: chunk b'IDAT' declares 3053453404 bytes, the file has " \
                     f"{len(data) - idat - 12} left"
    assert int(out[1]) < 300_000        # kB
