"""Detector runtime: golden vectors, NMS against its reference, thresholds, letterbox, and the
whole chain on a tiny real int8 ``.tflite`` run by the real interpreter."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.runtime import Detector, DetectorOptions, TFLiteModel, load
from edgecnn.runtime import metadata as md
from edgecnn.runtime import postprocess as pp
from edgecnn.runtime.decoders import anchor_free_ltrb as afl
from edgecnn.runtime.decoders.anchor_free_ltrb import AnchorFreeLtrb, decode_head
from edgecnn.runtime.decoders.spec import DecoderSpec
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.preprocess import Preprocessor
from edgecnn.runtime.types import Letterbox

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def _load_make_golden():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "benchmarks" /
                                                  "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((GOLDEN / "detect_golden.json").read_text())


@pytest.fixture(scope="module")
def tiny() -> Detector:
    return Detector.from_file(GOLDEN / "tiny_detect.tflite", DetectorOptions(threads=1))


def _iou(a, b) -> float:
    return float(pp.box_iou(np.asarray(a, float), np.asarray([b], float))[0])


def _assert_same(got, want, case: str) -> None:
    assert len(got) == len(want), (case, got, want)
    for g, w in zip(got, want):
        assert g.category.index == w["index"] and g.category.label == w["label"], case
        assert abs(g.category.score - w["score"]) <= 1e-4, case
        box = [g.box.left, g.box.top, g.box.right, g.box.bottom]
        assert _iou(box, w["box"]) >= 0.99, (case, box, w["box"])


# ---------------------------------------------------------------- golden vectors
@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="the file is written on x86_64; elsewhere numpy's float32 exp may "
                    "differ in the last bits (test_golden_tolerances.py checks it there)")
def test_golden_file_matches_generator():
    text = (GOLDEN / "detect_golden.json").read_text()
    mg = _load_make_golden()
    assert mg.dumps(mg.build_golden()) == text, "run: python benchmarks/make_golden.py --no-tflite"
    assert len(text) < 200_000


def test_golden_cases_cover_what_the_kotlin_core_must_handle(golden):
    cases = {c["name"]: c for c in golden["detect"]}
    assert {c["boxes"]["dtype"] for c in cases.values()} == {"int8", "float32"}
    pads = [(c["letterbox"]["pad_x"], c["letterbox"]["pad_y"]) for c in cases.values()]
    assert any(px > 0 for px, _ in pads) and any(py > 0 for _, py in pads)
    capped = cases["int8_max_detections"]
    assert len(capped["detections"]) == capped["max_detections"] == 4
    clipped = cases["float_horizontal_pad_clipping"]
    assert any(min(d["box_model"]) < 0 or max(d["box_model"]) > 64
               for d in clipped["detections"])
    first = cases["int8_vertical_pad"]["detections"]
    assert [d["label"] for d in first].count("square") == 2  # other class at the same place
    assert any(d["score"] == 0.25 for d in first)  # exactly at the threshold
    for case in golden["detect"]:
        n, c = case["num_anchors"], case["num_classes"]
        assert len(case["boxes"]["raw"]) == n * 4 and len(case["scores"]["dequantized"]) == n * c


def _case_decoder(case: dict) -> AnchorFreeLtrb:
    """The anchor-free decoder for a golden case: its thresholds, its outputs' quantization."""
    spec = DecoderSpec(strides=tuple(case["strides"]), box_output=0, score_output=1,
                       score_threshold=case["score_threshold"],
                       iou_threshold=case["iou_threshold"],
                       max_detections=case["max_detections"])
    outputs = [TensorInfo(i, key, tuple(case[key]["shape"]), np.dtype(case[key]["dtype"]),
                          case[key]["scale"], case[key]["zero_point"])
               for i, key in enumerate(("boxes", "scores"))]
    return AnchorFreeLtrb(spec, outputs, (case["input"]["height"], case["input"]["width"]),
                          case["labels"])


@pytest.mark.parametrize("use_raw", [True, False], ids=["raw", "dequantized"])
def test_detector_postprocess_reproduces_golden_detections(golden, tiny, use_raw):
    """The real Detector.postprocess (from the raw int8 or the dequantized outputs)."""
    det = Detector(tiny.model)
    for case in golden["detect"]:
        det.decoder = _case_decoder(case)
        arrays = []
        for key in ("boxes", "scores"):
            t = case[key]
            values = t["raw"] if use_raw else t["dequantized"]
            arrays.append(np.asarray(values, dtype=t["dtype"] if use_raw else np.float32)
                          .reshape(t["shape"]))
        lb = case["letterbox"]
        letterbox = Letterbox(lb["scale_x"], lb["scale_y"], lb["pad_x"], lb["pad_y"],
                              case["image"]["width"], case["image"]["height"])
        got = det.postprocess(arrays, letterbox)
        _assert_same(got, case["detections"], case["name"])
        raw = det.postprocess_raw(arrays)
        assert raw.anchors.tolist() == [d["anchor"] for d in case["detections"]]


def test_golden_letterbox_and_lut_match_the_preprocessor(golden):
    for c in golden["letterbox"]:
        spec = InputSpec(height=c["dst_height"], width=c["dst_width"], resize="letterbox")
        info = TensorInfo(0, "in", (1, c["dst_height"], c["dst_width"], 3), np.dtype(np.int8),
                          1 / 255, -128)
        _, box = Preprocessor(spec, info).fit(np.zeros((c["src_height"], c["src_width"], 3),
                                                       np.uint8))
        assert (box.scale_x, box.scale_y, box.pad_x, box.pad_y) == \
            (c["scale_x"], c["scale_y"], c["pad_x"], c["pad_y"])
    for c in golden["input_lut"]:
        lut = np.asarray(c["lut"])
        assert lut.shape == (3, 256) and lut.min() >= -128 and lut.max() <= 127
        assert np.all(np.diff(lut, axis=1) >= 0)  # monotone in the pixel value


def test_golden_classification_top_k(golden):
    from edgecnn.runtime.classifier import class_probabilities, top_k

    for case in golden["classify"]:
        out = case["output"]
        values = pp.dequantize(np.asarray(out["raw"], dtype=out["dtype"]),
                               pp.Quant(out["scale"], out["zero_point"]))
        got = top_k(class_probabilities(values, case["activation"]), case["labels"],
                    case["top_k"])
        assert [c.index for c in got] == [t["index"] for t in case["top"]], case["name"]
        assert np.allclose([c.score for c in got], [t["score"] for t in case["top"]], atol=1e-6)
    ties = {c["name"]: c for c in golden["classify"]}["float_logits_none_ties"]["top"]
    assert [t["index"] for t in ties[:3]] == [2, 3, 5]


# ---------------------------------------------------------------- pure functions
def test_anchor_points_follow_the_format_order():
    centers, strides = afl.anchor_points((64, 96), (8, 16, 32))
    assert centers.shape == (8 * 12 + 4 * 6 + 2 * 3, 2)
    assert centers[:3].tolist() == [[4, 4], [12, 4], [20, 4]]  # row-major: x moves first
    assert centers[12].tolist() == [4, 12]
    assert centers[96].tolist() == [8, 8] and strides[96] == 16
    assert centers[-1].tolist() == [80, 48] and strides[-1] == 32
    assert afl.anchor_points((64, 96), (8, 16, 32))[0] is centers  # cached
    with pytest.raises(ValueError):
        centers[0, 0] = 1  # the cache is read-only


def test_decode_boxes():
    ltrb = np.array([[1, 2, 3, 4]], np.float32)
    out = afl.decode_boxes(ltrb, np.array([[20, 30]], np.float32), np.array([8], np.float32))
    assert out.tolist() == [[12, 14, 44, 62]]


def _random_boxes(rng, n, negative=False):
    lo = -40 if negative else 0
    xy = rng.uniform(lo, 100, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(0.5, 50, (n, 2))], 1).astype(np.float32)


def test_nms_cv2_equals_numpy_reference_on_random_cases():
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 80))
        boxes = _random_boxes(rng, n, negative=trial % 2 == 0)
        # Coarse scores make many exact ties, as int8 outputs do.
        scores = (rng.integers(1, 12, n) / 12).astype(np.float32)
        classes = rng.integers(0, 4, n).astype(np.int32)
        iou = float(rng.choice([0.3, 0.45, 0.7]))
        max_det = int(rng.choice([3, 100]))
        ref = pp.nms_reference(boxes, scores, classes, iou, max_det)
        fast = pp.nms_class_aware(boxes, scores, classes, iou, max_det)
        assert fast.tolist() == ref.tolist(), trial


def test_nms_never_suppresses_across_classes_even_left_of_zero():
    """cv2's batched NMS offsets classes assuming x, y >= 0; the wrapper must not rely on it."""
    boxes = np.array([[-100, -100, 10, 10]] * 3, np.float32)
    kept = pp.nms_class_aware(boxes, np.array([0.9, 0.8, 0.7], np.float32),
                              np.array([0, 1, 3], np.int32), 0.45, 100)
    assert kept.tolist() == [0, 1, 2]
    same = pp.nms_class_aware(boxes, np.array([0.9, 0.8, 0.7], np.float32),
                              np.array([2, 2, 2], np.int32), 0.45, 100)
    assert same.tolist() == [0]


def test_nms_reference_basic_semantics():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
                     np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.1], np.float32)
    classes = np.array([0, 0, 1, 0])
    assert pp.nms_reference(boxes, scores, classes, 0.45, 10).tolist() == [1, 2, 3]
    assert pp.nms_reference(boxes, scores, classes, 0.45, 2).tolist() == [1, 2]
    # IoU of boxes 0 and 1 is 9/11 = 0.818: kept when the threshold is above it.
    assert pp.nms_reference(boxes, scores, classes, 0.85, 10).tolist() == [1, 2, 0, 3]


@pytest.mark.parametrize("scale,zero_point", [(1 / 256, -128), (1 / 255, -128), (0.0123, 7),
                                              (0.5, 0)])
def test_quantized_threshold_selects_exactly_the_float_candidates(scale, zero_point):
    rng = np.random.default_rng(1)
    q = pp.Quant(scale, zero_point)
    for thr in [0.0, 0.1, 0.25, 0.3, 0.5, 0.999, float(pp.dequantize(np.int8(-60), q))]:
        raw = rng.integers(-128, 128, (300, 5)).astype(np.int8)
        got = pp.best_class_candidates(raw, thr, q)
        want = pp.best_class_candidates(pp.dequantize(raw, q), thr)
        for g, w in zip(got, want):
            assert np.array_equal(g, w), (thr, scale)
    assert pp.quantized_threshold(10.0, pp.Quant(1 / 256, -128), np.int8) is None
    assert pp.quantized_threshold(0.25, pp.Quant(1 / 256, -128), np.int8) == -64


def test_best_class_with_a_class_filter():
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.1, 0.6], [0.3, 0.3, 0.05]], np.float32)
    idx, cls, sc = pp.best_class_candidates(scores, 0.25, classes=np.array([1, 2]))
    assert idx.tolist() == [0, 1, 2] and cls.tolist() == [1, 2, 1]
    assert sc.tolist() == pytest.approx([0.5, 0.6, 0.3])
    idx, cls, _ = pp.best_class_candidates(scores, 0.25, classes=np.array([2]))
    assert idx.tolist() == [1] and cls.tolist() == [2]
    idx, cls, _ = pp.best_class_candidates(scores, 0.25)
    assert cls.tolist() == [0, 2, 0]  # tie in row 2 goes to the lower class id


# ---------------------------------------------------------------- letterbox mapping
@pytest.mark.parametrize("src", [(640, 480), (480, 640), (1280, 720), (100, 100), (37, 91)])
def test_letterbox_round_trip_puts_a_drawn_box_back_where_it_was(src):
    w, h = src
    spec = InputSpec(height=256, width=256, resize="letterbox", pad_value=0)
    info = TensorInfo(0, "in", (1, 256, 256, 3), np.dtype(np.uint8), 0.0, 0)
    pre = Preprocessor(spec, info)
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = int(w * 0.3), int(h * 0.2), int(w * 0.7), int(h * 0.9)
    image[y1:y2, x1:x2] = 255
    fitted, box = pre.fit(image)
    ys, xs = np.nonzero(fitted[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
    back = pp.to_image(found, box.scale_x, box.scale_y, box.pad_x, box.pad_y, w, h)[0]
    tol = 1.5 / min(box.scale_x, box.scale_y)  # about one model pixel
    assert np.allclose(back, [x1, y1, x2, y2], atol=tol), (back, (x1, y1, x2, y2))
    # Exact inverse of model = image * scale + pad, and clipping to the image.
    pts = np.array([[0, 0, w, h]], np.float64)
    model = pts * ([box.scale_x, box.scale_y] * 2) + ([box.pad_x, box.pad_y] * 2)
    assert np.allclose(pp.to_image(model, box.scale_x, box.scale_y, box.pad_x, box.pad_y,
                                   w, h), pts)
    outside = pp.to_image(np.array([[-50, -50, 400, 400]]), box.scale_x, box.scale_y,
                          box.pad_x, box.pad_y, w, h)
    assert outside.tolist() == [[0, 0, w, h]]


# ---------------------------------------------------------------- the real model
def _scene(seed: int = 0) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    image = load_sample_image("flower.jpg" if seed else "china.jpg")
    return np.ascontiguousarray(image[:, :, ::-1])


def test_tiny_tflite_fixture_matches_its_description():
    info = json.loads((GOLDEN / "tiny_detect.json").read_text())
    data = (GOLDEN / "tiny_detect.tflite").read_bytes()
    assert len(data) == info["size_bytes"] < 64_000
    assert hashlib.sha256(data).hexdigest() == info["sha256"]
    flat, bundle = md.split_bundle(data)
    assert len(flat) == info["bundle_offset"] and len(bundle) == info["bundle_size"]
    with zipfile.ZipFile(GOLDEN / "tiny_detect.tflite") as zf:
        assert zf.namelist() == info["entries"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert json.loads(zf.read("edgecnn.json")) == info["metadata"]
        assert zf.read("labels.txt").decode() == info["labels_txt"]
    model = TFLiteModel(GOLDEN / "tiny_detect.tflite")
    assert [t.to_dict() for t in model.outputs] == info["tensors"]["outputs"]


def test_detector_end_to_end_on_a_real_int8_model(tiny):
    image = _scene()
    tensor, box = tiny.preprocess(image)
    assert tensor.dtype == np.int8 and tensor.shape == (1, 64, 64, 3)
    assert box.pad_y > 0 and box.pad_x == 0  # 640x427 -> vertical padding
    raw_boxes, raw_scores = tiny.infer(tensor)
    assert raw_scores.dtype == np.int8 and raw_scores.shape == (1, 84, 3)
    f_boxes, f_scores = (pp.dequantize(r, q) for r, q in zip((raw_boxes, raw_scores),
                                                               tiny.decoder.quant))
    # A threshold that keeps some anchors and drops others, so every stage has work.
    thr = float(np.median(f_scores.max(-1)))
    det = Detector(tiny.model, DetectorOptions(score_threshold=thr, max_detections=5))
    got = det.detect(image)
    assert 1 <= len(got) <= 5
    # Independent route: float outputs, plain numpy NMS, letterbox inverse.
    ref = decode_head(f_boxes, f_scores, (64, 64), (8, 16, 32), thr, 0.45, 5,
                         nms="reference")
    ref_img = pp.to_image(ref.boxes, box.scale_x, box.scale_y, box.pad_x, box.pad_y,
                          image.shape[1], image.shape[0])
    want = [{"index": int(c), "label": det.labels[int(c)], "score": float(s), "box": b}
            for c, s, b in zip(ref.classes, ref.scores, ref_img.tolist())]
    _assert_same(got, want, "tiny")
    for d in got:
        assert 0 <= d.box.left <= d.box.right <= image.shape[1]
        assert 0 <= d.box.top <= d.box.bottom <= image.shape[0]
        assert d.category.score >= thr
    # RGB input gives the same detections as the BGR frame it came from.
    rgb = det.detect(np.ascontiguousarray(image[:, :, ::-1]), color="RGB")
    assert [d.to_dict() for d in rgb] == [d.to_dict() for d in got]
    assert isinstance(load(GOLDEN / "tiny_detect.tflite"), Detector)


def test_class_filter_and_option_errors(tiny):
    image = _scene(1)
    only = Detector(tiny.model, DetectorOptions(score_threshold=0.0, classes=("square",)))
    found = only.detect(image)
    assert found and {d.category.label for d in found} == {"square"}
    with pytest.raises(UsageError, match="unknown class 'dog'"):
        Detector(tiny.model, DetectorOptions(classes=("dog",)))
    with pytest.raises(UsageError, match="out of range"):
        Detector(tiny.model, DetectorOptions(classes=(7,)))
    with pytest.raises(UsageError, match="within 0..1"):
        Detector(tiny.model, DetectorOptions(score_threshold=1.5))
    with pytest.raises(UsageError, match="max_detections"):
        Detector(tiny.model, DetectorOptions(max_detections=0))


def test_model_without_metadata_is_a_clear_error(tmp_path):
    flat, _ = md.split_bundle((GOLDEN / "tiny_detect.tflite").read_bytes())
    path = tmp_path / "bare.tflite"
    path.write_bytes(flat)
    with pytest.raises(UsageError, match="carries no edgecnn metadata"):
        Detector.from_file(path)
    with pytest.raises(UsageError, match="no edgecnn metadata"):
        load(path)


def test_wrong_task_and_mismatched_metadata_are_clear_errors(tmp_path):
    data = (GOLDEN / "tiny_detect.tflite").read_bytes()
    meta = md.read(data)
    as_classifier = meta.replace(task="classify", decoder=None)
    path = tmp_path / "classify.tflite"
    path.write_bytes(md.attach(data, as_classifier))
    with pytest.raises(UsageError, match="not 'detect'"):
        Detector.from_file(path)
    wrong_strides = meta.replace(decoder=meta.decoder.__class__(strides=(8, 16)))
    path = tmp_path / "strides.tflite"
    path.write_bytes(md.attach(data, wrong_strides))
    with pytest.raises(UsageError, match="does not describe this model"):
        Detector.from_file(path)
    bad_decoder = meta.replace(decoder=meta.decoder.__class__(type="yolo_v9"))
    path = tmp_path / "decoder.tflite"
    path.write_bytes(md.attach(data, bad_decoder))
    with pytest.raises(UsageError, match="unknown decoder type 'yolo_v9'.*anchor_free_ltrb"):
        Detector.from_file(path)


def test_bad_images_are_clear_errors(tiny):
    with pytest.raises(UsageError, match="uint8"):
        tiny.detect(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UsageError, match="shape"):
        tiny.detect(np.zeros((10, 10, 2), np.uint8))
    gray = cv2.cvtColor(_scene(), cv2.COLOR_BGR2GRAY)
    assert isinstance(tiny.detect(gray), list)


@pytest.mark.parametrize("mean,std,scale,zero_point", [
    ((0.0,), (255.0,), 0.003921568859368563, -128),  # edgecnn's recipe: the table is p - 128
    ((127.5,), (127.5,), 0.007843137718737125, -1),
    ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4), 0.0187, -14),
])
def test_fast_letterbox_equals_the_reference_path(mean, std, scale, zero_point):
    """The int8 fast path (content-only resize, XOR or LUT straight into the output) must give
    the same tensor as fit() + a LUT over the whole canvas."""
    rng = np.random.default_rng(0)
    for color in ("RGB", "BGR"):
        spec = InputSpec(height=96, width=96, resize="letterbox", color=color, mean=mean,
                         std=std)
        pre = Preprocessor(spec, TensorInfo(0, "in", (1, 96, 96, 3), np.dtype(np.int8), scale,
                                            zero_point))
        assert pre._shift128 == (mean == (0.0,))
        for w, h in [(640, 480), (480, 640), (1920, 1080), (333, 222), (50, 40), (96, 96)]:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for given in ("BGR", "RGB"):
                fast, box = pre(image, given)
                model_color, swap = pre.to_model_color(image, given)
                fitted, ref_box = pre.fit(model_color)
                ref = pre._apply_lut(fitted, swap).reshape(fast.shape)
                assert box == ref_box and np.array_equal(fast, ref), (w, h, color, given)


def test_resize_down_stays_close_to_area_averaging():
    from edgecnn.runtime.preprocess import resize_down

    photo = np.ascontiguousarray(_scene()[:426])  # 640x426: even sides take the 2-step path
    for size in [(256, 170), (160, 107)]:
        fast = np.abs(resize_down(photo, size).astype(int) - cv2.resize(
            photo, size, interpolation=cv2.INTER_AREA)).mean()
        plain = np.abs(cv2.resize(photo, size, interpolation=cv2.INTER_LINEAR).astype(int) -
                       cv2.resize(photo, size, interpolation=cv2.INTER_AREA)).mean()
        assert 0 < fast < 4.0 and fast < 0.6 * plain, (size, fast, plain)
    # Exact integer factors and sizes with no usable divisor are plain INTER_AREA.
    for size in [(320, 213), (100, 67)]:
        assert np.array_equal(resize_down(photo, size),
                              cv2.resize(photo, size, interpolation=cv2.INTER_AREA))
