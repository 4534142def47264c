"""``edgecnn inspect``: tensors with quantization, real op counts, weights, metadata, and
models without (or with damaged) metadata; broken files are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import BLOCK_TENSORFLOW, assert_one_line_error
from edgecnn.runtime import metadata as md

pytest.importorskip("tensorflow")   # the fixture models are converted here

import model_factory as mf  # noqa: E402


def test_int8_model_json(run_cli):
    path = mf.converted("int8").path
    res = run_cli("inspect", path, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["size_bytes"] == path.stat().st_size
    assert doc["flatbuffer_bytes"] + doc["metadata_bytes"] == doc["size_bytes"]
    (inp,) = doc["inputs"]
    assert inp["dtype"] == "int8" and inp["shape"] == [1, 8, 8, 1]
    assert inp["scale"] == pytest.approx(1 / 255) and inp["zero_point"] == -128
    (out,) = doc["outputs"]
    assert out["dtype"] == "int8" and out["shape"] == [1, 10]
    assert out["scale"] == pytest.approx(1 / 256) and out["zero_point"] == -128
    ops = doc["ops"]
    # the model's own operators, not one XNNPACK "DELEGATE" node
    assert "DELEGATE" not in ops
    assert ops["CONV_2D"] == 2 and ops["DEPTHWISE_CONV_2D"] == 1
    assert ops["FULLY_CONNECTED"] == 1 and ops["SOFTMAX"] == 1
    assert "BATCH_NORM" not in " ".join(ops) and "MUL" not in ops  # BN folded into the conv
    assert doc["op_total"] == sum(ops.values())
    # weights: the conv/dense kernels are int8, the biases int32
    assert doc["weights"]["int8"]["elements"] >= 16 * 9 + 16 * 9 + 16 * 96 + 96 * 10
    assert "float32" not in doc["weights"]
    meta = doc["metadata"]
    assert meta["task"] == "classify" and meta["labels"] == mf.DIGIT_LABELS
    assert meta["quantization"] == "int8" and meta["input"]["color"] == "GRAY"


def test_float_model_and_text_output(run_cli):
    res = run_cli("inspect", mf.converted("float16").path)
    assert res.exit_code == 0, res.err
    text = res.out
    assert "input 0:" in text and "float32 [1, 8, 8, 1]  (not quantized)" in text
    assert "weights: float16" in text
    assert "metadata: task classify, 10 labels" in text and "quantization float16" in text
    assert "ops (" in text and "DEQUANTIZE" in text


def test_model_without_metadata(run_cli, tmp_path):
    flat, _ = md.split_bundle(mf.converted("int8").path.read_bytes())
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flat)
    res = run_cli("inspect", bare, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["metadata"] is None and doc["metadata_bytes"] == 0
    assert "no edgecnn metadata" in doc["metadata_note"]
    assert doc["inputs"][0]["dtype"] == "int8"
    text = run_cli("inspect", bare).out
    assert "metadata: none (no edgecnn metadata" in text


def test_damaged_metadata_is_reported_not_fatal(run_cli, tmp_path):
    data = mf.converted("int8").path.read_bytes()
    flat, bundle = md.split_bundle(data)
    damaged = bundle.replace(b'"schema"', b'"schemX"')
    path = tmp_path / "damaged.tflite"
    path.write_bytes(flat + damaged)
    res = run_cli("inspect", path, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["metadata"] is None and "damaged" in doc["metadata_note"]


def test_broken_files(run_cli, tmp_path):
    data = mf.converted("int8").path.read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[:len(data) // 2])
    assert_one_line_error(run_cli("inspect", cut), "cut.tflite", "truncated")
    text = tmp_path / "photo.jpg"
    text.write_bytes(b"\xff\xd8\xff\xe0 not a model at all")
    assert_one_line_error(run_cli("inspect", text), "not a TFLite model")
    assert_one_line_error(run_cli("inspect", tmp_path / "missing.tflite"), "not found")
    assert_one_line_error(run_cli("inspect", tmp_path), "not found")   # a folder


def test_inspect_runs_without_tensorflow():
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        import sys
        from edgecnn.cli import main
        sys.exit(main(['inspect', {str(mf.converted('int8').path)!r}, '--json']))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ops"]["CONV_2D"] == 2


@pytest.mark.parametrize("command, needle", [
    ("convert", "--quant"), ("eval", "--data"), ("inspect", "--json"), ("predict", "--top-k")])
def test_lazy_command_help(run_cli, command, needle):
    res = run_cli(command, "--help")
    assert res.exit_code == 0 and needle in res.out and "Example:" in res.out
