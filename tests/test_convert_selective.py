"""``edgecnn convert --float-layers / --float-worst``: int8 models with chosen ops left in float
(converters.selective), and their bad input as one-line errors without an output file."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

import model_factory as mf  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402


def test_worst_ops_stay_float_in_an_int8_model(tmp_path):
    from converters import convert_model
    from edgecnn.runtime.model import TFLiteModel

    plain = convert_model(mf.digits_run(), tmp_path / "plain.tflite", "int8", calib_size=32,
                          held_out=0)
    mixed = convert_model(mf.digits_run(), tmp_path / "mixed.tflite", "int8", calib_size=32,
                          held_out=0, float_worst=2)
    assert len(mixed.float_tensors) == 2 and not plain.float_tensors
    assert any("2 ops left in float" in note for note in mixed.notes)
    ops_plain = TFLiteModel(plain.path).op_counts()
    ops_mixed = TFLiteModel(mixed.path).op_counts()
    # a float op inside the int8 graph is fed by a DEQUANTIZE and followed by a QUANTIZE
    assert ops_mixed.get("DEQUANTIZE", 0) > ops_plain.get("DEQUANTIZE", 0)
    assert mixed.inputs[0]["dtype"] == plain.inputs[0]["dtype"]    # I/O types unchanged


@pytest.mark.parametrize("args, needle", [
    (["--quant", "int8", "--float-layers", "no_such_layer"],
     "no quantized op of the model comes from layer 'no_such_layer'"),
    (["--quant", "float32", "--float-worst", "1"], "need --quant int8"),
])
def test_bad_float_layer_options(run_cli, tmp_path, args, needle):
    out = tmp_path / "x.tflite"
    result = run_cli("convert", mf.digits_run(), *args, "--calib-size", "32", "--held-out", "0",
                     "-o", out)
    assert_one_line_error(result, needle)
    assert not out.exists()
