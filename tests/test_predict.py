"""``edgecnn predict``: top-k for a real classifier, boxes for a detector whose answer is
known, drawn copies with --save, unreadable images counted, and bad models refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from conftest import BLOCK_TENSORFLOW, assert_one_line_error

pytest.importorskip("tensorflow")   # fixtures are converted / built with TensorFlow

import model_factory as mf  # noqa: E402


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory):
    """Ten digits from the held-out split, enlarged to 64x64 BGR PNGs, and their labels."""
    folder = tmp_path_factory.mktemp("digits_png")
    data = mf.digits_data()
    paths = []
    for i in range(10):
        big = cv2.resize(data.x_test[i], (64, 64), interpolation=cv2.INTER_NEAREST)
        path = folder / f"digit_{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        paths.append(path)
    return paths, data.x_test[:10]


def test_classify_json_top_k(run_cli, digit_images):
    paths, originals = digit_images
    res = run_cli("predict", mf.converted("int8").path, *paths, "--top-k", "3", "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["task"] == "classify" and doc["warnings"] == 0 and len(doc["results"]) == 10
    keras_top1 = mf.keras_probs(originals).argmax(1)
    same = 0
    for r, expected in zip(doc["results"], keras_top1):
        cats = r["categories"]
        assert len(cats) == 3 and (r["width"], r["height"]) == (64, 64)
        scores = [c["score"] for c in cats]
        # int8 softmax output: steps of 1/256, so the sum may exceed 1 by a few steps
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 3 / 256
        assert cats[0]["label"] == str(cats[0]["index"])
        same += cats[0]["index"] == expected
    assert same >= 9


def test_text_output_and_folder_argument(run_cli, digit_images):
    paths, _ = digit_images
    res = run_cli("predict", mf.converted("float32").path, paths[0].parent, "--top-k", "2")
    assert res.exit_code == 0, res.err
    lines = [ln for ln in res.out.splitlines() if ln.startswith(str(paths[0].parent))]
    assert len(lines) == 10 and all(ln.count("(") >= 2 for ln in lines)


def test_save_draws_results(run_cli, digit_images, tmp_path):
    paths, _ = digit_images
    out = tmp_path / "drawn"
    res = run_cli("predict", mf.converted("int8").path, *paths[:3], "--save", out, "--json")
    assert res.exit_code == 0, res.err
    saved = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert [p.name for p in saved] == [p.name for p in paths[:3]]
    for src, dst in zip(paths[:3], saved):
        a, b = cv2.imread(str(src)), cv2.imread(str(dst))
        # a small image is enlarged by whole pixels, its top-3 in a caption band below it
        factor = 320 // a.shape[0]
        assert b.shape[1] == a.shape[1] * factor and b.shape[0] > a.shape[0] * factor
        big = cv2.resize(a, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
        assert np.abs(b[:big.shape[0]].astype(int) - big).max() <= 8   # png: lossless
        band = b[big.shape[0]:]
        assert (band != 255).any(axis=2).mean() > 0.05           # the labels and score bars
    assert [r["saved"] for r in json.loads(res.out)["results"]] == [str(p) for p in saved]


def test_unreadable_images_are_counted(run_cli, digit_images, tmp_path):
    paths, _ = digit_images
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    res = run_cli("predict", mf.converted("int8").path, paths[0], broken, tmp_path / "gone.jpg",
                  paths[1], "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert len(doc["results"]) == 2 and doc["warnings"] == 2
    assert {s["image"] for s in doc["skipped"]} == {str(broken), str(tmp_path / "gone.jpg")}
    assert "warning: skipped" in res.err and "2 image(s) could not be read" in res.err


def test_no_readable_image_exits_2(run_cli, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    res = run_cli("predict", mf.converted("int8").path, broken)
    assert_one_line_error(res, "none of the 1 image(s) could be read")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    assert_one_line_error(run_cli("predict", mf.converted("int8").path, empty),
                          "no images given")


def test_bad_models_and_options(run_cli, digit_images, tmp_path):
    from edgecnn.runtime import metadata as md

    paths, _ = digit_images
    flat, _ = md.split_bundle(mf.converted("int8").path.read_bytes())
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flat)
    assert_one_line_error(run_cli("predict", bare, paths[0]), "carries no edgecnn metadata")
    text = tmp_path / "m.tflite"
    text.write_text("text")
    assert_one_line_error(run_cli("predict", text, paths[0]), "not a TFLite model")
    assert_one_line_error(run_cli("predict", mf.converted("int8").path, paths[0], "--top-k", "0"),
                          "--top-k must be >= 1")
    assert_one_line_error(run_cli("predict", mf.converted("int8").path, paths[0], "--threads",
                                  "0"), "threads must be >= 1")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert_one_line_error(run_cli("predict", mf.converted("int8").path, paths[0], "--save",
                                  a_file), "is not a folder")


def test_detector_finds_the_square_and_draws_it(run_cli, tmp_path):
    """A hand-wired detector (tests/camera_models.py) that fires on bright 8x8 cells."""
    from camera_models import bright_detector_bytes

    model = tmp_path / "bright.tflite"
    model.write_bytes(bright_detector_bytes(int8=False))
    image = np.zeros((96, 128, 3), np.uint8)
    image[32:64, 48:80] = 255                     # white square, 32x32
    path = tmp_path / "square.png"
    cv2.imwrite(str(path), image)
    out = tmp_path / "drawn"
    res = run_cli("predict", model, path, "--json", "--save", out)
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["task"] == "detect"
    dets = doc["results"][0]["detections"]
    assert dets and all(d["label"] == "blob" for d in dets)
    x1 = min(d["box"][0] for d in dets)
    y1 = min(d["box"][1] for d in dets)
    x2 = max(d["box"][2] for d in dets)
    y2 = max(d["box"][3] for d in dets)
    # the union of the fired cells covers the square (cells are 8 px of a 64 px letterbox of
    # a 128 px image: 16 px granularity in image pixels)
    assert abs(x1 - 48) <= 16 and abs(y1 - 32) <= 16 and abs(x2 - 80) <= 16 \
        and abs(y2 - 64) <= 16, dets
    drawn = cv2.imread(str(out / "square.png"))
    # enlarged to 320 px on the short side (tags stay legible), boxes in the class colour
    from edgecnn.camera.overlay import class_color

    assert drawn.shape[:2] == (320, round(128 * 320 / 96))
    assert (drawn == class_color(dets[0]["index"])).all(axis=2).sum() > 100
    res = run_cli("predict", model, path)
    assert "detection(s)" in res.out and "blob" in res.out


def test_predict_runs_without_tensorflow(digit_images):
    paths, _ = digit_images
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        import sys
        from edgecnn.cli import main
        sys.exit(main(['predict', {str(mf.converted('int8').path)!r}, {str(paths[0])!r},
                       '--json']))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["results"][0]["categories"]) == 5
