"""converters + ``edgecnn convert``: each recipe against Keras, int8 I/O folding, metadata,
detector output matching, the debug report, and bad input (one-line errors, no output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import model_factory as mf  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402

from edgecnn.runtime import metadata as md  # noqa: E402
from edgecnn.runtime.model import TFLiteModel  # noqa: E402

# max |probability difference| allowed between Keras and the converted model per recipe:
# float32 is the same arithmetic; float16 rounds weights to 11 bits; dynamic and int8 quantize.
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "dynamic": 0.05, "int8": 0.15}


@pytest.fixture(scope="module")
def held_out():
    data = mf.digits_data()
    return data.x_test[:100], data.y_test[:100]


@pytest.mark.parametrize("quant", ["float32", "float16", "dynamic", "int8"])
def test_recipe_outputs_match_keras(quant, held_out):
    images, _ = held_out
    result = mf.converted(quant)
    model = TFLiteModel(result.path)
    ref = mf.keras_probs(images)
    got = np.concatenate([model.run(im[None].astype(np.float32) / 255.0)[0] for im in images])
    diff = np.abs(ref - got)
    assert diff.max() <= TOLERANCE[quant], (quant, diff.max())
    agree = np.mean(ref.argmax(1) == got.argmax(1))
    assert agree >= (1.0 if quant in ("float32", "float16") else 0.95), agree
    # The figure convert reports was measured, not assumed: it agrees with ours.
    assert result.agreement is not None and result.agreement.samples > 0
    assert result.agreement.top1 >= 0.95
    if quant == "float32":
        assert result.agreement.max_prob_diff < 1e-5


def test_recipes_change_what_they_should():
    f32, f16, dyn, i8 = (TFLiteModel(mf.converted(q).path) for q in
                         ("float32", "float16", "dynamic", "int8"))
    assert f16.size_bytes < f32.size_bytes and i8.size_bytes < f32.size_bytes
    assert dyn.size_bytes < f32.size_bytes   # the 16->96 conv (1536 weights) became int8
    for m in (f32, f16, dyn):
        assert m.input.dtype == np.float32 and not m.input.quantized
    assert i8.input.dtype == np.int8 and i8.outputs[0].dtype == np.int8
    assert "DEQUANTIZE" in f16.op_counts()           # fp16 weights dequantized at load
    assert "DEQUANTIZE" not in i8.op_counts() and "QUANTIZE" not in i8.op_counts()


def test_int8_input_scale_folds_the_normalization():
    model = TFLiteModel(mf.converted("int8").path)
    inp = model.input
    # Calibration covers pixels 0 and 255, so x = pixel/255 maps to int8 as pixel - 128.
    assert inp.scale == pytest.approx(1 / 255, rel=1e-6)
    assert inp.zero_point == -128
    from edgecnn.runtime.preprocess import build_lut

    lut = build_lut(model.metadata.input, inp)
    assert np.array_equal(lut[:, 0].astype(np.int64), np.arange(256) - 128)


def test_int8_with_float_io():
    result = mf.converted("int8", "float")
    model = TFLiteModel(result.path)
    assert result.recipe == "int8_iofloat"
    assert model.input.dtype == np.float32 and model.outputs[0].dtype == np.float32
    ops = model.op_counts()
    assert ops.get("QUANTIZE", 0) >= 1 and ops.get("DEQUANTIZE", 0) >= 1
    assert model.metadata.quantization == "int8"
    assert result.agreement.top1 >= 0.95


def test_metadata_is_embedded_and_matches_the_tensors():
    result = mf.converted("int8")
    data = Path(result.path).read_bytes()
    meta = md.read(data)
    assert meta.task == "classify" and list(meta.labels) == mf.DIGIT_LABELS
    assert (meta.input.height, meta.input.width, meta.input.channels) == (8, 8, 1)
    assert meta.input.color == "GRAY" and meta.quantization == "int8"
    assert meta.name == "digits_run" and meta.arch == "digits_cnn"
    model = TFLiteModel(result.path)
    assert meta.io["inputs"][0]["scale"] == model.input.scale
    _, bundle = md.split_bundle(data)
    with zipfile.ZipFile(__import__("io").BytesIO(bundle)) as zf:
        assert zf.read("labels.txt").decode().split() == mf.DIGIT_LABELS
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert result.size_bytes == len(data)


def test_default_output_is_named_after_model_and_recipe(tmp_path):
    from converters import convert_model

    run = tmp_path / "mnist_small"
    run.mkdir()
    for name in ("model.keras", "run.json", "labels.txt"):
        (run / name).write_bytes((mf.digits_run() / name).read_bytes())
    result = convert_model(run, None, "float16", held_out=0)
    assert result.path == run / "mnist_small_float16.tflite" and result.path.is_file()
    assert result.agreement is None
    # An existing folder as output gets the same default name inside it.
    from converters.convert import resolve_output
    from converters.recipes import Recipe

    assert resolve_output(tmp_path, run, "mnist_small", Recipe.parse("int8", "float")) == \
        tmp_path / "mnist_small_int8_iofloat.tflite"
    assert resolve_output(tmp_path / "x.tflite", run, "m", Recipe.parse("int8")) == \
        tmp_path / "x.tflite"


def test_debug_quant_writes_per_layer_report(tmp_path):
    from converters import convert_model

    out = tmp_path / "dbg.tflite"
    result = convert_model(mf.digits_run(), out, "int8", calib_size=32, held_out=0,
                           debug_quant=True)
    assert out.is_file()
    csv_text = result.debug_csv.read_text().splitlines()
    assert csv_text[0].startswith("op_name,tensor_name,num_elements,rmse")
    rows = [r.split(",") for r in csv_text[1:]]
    ops = {r[0] for r in rows}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
    ratios = [float(r[-1]) for r in rows]
    assert all(np.isfinite(ratios)) and max(ratios) > 0
    md_text = result.debug_markdown.read_text()
    assert "rmse/scale" in md_text and "CONV_2D" in md_text


@pytest.mark.slow   # exporting and converting even the tiny detector takes ~10-40 s here
def test_detector_outputs_are_identified_by_value_not_shape():
    """det_test with 4 classes: boxes and scores are both [1, N, 4]."""
    result = mf.converted_detector("int8")
    model = TFLiteModel(result.path)
    dec = model.metadata.decoder
    assert {dec.box_output, dec.score_output} == {0, 1}
    assert model.outputs[0].shape == model.outputs[1].shape
    assert tuple(dec.strides) == (8, 16, 32)
    # The output declared as scores must carry the Keras "scores" values, and the boxes the
    # boxes: compare on a real image through the runtime preprocessing.
    import cv2

    from converters.calibration import to_model_inputs
    from edgecnn.rundir import load_keras_model
    from edgecnn.runtime.preprocess import Preprocessor

    kmodel, _ = load_keras_model(mf.detector_run())
    image = cv2.cvtColor(cv2.imread(str(sorted((mf.detector_run().parent / "det_images")
                                                .glob("*.png"))[3])), cv2.COLOR_BGR2RGB)
    ref = kmodel(to_model_inputs([image], model.metadata.input, "RGB"), training=False)
    ref_boxes, ref_scores = np.asarray(ref[0]), np.asarray(ref[1])
    tensor, _ = Preprocessor(model.metadata.input, model.input)(image, "RGB")
    boxes, scores = model.run(tensor, quantized=True)[dec.box_output], \
        model.run(tensor, quantized=True)[dec.score_output]
    right = np.abs(boxes - ref_boxes).mean() + np.abs(scores - ref_scores).mean()
    swapped = np.abs(scores - ref_boxes).mean() + np.abs(boxes - ref_scores).mean()
    assert right < 0.05 and right < swapped / 5, (right, swapped)
    assert result.agreement.mean_abs_diff < 0.05


def test_bare_keras_file_takes_labels_from_calib(tmp_path):
    from converters import convert_model

    bare = tmp_path / "digits_cnn.keras"
    bare.write_bytes((mf.digits_run() / "model.keras").read_bytes())
    result = convert_model(bare, tmp_path / "bare.tflite", "int8", calib="digits",
                           calib_size=32, held_out=50)
    meta = TFLiteModel(result.path).metadata
    assert list(meta.labels) == mf.DIGIT_LABELS and meta.input.color == "GRAY"
    assert any("run.json" in n for n in result.notes)
    assert result.agreement.top1 >= 0.9


@pytest.mark.slow   # a fresh process imports TensorFlow: ~10-40 s
def test_cli_convert_json_output_and_no_tensorflow_noise(tmp_path):
    out = tmp_path / "cli_int8.tflite"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")   # even with TF's logging fully on
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn", "convert", str(mf.digits_run()), "--quant", "int8",
         "--calib-size", "32", "--held-out", "60", "-o", str(out), "--json"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["path"] == str(out) and doc["size_bytes"] == out.stat().st_size
    assert doc["inputs"][0]["dtype"] == "int8" and doc["calib_samples"] == 32
    assert doc["agreement"]["samples"] == 60 and doc["agreement"]["top1"] >= 0.9
    assert proc.stderr.strip() == "", proc.stderr


def test_cli_convert_text_summary(run_cli, tmp_path):
    out = tmp_path / "f16.tflite"
    res = run_cli("convert", mf.digits_run(), "--quant", "float16", "--held-out", "40",
                  "-o", out)
    assert res.exit_code == 0, res.err
    assert f"wrote {out} (float16" in res.out
    assert "top-1 agreement 100.0% on 40 held-out" in res.out


# ---- bad input: one line, exit 2, no output file ------------------------------------------

def _no_output(folder: Path) -> bool:
    return not any(p.suffix in (".tflite", ".tmp", ".csv", ".md") for p in folder.rglob("*"))


def test_unknown_quant(run_cli, tmp_path):
    res = run_cli("convert", mf.digits_run(), "--quant", "int4", "-o", tmp_path / "x.tflite")
    assert_one_line_error(res, "unknown quantization 'int4'", "float32, dynamic, float16, int8")
    assert _no_output(tmp_path)


@pytest.mark.parametrize("args, needle", [
    (["--quant", "float16", "--io", "int8"], "--io int8 needs --quant int8"),
    (["--quant", "int8", "--io", "uint16"], "unknown I/O type"),
    (["--quant", "float32", "--debug-quant"], "--debug-quant needs --quant int8"),
    (["--quant", "int8", "--calib-size", "0"], "--calib-size must be at least 1"),
])
def test_bad_options(run_cli, tmp_path, args, needle):
    res = run_cli("convert", mf.digits_run(), *args, "-o", tmp_path / "x.tflite")
    assert_one_line_error(res, needle)
    assert _no_output(tmp_path)


def test_non_model_files(run_cli, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    assert_one_line_error(run_cli("convert", text, "-o", tmp_path / "a.tflite"),
                          "cannot tell the format of", "SavedModel folders")
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"PK\x03\x04 this is no keras archive")
    assert_one_line_error(run_cli("convert", fake, "-o", tmp_path / "b.tflite"),
                          "cannot load Keras model")
    assert_one_line_error(run_cli("convert", tmp_path / "missing", "-o", tmp_path / "c.tflite"),
                          "not found")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert_one_line_error(run_cli("convert", empty, "-o", tmp_path / "d.tflite"),
                          "has no model.keras")
    assert _no_output(tmp_path)


def test_unknown_calibration_dataset(run_cli, tmp_path):
    res = run_cli("convert", mf.digits_run(), "--calib", "no-such-data", "-o",
                  tmp_path / "x.tflite")
    assert_one_line_error(res, "unknown dataset 'no-such-data'")
    assert _no_output(tmp_path)


def test_output_not_writable(run_cli, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    res = run_cli("convert", mf.digits_run(), "--quant", "float32", "-o",
                  blocker / "sub" / "x.tflite")
    assert_one_line_error(res, "cannot create output folder")
    assert blocker.read_text() == "x"


def test_model_that_does_not_match_its_run(run_cli, tmp_path):
    run = tmp_path / "bad_run"
    run.mkdir()
    (run / "model.keras").write_bytes((mf.digits_run() / "model.keras").read_bytes())
    doc = json.loads((mf.digits_run() / "run.json").read_text())
    doc["imgsz"], doc["channels"], doc["color"] = [28, 28], 3, "RGB"
    (run / "run.json").write_text(json.dumps(doc))
    res = run_cli("convert", run, "-o", tmp_path / "x.tflite")
    assert_one_line_error(res, "model input 8x8x1 does not match run.json (28x28x3)")
    assert _no_output(tmp_path)


def test_missing_training_data(run_cli, tmp_path):
    """The run names fashion-mnist in a folder that does not exist (e.g. copied elsewhere)."""
    run = tmp_path / "moved_run"
    run.mkdir()
    (run / "model.keras").write_bytes((mf.digits_run() / "model.keras").read_bytes())
    doc = json.loads((mf.digits_run() / "run.json").read_text())
    doc["data"], doc["data_dir"] = "fashion-mnist", str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(doc))
    res = run_cli("convert", run, "--quant", "int8", "-o", tmp_path / "x.tflite")
    assert_one_line_error(res, "dataset fashion-mnist not found")
    assert _no_output(tmp_path)
    # a float recipe needs the data only for the agreement figure: it converts and says so
    res = run_cli("convert", run, "--quant", "float16", "-o", tmp_path / "f16.tflite")
    assert res.exit_code == 0, res.err
    assert "random-pixel images" in res.out and "note: agreement measured on random pixels" \
        in res.out
    assert (tmp_path / "f16.tflite").is_file()


def test_tensor_names_are_shortened_unless_kept(tmp_path):
    from converters import convert_model

    short = TFLiteModel(mf.converted("int8").path)
    names = [d["name"] for d in short.interpreter.get_tensor_details()]
    io_names = {t.name for t in short.inputs + short.outputs}
    inner = [n for n in names if n not in io_names]
    assert inner and all(n.startswith("t") and n[1:].isdigit() for n in inner), inner[:5]
    kept = convert_model(mf.digits_run(), tmp_path / "kept.tflite", "int8", calib_size=64,
                         held_out=0, keep_names=True)
    long = TFLiteModel(kept.path)
    assert any("conv" in d["name"].lower() for d in long.interpreter.get_tensor_details())
    assert short.size_bytes < long.size_bytes
    # same arithmetic: identical outputs on the same int8 input
    x = np.random.default_rng(0).integers(-128, 128, short.input.shape).astype(np.int8)
    assert np.array_equal(short.run(x, quantized=True, dequantize=False)[0],
                          long.run(x, quantized=True, dequantize=False)[0])
