"""``edgecnn eval`` goes on past images whose header is intact but whose pixels are not (the
files ``data check`` without ``--decode`` passes), and says how many it skipped: classify and
detect, ``.tflite`` and Keras."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent
TINY_DETECT = ROOT / "golden" / "tiny_detect.tflite"   # 64x64 RGB: circle, square, triangle


def _truncated_jpeg(path: Path, shape=(48, 64, 3)) -> Path:
    """A JPEG cut after its first scan starts: the size header reads, decoding fails."""
    image = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    path.write_bytes(data[:data.index(b"\xff\xda") + 40])
    return path


def _detect_dataset(root: Path, names) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(3):
            image = np.full((48, 64, 3), 60, np.uint8)
            cv2.rectangle(image, (10 + 5 * i, 8), (40 + 5 * i, 40), (255, 255, 255), -1)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            (root / "labels" / split / f"{i}.txt").write_text(
                f"{i % len(names)} {(25 + 5 * i) / 64:.5f} {24 / 48:.5f} {30 / 64:.5f} "
                f"{32 / 48:.5f}\n")
        _truncated_jpeg(root / "images" / split / "3.jpg")
        (root / "labels" / split / "3.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


def _check_detect_result(res, n_images: int = 3) -> dict:
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["skipped_images"] == 1 and doc["images"] == n_images
    assert doc["instances"] == n_images      # the skipped image's box is not a miss
    assert "warning: skipped 1 image(s) that failed to decode" in res.err
    assert "3.jpg" in res.err
    return doc


def test_tflite_detector_eval_skips_and_counts_undecodable_images(tmp_path, run_cli):
    data = _detect_dataset(tmp_path / "ds", ["circle", "square", "triangle"])
    check = run_cli("data", "check", data, "--json")
    assert check.exit_code == 0 and json.loads(check.out)["ok"]   # the header is fine
    doc = _check_detect_result(run_cli("eval", TINY_DETECT, "--data", data, "--json"))
    assert 0.0 <= doc["map"] <= doc["map50"] <= 1.0


def test_tflite_detector_eval_with_no_decodable_image_is_one_line_error(tmp_path, run_cli):
    from conftest import assert_one_line_error

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    _truncated_jpeg(root / "images" / "a.jpg")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images\nval: images\nnames: [circle, square, "
                                    "triangle]\n")
    res = run_cli("eval", TINY_DETECT, "--data", root / "data.yaml")
    assert_one_line_error(res, "none of the 1 val images could be decoded", "a.jpg")


def test_keras_detector_eval_skips_and_counts_undecodable_images(tmp_path, run_cli):
    pytest.importorskip("tensorflow")
    from model_factory import detector_run

    data = _detect_dataset(tmp_path / "ds", ["a", "b", "c", "d"])
    _check_detect_result(run_cli("eval", detector_run(), "--data", data, "--json"))


def _digit_folder(root: Path) -> Path:
    from model_factory import digits_data

    data = digits_data()
    for i, (image, label) in enumerate(zip(data.x_test[:40], data.y_test[:40])):
        (root / str(int(label))).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / str(int(label)) / f"{i}.png"), image)
    for label in range(10):      # every digit class exists, even if the sample missed one
        (root / str(label)).mkdir(exist_ok=True)
    _truncated_jpeg(root / "3" / "broken.jpg", (8, 8, 3))
    return root


@pytest.mark.parametrize("backend", ["tflite", "keras"])
def test_classifier_eval_skips_and_counts_undecodable_images(tmp_path, run_cli, backend):
    pytest.importorskip("tensorflow")
    import model_factory as mf

    model = mf.converted("int8").path if backend == "tflite" else mf.digits_run()
    folder = _digit_folder(tmp_path / "digits")
    res = run_cli("eval", model, "--data", folder, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["backend"] == backend and doc["samples"] == 40 and doc["skipped_images"] == 1
    assert any("3/broken.jpg" in w for w in doc["warnings"])
    assert "warning: skipped 1 unreadable image file(s)" in res.err
