"""``edgecnn eval``: .tflite accuracy through the device runtime (no TensorFlow), Keras
accuracy, agreement between them, JSON shape, and data that does not fit the model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

import model_factory as mf  # noqa: E402
from conftest import BLOCK_TENSORFLOW, assert_one_line_error  # noqa: E402
from test_eval_skips import _detect_dataset  # noqa: E402


@pytest.fixture(scope="module")
def keras_accuracy():
    data = mf.digits_data()
    probs = mf.keras_probs(data.x_test)
    return float(np.mean(probs.argmax(1) == data.y_test)), len(data.y_test)


def test_tflite_eval_json(run_cli, keras_accuracy):
    res = run_cli("eval", mf.converted("float32").path, "--data", "digits", "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    acc, n = keras_accuracy
    assert doc["samples"] == n and doc["backend"] == "tflite" and doc["split"] == "val"
    # float32 .tflite through the runtime = the Keras model on the same images
    assert doc["accuracy"] == pytest.approx(acc, abs=1.0 / n)
    per_class = doc["per_class"]
    assert set(per_class) == set(mf.DIGIT_LABELS)
    assert sum(v["samples"] for v in per_class.values()) == n
    weighted = sum(v["accuracy"] * v["samples"] for v in per_class.values()) / n
    assert weighted == pytest.approx(doc["accuracy"], abs=1e-6)
    confusion = np.array(doc["confusion"])
    assert confusion.sum() == n and np.trace(confusion) / n == pytest.approx(doc["accuracy"])


def test_int8_accuracy_close_to_keras(run_cli, keras_accuracy):
    res = run_cli("eval", mf.converted("int8").path, "--data", "digits", "--json")
    assert res.exit_code == 0, res.err
    acc, _ = keras_accuracy
    assert abs(json.loads(res.out)["accuracy"] - acc) <= 0.03


def test_keras_run_eval_uses_the_runs_data(run_cli, keras_accuracy):
    res = run_cli("eval", mf.digits_run(), "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["backend"] == "keras" and doc["data"] == "digits"
    assert doc["accuracy"] == pytest.approx(keras_accuracy[0], abs=1e-6)  # JSON rounds to 1e-6


def test_text_output_and_options(run_cli):
    res = run_cli("eval", mf.converted("int8").path, "--data", "digits", "--split", "train",
                  "--max-samples", "50", "--threads", "1")
    assert res.exit_code == 0, res.err
    first = res.out.splitlines()[0]
    assert first.startswith("accuracy ") and "on 50 train samples of digits (tflite" in first


def test_tflite_eval_runs_without_tensorflow(tmp_path):
    """The device path: TensorFlow and Keras made unimportable in a fresh process."""
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        import sys
        from edgecnn.cli import main
        code = main(['eval', {str(mf.converted('int8').path)!r}, '--data', 'digits', '--json'])
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accuracy"] > 0.8



def _device_install_block() -> str:
    """BLOCK_TENSORFLOW that also makes scikit-learn unimportable, as a missing package is."""
    return BLOCK_TENSORFLOW.replace(
        "('tensorflow', 'keras', 'tf_keras')", "('tensorflow', 'keras', 'tf_keras', 'sklearn')"
    ).replace("raise ImportError('blocked for the test: ' + name)",
              "raise ModuleNotFoundError('blocked for the test: ' + name, name=name)")


def test_device_install_evaluates_quickstart_like_outputs(tmp_path):
    """``pip install edgecnn`` (no TensorFlow, Keras or scikit-learn) evaluates a classifier on
    the idx copy of the held-out digits the quickstart writes (the same images, hence the same
    accuracy, as ``--data digits``) and a detector on a data.yaml (pycocotools)."""
    from edgecnn.data import load_classification
    from edgecnn.evaluate import evaluate_model
    from edgecnn.quickstart import QuickstartContext, QuickstartOptions
    from edgecnn.quickstart.evaluate import write_held_out

    held_out = tmp_path / write_held_out(QuickstartContext(tmp_path, QuickstartOptions()))
    digits, copy = mf.digits_data(), load_classification(str(held_out))
    assert np.array_equal(copy.x_test, digits.x_test) and copy.labels == digits.labels
    assert np.array_equal(copy.y_test, digits.y_test) and copy.imgsz == 8
    classifier, detector = mf.converted("int8").path, mf.converted_detector("int8").path
    # three scenes with a box each and one JPEG that fails to decode (counted, skipped)
    detect_data = str(_detect_dataset(tmp_path / "shapes", ["a", "b", "c", "d"]))
    code = _device_install_block() + textwrap.dedent(f"""
        import contextlib, io, json, sys
        from edgecnn.cli import main
        docs = []
        for args in ([{str(classifier)!r}, '--data', {str(held_out)!r}],
                     [{str(detector)!r}, '--data', {detect_data!r}]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(['eval', *args, '--json'])
            if code:
                sys.exit(code)
            docs.append(json.loads(out.getvalue()))
        loaded = sorted({{m.split('.')[0] for m in sys.modules}}
                        & {{'tensorflow', 'keras', 'sklearn'}})
        print(json.dumps({{'docs': docs, 'loaded': loaded}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["loaded"] == []
    clf, det = result["docs"]
    reference = evaluate_model(classifier, "digits")
    assert clf["split"] == "test" and clf["samples"] == reference["samples"] == len(digits.y_test)
    assert clf["accuracy"] == reference["accuracy"] and clf["confusion"] == reference["confusion"]
    assert det["images"] == det["instances"] == 3 and det["skipped_images"] == 1
    assert 0.0 <= det["map"] <= det["map50"] <= 1.0


# ---- bad input ------------------------------------------------------------------------------

def _folder_dataset(root, colour: bool, classes=mf.DIGIT_LABELS, size=8):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(3):
            if colour:
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            else:
                img = np.repeat(rng.integers(0, 256, (size, size, 1), dtype=np.uint8), 3, 2)
            cv2.imwrite(str(root / c / f"{i}.png"), img)
    return root


def test_colour_dataset_for_a_grey_model(run_cli, tmp_path):
    data = _folder_dataset(tmp_path / "rgb8", colour=True)
    res = run_cli("eval", mf.converted("int8").path, "--data", data)
    assert_one_line_error(res, "8x8x1 GRAY", "colour (RGB)")


def test_grey_pictures_stored_as_rgb_are_fine(run_cli, tmp_path):
    data = _folder_dataset(tmp_path / "grey8", colour=False)
    res = run_cli("eval", mf.converted("int8").path, "--data", data, "--split", "train",
                  "--json")
    assert res.exit_code == 0, res.err
    assert json.loads(res.out)["samples"] > 0


def test_dataset_with_other_classes(run_cli, tmp_path):
    data = _folder_dataset(tmp_path / "pets", colour=False, classes=["cat", "dog"])
    res = run_cli("eval", mf.converted("int8").path, "--data", data)
    assert_one_line_error(res, "has classes [cat, dog]", "model's labels are [0, 1, 2, 3")


def test_missing_or_unknown_dataset(run_cli, tmp_path):
    model = mf.converted("int8").path
    assert_one_line_error(run_cli("eval", model, "--data", "imagenet-42"),
                          "unknown dataset 'imagenet-42'")
    assert_one_line_error(run_cli("eval", model), "no dataset given", "--data")
    assert_one_line_error(run_cli("eval", model, "--data", "digits", "--split", "dev"),
                          "unknown split 'dev'")


def test_non_model_and_truncated_files(run_cli, tmp_path):
    text = tmp_path / "readme.tflite"
    text.write_text("just text, no model here\n")
    assert_one_line_error(run_cli("eval", text, "--data", "digits"), "not a TFLite model")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\x00\x01" * 100)
    assert_one_line_error(run_cli("eval", other, "--data", "digits"), "not a TFLite model")
    data = mf.converted("int8").path.read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:2000])
    assert_one_line_error(run_cli("eval", cut, "--data", "digits"), "cut.tflite")
    assert_one_line_error(run_cli("eval", tmp_path / "absent.tflite", "--data", "digits"),
                          "not found")


def test_detector_eval_dispatches_to_coco_map(run_cli, tmp_path):
    """A detect-task .tflite is scored with COCO mAP (edgecnn.evaluate.detect)."""
    from camera_models import bright_detector_bytes

    model = tmp_path / "bright.tflite"
    model.write_bytes(bright_detector_bytes(int8=False))
    root = tmp_path / "squares"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, (x, y) in enumerate([(16, 16), (64, 40)]):
        image = np.zeros((128, 128, 3), np.uint8)
        image[y:y + 32, x:x + 32] = 255
        cv2.imwrite(str(root / "images" / f"s{i}.png"), image)
        (root / "labels" / f"s{i}.txt").write_text(
            f"0 {(x + 16) / 128:.6f} {(y + 16) / 128:.6f} 0.25 0.25\n")
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [blob]\n")
    res = run_cli("eval", model, "--data", root / "data.yaml", "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert {"map50", "map", "per_class"} <= set(doc)
    assert 0.0 <= doc["map"] <= doc["map50"] <= 1.0


def test_missing_builtin_dataset(run_cli, tmp_path):
    res = run_cli("eval", mf.converted("int8").path, "--data", "fashion-mnist", "--data-dir",
                  tmp_path / "nowhere")
    assert_one_line_error(res, "dataset fashion-mnist not found", "--data-dir")


def test_a_folder_counts_whole_unless_it_is_the_runs_training_data(run_cli, tmp_path):
    # The test split of digits written as an image folder: a user's test folder.
    data = mf.digits_data()
    root = tmp_path / "digits_test"
    for i, (img, y) in enumerate(zip(data.x_test, data.y_test)):
        (root / str(int(y))).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / str(int(y)) / f"{i}.png"), img)
    n = len(data.y_test)
    res = run_cli("eval", mf.converted("int8").path, "--data", root, "--json")
    assert res.exit_code == 0, res.err
    report = json.loads(res.out)
    assert report["samples"] == n and report["split"] == "all"
    # An explicit split is honoured, and a built-in dataset keeps its held-out split.
    val = json.loads(run_cli("eval", mf.converted("int8").path, "--data", root, "--split", "val",
                             "--json").out)
    assert val["split"] == "val" and val["samples"] < n
    builtin = json.loads(run_cli("eval", mf.converted("int8").path, "--data", "digits",
                                 "--json").out)
    assert builtin["split"] == "val" and builtin["samples"] == n


@pytest.mark.parametrize("blocked, args, needle", [
    ("sklearn", ["--data", "digits"], "pip install scikit-learn; or pass the digits as a "
                                      "folder of idx files, e.g. --data quickstart-run/digits_idx"),
    ("pycocotools", ["--data", "DETECT_DATA"], "pip install pycocotools"),
])
def test_device_install_missing_packages_name_the_package_not_train(tmp_path, blocked, args,
                                                                     needle):
    """Without scikit-learn / pycocotools the hint names that package, never edgecnn[train],
    and a detector's eval fails before any inference."""
    model = mf.converted("int8").path
    if blocked == "pycocotools":
        from edgecnn.data.synth import make_synthetic_dataset

        model = mf.converted_detector("int8").path
        data = make_synthetic_dataset(tmp_path / "d", n_train=2, n_val=2, imgsz=64)
        args = [str(data) if a == "DETECT_DATA" else a for a in args]
    # Raised as a real missing package is: ModuleNotFoundError with the module's name.
    block = _device_install_block().replace("'sklearn'", repr(blocked))
    code = block + textwrap.dedent(f"""
        import sys
        from edgecnn.cli import main
        sys.exit(main(['eval', {str(model)!r}, *{args!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "edgecnn[train]" not in proc.stderr
    assert "Traceback" not in proc.stderr
