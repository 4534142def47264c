"""Classification dataset readers: idx (gzip and raw), digits, image folders, missing data."""

from __future__ import annotations

import gzip
import struct

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error
from edgecnn.data import load_classification
from edgecnn.data.idx import read_idx
from edgecnn.errors import UsageError


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_folder(folder, n_train=60, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 12, 12), dtype=np.uint8)
        y = (np.arange(n) % 3).astype(np.uint8)
        arrays[prefix] = (x, y)
        for kind, data in (("images-idx3-ubyte", x), ("labels-idx1-ubyte", y)):
            raw = _idx_bytes(data)
            name = f"{prefix}-{kind}" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_gzip_and_raw(tmp_path, gz):
    arrays = _write_idx_folder(tmp_path / "idx", gz=gz)
    data = load_classification(str(tmp_path / "idx"), val_split=0.2, seed=1)
    assert data.has_test and data.color == "GRAY"
    assert data.x_train.shape[1:] == (12, 12, 1) and data.x_train.dtype == np.uint8
    assert len(data.x_train) + len(data.x_val) == 60
    assert len(data.x_val) == 12                    # stratified: 20% of each of 3 classes
    assert sorted(np.bincount(data.y_val).tolist()) == [4, 4, 4]
    np.testing.assert_array_equal(data.x_test[..., 0], arrays["t10k"][0])
    assert data.labels == ("0", "1", "2")
    # every training image is one of the file's images with its own label
    lookup = {im.tobytes(): int(lab) for im, lab in zip(*arrays["train"])}
    assert all(lookup[im[..., 0].tobytes()] == lab for im, lab in zip(data.x_train, data.y_train))


def test_idx_resize_color_and_labels_file(tmp_path):
    _write_idx_folder(tmp_path / "idx")
    (tmp_path / "idx" / "labels.txt").write_text("cat\ndog\nbird\n")
    data = load_classification(str(tmp_path / "idx"), imgsz=16, color="RGB", max_train=10)
    assert data.x_train.shape == (10, 16, 16, 3) and data.color == "RGB"
    assert data.labels == ("cat", "dog", "bird")


def test_truncated_idx_is_a_usage_error(tmp_path):
    raw = _idx_bytes(np.zeros((10, 4, 4), np.uint8))
    (tmp_path / "bad").write_bytes(raw[:-5])
    with pytest.raises(UsageError, match="truncated"):
        read_idx(tmp_path / "bad")
    (tmp_path / "notidx").write_bytes(b"hello world")
    with pytest.raises(UsageError, match="not an idx"):
        read_idx(tmp_path / "notidx")


def test_digits_offline_scaled_and_seeded():
    a = load_classification("digits", seed=3)
    b = load_classification("digits", seed=3)
    c = load_classification("digits", seed=4)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.max() == 255
    assert len(a.x_train) + len(a.x_val) == 1797 and not a.has_test and not a.hflip
    np.testing.assert_array_equal(a.y_val, b.y_val)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_test is a.x_val


def _write_image_folder(root, classes=("cat", "dog"), per_class=5, corrupt=1):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
            cv2.imwrite(str(root / c / f"{i}.{'png' if i % 2 else 'jpg'}"), image)
    for i in range(corrupt):
        (root / classes[0] / f"broken{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def test_image_folder_counts_corrupt_files(tmp_path):
    _write_image_folder(tmp_path / "pets", corrupt=2)
    data = load_classification(str(tmp_path / "pets"), imgsz=24, val_split=0.2)
    assert data.labels == ("cat", "dog") and data.color == "RGB"
    assert len(data.x_train) + len(data.x_val) == 10
    assert data.x_train.shape[1:] == (24, 24, 3)
    assert any("skipped 2 unreadable" in w for w in data.warnings), data.warnings
    gray = load_classification(str(tmp_path / "pets"), imgsz=24, color="GRAY")
    assert gray.x_train.shape[1:] == (24, 24, 1)


def test_one_class_folder_is_one_line_error(tmp_path, run_cli):
    _write_image_folder(tmp_path / "one", classes=("only",), corrupt=0)
    with pytest.raises(UsageError, match="at least 2"):
        load_classification(str(tmp_path / "one"))
    result = run_cli("train", "--data", tmp_path / "one", "--arch", "dsnet_test",
                     "--out", tmp_path / "run")
    assert_one_line_error(result, "at least 2")
    assert not (tmp_path / "run").exists()


def test_missing_fashion_mnist_names_the_three_ways(tmp_path, run_cli):
    result = run_cli("train", "--data", "fashion-mnist", "--data-dir", tmp_path / "empty",
                     "--arch", "dsnet_test", "--out", tmp_path / "run")
    assert_one_line_error(result, "fashion-mnist", "apt-get install dataset-fashion-mnist",
                          "--data-dir", "online")
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_and_bad_options(tmp_path):
    with pytest.raises(UsageError, match="unknown dataset"):
        load_classification(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="val split"):
        load_classification("digits", val_split=1.5)
    with pytest.raises(UsageError, match="color"):
        load_classification("digits", color="CMYK")
