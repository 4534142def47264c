"""Foreign models through ``edgecnn convert``: format sniffing and refusals (no framework
needed), ONNX models built here with the ``onnx`` helper API through the onnx2tf route (NCHW in,
NHWC out, metadata read from ``metadata_props``, parity against onnxruntime), a ``.tflite``
kept with Ultralytics' metadata or re-quantized, and ``.pt2`` loading without pickle."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error
from converters import formats
from converters.sources.base import Layout, image_input, parse_props
from edgecnn.errors import UsageError


# ---------------------------------------------------------------- formats, no framework needed

def test_pickled_checkpoints_are_refused_by_content(tmp_path, run_cli):
    zipped = tmp_path / "yolo11n.pt"       # torch.save's zip layout
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"model": None}))
        zf.writestr("archive/version", "3\n")
    legacy = tmp_path / "weights.bin"      # torch.save's legacy layout: a bare pickle
    legacy.write_bytes(pickle.dumps({"state": [1, 2]}, protocol=2))
    renamed = tmp_path / "sneaky.onnx"     # the suffix does not decide: the content does
    renamed.write_bytes(zipped.read_bytes())
    for path in (zipped, legacy, renamed):
        with pytest.raises(UsageError, match="pickled PyTorch checkpoint") as err:
            formats.detect(path)
        assert ".pt2" in err.value.hint and "onnx" in err.value.hint
    out = tmp_path / "out.tflite"
    result = run_cli("convert", zipped, "-o", out)
    assert_one_line_error(result, "pickled", "torch.export")
    assert not out.exists() and list(tmp_path.glob("*.tflite")) == []


def test_unknown_formats_get_one_line_errors(tmp_path, run_cli):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(UsageError, match="cannot tell the format"):
        formats.detect(junk)
    other_zip = tmp_path / "bundle.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(UsageError, match="zip archive of no model format"):
        formats.detect(other_zip)
    (tmp_path / "folder").mkdir()
    assert formats.detect(tmp_path / "folder").name == "edgecnn"   # convert_model judges it
    assert_one_line_error(run_cli("convert", junk), "cannot tell the format")


def test_the_format_table_is_one_source_of_truth(run_cli):
    names = [f.name for f in formats.FORMATS]
    assert names == ["edgecnn", "keras", "savedmodel", "onnx", "pt2", "tflite"]
    for f in formats.FORMATS:
        row = f.row()
        assert row["quant"] == ["float32", "dynamic", "float16", "int8"]
        assert row["needs_tensorflow"] == (f.extra == "train")
    assert "onnx2tf" in formats.get("onnx").route
    with pytest.raises(UsageError, match="unknown source format"):
        formats.get("caffe")
    help_text = run_cli("convert", "--help").out
    assert ".pt2" in help_text and "Pickled" in help_text


@pytest.mark.parametrize("shape,layout,hwc", [
    ([1, 3, 32, 48], None, (32, 48, 3)), ([1, 32, 48, 3], None, (32, 48, 3)),
    (["batch", 1, 16, 16], None, (16, 16, 1)), ([1, 3, 5, 3], "NCHW", (5, 3, 3))])
def test_image_input_layouts(shape, layout, hwc):
    assert image_input("x", shape, layout).hwc == hwc


@pytest.mark.parametrize("shape,layout,needle", [
    ([1, 3, 32, 32], "NHWC", "does not fit"), ([1, 3, 8, 3], None, "could be NCHW or NHWC"),
    ([1, 8, 32, 32], None, "not an image"), ([1, 3, 32], None, "4-d image"),
    ([4, 3, 32, 32], None, "batch must be 1")])
def test_image_input_mismatches_are_usage_errors(shape, layout, needle):
    with pytest.raises(UsageError, match=needle):
        image_input("images", shape, layout)


def test_ultralytics_metadata_props_are_read_as_literals_not_code():
    props = {"author": "Ultralytics", "task": "detect", "stride": "32", "imgsz": "[256, 320]",
             "names": "{0: 'kangaroo', 1: 'joey'}", "end2end": "False",
             "args": "__import__('os').system('false')"}
    meta = parse_props(props)
    assert meta.labels == ("kangaroo", "joey") and meta.task == "detect"
    assert meta.imgsz == (256, 320) and meta.stride == 32 and meta.end2end is False
    assert meta.producer == "ultralytics"
    assert meta.raw["args"] == props["args"]      # kept as text, never evaluated
    assert parse_props({"labels": '["a", "b"]'}).labels == ("a", "b")
    assert parse_props({"names": "not a literal"}).labels is None


def test_pt2_with_pickled_payload_is_refused_before_torch_runs(tmp_path):
    from converters.sources.pt2 import check_archive

    def archive(entry: dict) -> Path:
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.pt2"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("m/archive_format", "pt2")
            zf.writestr("m/data/weights/model_weights_config.json",
                        json.dumps({"config": {"fc.weight": entry}}))
        return path

    good = archive({"path_name": "weight_0", "use_pickle": False})
    check_archive(good)
    assert formats.detect(good).name == "pt2"
    with pytest.raises(UsageError, match="pickled object"):
        check_archive(archive({"path_name": "weight_0", "use_pickle": True}))
    with pytest.raises(UsageError, match="pickled object"):
        check_archive(archive({"path_name": "opaque_obj_0", "use_pickle": False}))


# ---------------------------------------------------------------- ONNX through the route

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def _has_onnx2tf() -> bool:
    from converters.sources.onnx import onnx2tf_command

    try:
        onnx2tf_command()
    except UsageError:
        return False
    return True


needs_onnx2tf = pytest.mark.skipif(not _has_onnx2tf(), reason="the onnx2tf command (>= 2.4) "
                                   "is not installed (CI: .ci/run installs it)")


def _const(name: str, array: np.ndarray):
    return helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.astype(np.float32)
                              .ravel().tolist())


def tiny_classifier(path: Path, classes: int = 3, size: int = 16, props=None) -> Path:
    """NCHW [1,3,H,W] -> conv 3x3 -> relu -> global pool -> gemm -> softmax [1, classes]."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (8, 3, 3, 3))
    fc = rng.normal(0, 0.5, (classes, 8))
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                      [1, 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
        initializer=[_const("w", w), _const("fc", fc)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in (props or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def tiny_yolo(path: Path, size: int = 32, classes: int = 2, width: int | None = None) -> Path:
    """Ultralytics-like head: boxes in input pixels [1,4,N] and class probabilities [1,nc,N]
    concatenated into [1, 4 + nc, N], with Ultralytics' metadata props (``size`` x ``width``
    input, square by default)."""
    rng = np.random.default_rng(1)
    width = width or size
    n = (size // 8) * (width // 8)
    nodes = [helper.make_node("Conv", ["images", "wb"], ["cb"], strides=[8, 8]),
             helper.make_node("Sigmoid", ["cb"], ["sb"]),
             helper.make_node("Reshape", ["sb", "shape_b"], ["rb"]),
             helper.make_node("Mul", ["rb", "size"], ["boxes"]),
             helper.make_node("Conv", ["images", "wc"], ["cc"], strides=[8, 8]),
             helper.make_node("Sigmoid", ["cc"], ["sc"]),
             helper.make_node("Reshape", ["sc", "shape_c"], ["scores"]),
             helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1)]
    graph = helper.make_graph(
        nodes, "yolo", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                      [1, 3, size, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, n])],
        initializer=[_const("wb", rng.normal(0, 0.3, (4, 3, 8, 8))),
                     _const("wc", rng.normal(0, 0.3, (classes, 3, 8, 8))),
                     _const("size", np.array([width, size, width, size], float).reshape(1, 4, 1)),
                     helper.make_tensor("shape_b", TensorProto.INT64, [3], [1, 4, n]),
                     helper.make_tensor("shape_c", TensorProto.INT64, [3], [1, classes, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"author": "Ultralytics", "task": "detect", "stride": "8",
                 "names": "{0: 'cat', 1: 'dog'}", "imgsz": f"[{size}, {width}]"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def _yolo_decode(output: np.ndarray, normalized: bool, hw: tuple[int, int]):
    """The runtime's ``ultralytics_yolo`` decoder on one float output (low threshold: many
    boxes go through NMS)."""
    from edgecnn.runtime.decoders import find_decoder
    from edgecnn.runtime.decoders.spec import DecoderSpec
    from edgecnn.runtime.model import TensorInfo

    spec = DecoderSpec("ultralytics_yolo", score_threshold=0.05, iou_threshold=0.7,
                       max_detections=300, normalized=normalized)
    info = TensorInfo(0, "output0", tuple(output.shape), np.dtype(np.float32), 0.0, 0)
    return find_decoder("ultralytics_yolo")(spec, [info], hw, ("cat", "dog")).decode([output])


def _onnx_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, {"images": xi[None]})[0] for xi in x]


def test_box_normalization_rewrite_keeps_decoded_boxes(tmp_path):
    from converters.sources.onnx import normalize_yolo_boxes

    h, w = 48, 80    # not square: the x channels are divided by the width, y by the height
    src = tiny_yolo(tmp_path / "yolo.onnx", size=h, width=w)
    out = tmp_path / "yolo_norm.onnx"
    assert normalize_yolo_boxes(src, out, h, w)
    x = np.random.default_rng(2).uniform(0, 1, (4, 3, h, w)).astype(np.float32)
    decoded = 0
    for before, after in zip(_onnx_outputs(src, x), _onnx_outputs(out, x)):
        assert before[0, :4].max() > 2.0 and after[0, :4].max() <= 1.0   # pixels -> 0..1
        np.testing.assert_array_equal(after[0, 4:], before[0, 4:])      # scores untouched
        np.testing.assert_allclose(after[0, :4] * np.array([[w], [h], [w], [h]]),
                                   before[0, :4], rtol=1e-6, atol=1e-5)
        pixels, normalized = _yolo_decode(before, False, (h, w)), _yolo_decode(after, True, (h, w))
        np.testing.assert_array_equal(normalized.anchors, pixels.anchors)
        np.testing.assert_array_equal(normalized.classes, pixels.classes)
        np.testing.assert_array_equal(normalized.scores, pixels.scores)
        np.testing.assert_allclose(normalized.boxes, pixels.boxes, rtol=1e-6, atol=1e-4)
        decoded += len(pixels.boxes)
    assert decoded >= 8      # the comparison covered real detections, after NMS
    # a graph that does not end in Concat(boxes [1, 4, N], scores) is left alone
    assert not normalize_yolo_boxes(tiny_classifier(tmp_path / "cls.onnx"),
                                    tmp_path / "cls_norm.onnx", 16, 16)
    assert not (tmp_path / "cls_norm.onnx").exists()


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(24):
        image = cv2.GaussianBlur(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(folder / f"im{i:02d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@needs_onnx2tf
def test_onnx_classifier_float32_nchw_to_nhwc_with_labels_from_props(onnx_dir, calib_dir):
    from converters.foreign import convert_foreign
    from edgecnn.runtime.model import TFLiteModel

    src = tiny_classifier(onnx_dir / "tiny.onnx", props={"labels": '["ant", "bee", "cow"]'})
    result = convert_foreign(src, onnx_dir / "tiny_f32.tflite", "float32", calib=str(calib_dir),
                             held_out=8)
    model = TFLiteModel(result.path)
    assert model.input.shape == (1, 16, 16, 3) and result.layout == "NHWC"
    meta = model.require_metadata()
    assert meta.labels == ("ant", "bee", "cow") and meta.task == "classify"
    assert meta.output_activation == "softmax" and meta.input.layout == "NHWC"
    assert result.agreement.top1 == 1.0 and result.agreement.max_prob_diff < 1e-4


@needs_onnx2tf
def test_onnx_classifier_int8_is_calibrated_and_agrees(onnx_dir, calib_dir):
    from converters.foreign import convert_foreign
    from edgecnn.runtime.model import TFLiteModel

    src = tiny_classifier(onnx_dir / "tiny8.onnx")
    result = convert_foreign(src, onnx_dir / "tiny_i8.tflite", "int8", calib=str(calib_dir),
                             held_out=8)
    model = TFLiteModel(result.path)
    assert model.input.dtype == np.int8 and model.outputs[0].dtype == np.int8
    assert model.require_metadata().labels == ("0", "1", "2")
    assert result.calib_samples > 0 and result.agreement.max_prob_diff < 0.1


@needs_onnx2tf
def test_onnx_yolo_layout_gets_its_decoder_and_names(onnx_dir, calib_dir, run_cli):
    from edgecnn.runtime.model import TFLiteModel

    src = tiny_yolo(onnx_dir / "yolo.onnx")
    out = onnx_dir / "yolo_f32.tflite"
    result = run_cli("convert", src, "--quant", "float32", "--calib", calib_dir,
                     "--held-out", "4", "-o", out, "--json")
    assert result.exit_code == 0, result.err
    doc = json.loads(result.out)
    assert doc["source_metadata"]["producer"] == "ultralytics"
    meta = TFLiteModel(out).require_metadata()
    assert meta.labels == ("cat", "dog") and meta.task == "detect"
    assert meta.decoder.type == "ultralytics_yolo" and meta.input.resize == "letterbox"
    assert doc["agreement"]["max_abs_diff"] < 1e-4     # against onnxruntime, boxes / 32
    assert meta.decoder.normalized is True and doc["metadata"]["decoder"]["normalized"]
    x = np.random.default_rng(3).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    y = TFLiteModel(out).run(x)[0]
    assert 0.0 < y[0, :4].min() and y[0, :4].max() < 1.0    # normalized, not pixels (0..32)
    source = _onnx_outputs(src, x.transpose(0, 3, 1, 2))[0]
    pixels, normalized = _yolo_decode(source, False, (32, 32)), _yolo_decode(y, True, (32, 32))
    assert len(pixels.boxes) and np.array_equal(normalized.classes, pixels.classes)
    np.testing.assert_allclose(normalized.boxes, pixels.boxes, atol=2e-3)
    i8 = onnx_dir / "yolo_i8.tflite"
    result = run_cli("convert", src, "--calib", calib_dir, "--held-out", "4", "-o", i8, "--json")
    assert result.exit_code == 0, result.err
    assert json.loads(result.out)["agreement"]["max_abs_diff"] < 0.05


@needs_onnx2tf
def test_onnx_bad_input_is_refused_without_output(onnx_dir, calib_dir, run_cli):
    # an op the route cannot convert is named
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["c"]),
         helper.make_node("GlobalAveragePool", ["c"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Multinomial", ["f"], ["y"], sample_size=1)], "bad",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        initializer=[_const("w", np.ones((4, 3, 1, 1)))])
    bad = onnx_dir / "bad_op.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(bad))
    out = onnx_dir / "bad.tflite"
    assert_one_line_error(run_cli("convert", bad, "--quant", "float32", "--task", "classify",
                                  "-o", out), "Multinomial", "onnx2tf")
    src = tiny_classifier(onnx_dir / "nchw.onnx")
    assert_one_line_error(run_cli("convert", src, "--layout", "NHWC", "-o", out),
                          "--layout NHWC does not fit")
    assert_one_line_error(run_cli("convert", src, "--labels", "a,b", "--quant", "float32",
                                  "-o", out), "2 labels given", "3 classes")
    assert_one_line_error(run_cli("convert", src, "-o", out), "calibration")
    assert not out.exists()


# ---------------------------------------------------------------- .tflite sources

def _with_ultralytics_json(flat: bytes, doc: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:   # as Ultralytics writes it
        zf.writestr("metadata.json", json.dumps(doc))
    return flat + buf.getvalue()


@needs_onnx2tf
def test_tflite_kept_with_ultralytics_metadata_and_requantized(onnx_dir, calib_dir, run_cli):
    from converters.foreign import convert_foreign
    from edgecnn.runtime import metadata as md
    from edgecnn.runtime.model import TFLiteModel

    f32 = onnx_dir / "tiny_f32.tflite"
    if not f32.exists():
        pytest.skip("needs test_onnx_classifier_float32_nchw_to_nhwc_with_labels_from_props")
    flat, _ = md.split_bundle(f32.read_bytes())
    foreign = onnx_dir / "foreign.tflite"
    foreign.write_bytes(_with_ultralytics_json(
        flat, {"author": "Ultralytics", "task": "classify", "names": {"0": "x", "1": "y",
                                                                        "2": "z"}}))
    kept = convert_foreign(foreign, onnx_dir / "kept.tflite", None, held_out=4)
    model = TFLiteModel(kept.path)
    assert model.require_metadata().labels == ("x", "y", "z")
    assert md.split_bundle(kept.path.read_bytes())[0] == flat      # the model is unchanged
    assert kept.agreement.top1 == 1.0
    pytest.importorskip("ai_edge_quantizer")
    dyn = convert_foreign(foreign, onnx_dir / "dyn.tflite", "dynamic", held_out=4)
    assert dyn.size_bytes < kept.size_bytes and dyn.agreement.top1 >= 0.75
    i8 = onnx_dir / "i8.tflite"
    ok = run_cli("convert", foreign, "--quant", "int8", "--calib", calib_dir, "-o", i8)
    assert ok.exit_code == 0, ok.err
    assert TFLiteModel(i8).input.dtype == np.int8
    assert_one_line_error(run_cli("convert", i8, "--quant", "dynamic", "-o",
                                  onnx_dir / "again.tflite"), "already quantized")


# ---------------------------------------------------------------- .pt2 (torch installed)

def test_pt2_loads_without_pickle_and_converts(tmp_path, calib_dir):
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    from converters.foreign import convert_foreign
    from converters.sources import pt2

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 2)).eval()
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 16, 16),)), str(path))
    source = pt2.load(path)
    assert source.input.layout is Layout.NCHW and source.outputs[0][1] == (1, 2)
    assert torch.load is not None and torch.load.__name__ == "load"   # the guard is undone
    result = convert_foreign(path, tmp_path / "net.tflite", "float32", calib=str(calib_dir),
                             held_out=4)
    assert result.layout == "NHWC" and result.agreement.top1 == 1.0


@pytest.mark.parametrize("scale,normalized", [(1.0, True), (64.0, False)])
def test_kept_yolo_tflite_records_whether_its_boxes_are_normalized(tmp_path, scale, normalized):
    """A YOLO head the route does not rewrite (a ``.tflite`` kept, a Keras model) is measured:
    boxes in 0..1 (Ultralytics' own exports) or in input pixels; either way predict finds the
    same boxes."""
    pytest.importorskip("tensorflow")
    from foreign_models import build_tflite
    from test_foreign_runtime import YOLO

    from converters.foreign import ForeignOptions, convert_foreign
    from edgecnn.runtime import load
    from edgecnn.runtime.model import TFLiteModel

    head = YOLO.copy()
    head[:, :4] *= scale
    src = tmp_path / "head.tflite"
    src.write_bytes(build_tflite([head]))
    result = convert_foreign(src, tmp_path / "kept.tflite", None, held_out=0,
                             options=ForeignOptions(task="detect", labels=("a", "b", "c")))
    meta = TFLiteModel(result.path).require_metadata()
    assert meta.decoder.type == "ultralytics_yolo" and meta.decoder.normalized is normalized
    assert result.metadata["decoder"]["normalized"] is normalized
    found = load(result.path)(np.zeros((64, 64, 3), np.uint8))   # black: the constants
    assert [d.category.label for d in found] == ["b", "a"]
    b = found[0].box
    assert [b.left, b.top, b.right, b.bottom] == pytest.approx([16, 16, 48, 48], abs=1e-3)
