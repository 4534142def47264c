"""Device runtime for classifiers: LUT preprocessing against a float reference, colour order,
the Classifier on a real converted model, the metadata bundle, and broken model files."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error
from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.metadata import InputSpec, Metadata
from edgecnn.runtime.model import TensorInfo, TFLiteModel
from edgecnn.runtime.preprocess import Preprocessor


def _info(h, w, c, dtype=np.int8, scale=0.0, zp=0) -> TensorInfo:
    return TensorInfo(0, "image", (1, h, w, c), np.dtype(dtype), scale, zp)


def _reference(image_rgb, spec: InputSpec, info: TensorInfo) -> np.ndarray:
    """Straightforward float path: resize, normalize, quantize (what the LUT must equal)."""
    resized = cv2.resize(image_rgb, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    x = (resized.astype(np.float64) - np.asarray(spec.mean)) / np.asarray(spec.std)
    if info.quantized:
        x = np.clip(np.round(x / info.scale + info.zero_point), -128, 127)
    return x.astype(info.dtype).reshape(1, spec.height, spec.width, spec.channels)


# ---- Preprocessor ---------------------------------------------------------------------------

@pytest.mark.parametrize("mean, std", [((0.0,), (255.0,)), ((127.5,), (127.5,)),
                                       ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4))])
def test_lut_equals_float_reference_int8(mean, std):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    spec = InputSpec(24, 32, 3, color="RGB", mean=mean, std=std)
    lo = (0 - max(mean)) / min(std)
    hi = (255 - min(mean)) / min(std)
    scale = (hi - lo) / 255.0
    info = _info(24, 32, 3, np.int8, scale, int(round(-128 - lo / scale)))
    got, box = Preprocessor(spec, info)(rgb, "RGB")
    assert got.dtype == np.int8 and got.shape == (1, 24, 32, 3)
    assert np.array_equal(got, _reference(rgb, spec, info))
    assert (box.src_width, box.src_height) == (53, 37)


def test_lut_float_model_matches_reference():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    spec = InputSpec(16, 16, 3, mean=(127.5,), std=(127.5,))
    info = _info(16, 16, 3, np.float32)
    got, _ = Preprocessor(spec, info)(rgb, "RGB")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference(rgb, spec, info), atol=1e-6)


def test_bgr_and_rgb_inputs_give_the_same_tensor():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    spec = InputSpec(16, 16, 3, color="RGB")
    pre = Preprocessor(spec, _info(16, 16, 3, np.int8, 1 / 255, -128))
    from_rgb, _ = pre(rgb, "RGB")
    from_bgr, _ = pre(np.ascontiguousarray(rgb[:, :, ::-1]), "BGR")
    assert np.array_equal(from_rgb, from_bgr)
    # and the channel order really matters for a non-grey image
    wrong, _ = pre(rgb, "BGR")
    assert not np.array_equal(wrong, from_rgb)


def test_gray_model_takes_bgr_rgb_and_gray_images():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    spec = InputSpec(12, 12, 1, color="GRAY")
    pre = Preprocessor(spec, _info(12, 12, 1, np.int8, 1 / 255, -128))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    expected = (gray.astype(np.int16) - 128).astype(np.int8).reshape(1, 12, 12, 1)
    assert np.array_equal(pre(rgb, "RGB")[0], expected)
    assert np.array_equal(pre(np.ascontiguousarray(rgb[:, :, ::-1]), "BGR")[0], expected)
    assert np.array_equal(pre(gray)[0], expected)            # HxW
    assert np.array_equal(pre(gray[:, :, None])[0], expected)  # HxWx1


def test_rgb_model_takes_a_gray_image_as_three_equal_channels():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    pre = Preprocessor(InputSpec(8, 8, 3), _info(8, 8, 3, np.int8, 1 / 255, -128))
    out, _ = pre(gray)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert np.array_equal(out[0, :, :, 0], (gray.astype(np.int16) - 128).astype(np.int8))


def test_letterbox_pads_and_reports_the_mapping():
    image = np.full((50, 100, 3), 200, np.uint8)
    # a uint8 model that takes raw pixels: mean 0, std 1
    spec = InputSpec(64, 64, 3, resize="letterbox", pad_value=114, mean=(0.0,), std=(1.0,))
    out, box = Preprocessor(spec, _info(64, 64, 3, np.uint8))(image, "RGB")
    assert box.scale_x == pytest.approx(0.64) and box.pad_y == 16 and box.pad_x == 0
    assert np.all(out[0, :16] == 114) and np.all(out[0, 48:] == 114)
    assert np.all(out[0, 16:48] == 200)
    x, y = box.to_image(np.array([32.0]), np.array([32.0]))
    assert x[0] == pytest.approx(50.0) and y[0] == pytest.approx(25.0)


def test_bad_images_are_usage_errors():
    pre = Preprocessor(InputSpec(8, 8, 3), _info(8, 8, 3, np.int8, 1 / 255, -128))
    with pytest.raises(UsageError, match="uint8"):
        pre(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UsageError, match="not HxW"):
        pre(np.zeros((8, 8, 5), np.uint8))


# ---- metadata bundle ----------------------------------------------------------------------

def _meta(**kw) -> Metadata:
    base = dict(task="classify", labels=("cat", "dog"), input=InputSpec(8, 8, 3),
                quantization="int8", name="pets")
    base.update(kw)
    return Metadata(**base)


FAKE_FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + bytes(range(200))


def test_bundle_round_trip_and_replacement():
    meta = _meta()
    data = md.attach(FAKE_FLATBUFFER, meta)
    flat, bundle = md.split_bundle(data)
    assert flat == FAKE_FLATBUFFER and bundle is not None
    # attach records the flatbuffer's SHA-256; everything else reads back as written
    sha = md.flatbuffer_sha256(FAKE_FLATBUFFER)
    assert md.read(data) == meta.replace(edgecnn_version=md.read(data).edgecnn_version,
                                         flatbuffer_sha256=sha)
    assert md.read(data).to_dict() == meta.replace(flatbuffer_sha256=sha).to_dict()
    again = md.attach(data, _meta(labels=("a", "b", "c")))   # replaces, never stacks
    assert md.split_bundle(again)[0] == FAKE_FLATBUFFER
    assert md.read(again).labels == ("a", "b", "c")
    assert md.read(FAKE_FLATBUFFER) is None


def _bundle_with(doc_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(md.JSON_NAME, doc_bytes)
    return FAKE_FLATBUFFER + buf.getvalue()


@pytest.mark.parametrize("doc, needle", [
    (b"{not json", "edgecnn.json is not valid JSON"),
    (json.dumps({"schema": "other/9"}).encode(), "unsupported metadata schema"),
    (json.dumps({**_meta().to_dict(), "task": "segment"}).encode(), "'task' must be one of"),
    (json.dumps({**_meta().to_dict(), "labels": []}).encode(), "labels"),
    (json.dumps({**_meta().to_dict(), "input": {"height": 8}}).encode(), "'input' lacks 'width'"),
])
def test_corrupt_bundle_is_a_usage_error(doc, needle):
    with pytest.raises(UsageError, match=needle):
        md.read(_bundle_with(doc))


# ---- Classifier on a real converted model -------------------------------------------------

@pytest.fixture(scope="module")
def int8_model_path():
    pytest.importorskip("tensorflow")
    import model_factory as mf

    return mf.converted("int8").path


def test_classifier_matches_a_manual_invoke(int8_model_path):
    import model_factory as mf
    from edgecnn.runtime import Classifier, ClassifierOptions, load

    clf = load(int8_model_path, threads=1, top_k=3)
    assert isinstance(clf, Classifier)
    data = mf.digits_data()
    raw = TFLiteModel(int8_model_path)
    correct = same_when_enlarged = 0
    for image, label in zip(data.x_test[:60], data.y_test[:60]):
        cats = clf.classify(image[:, :, 0])              # 8x8 grey: no resize involved
        assert len(cats) == 3 and cats[0].score >= cats[1].score >= cats[2].score
        q = (image.astype(np.int16) - 128).astype(np.int8)[None]   # pixel - 128 (see convert)
        probs = raw.run(q, quantized=True)[0][0]
        assert [c.score for c in cats] == pytest.approx(sorted(probs)[::-1][:3])
        assert probs[cats[0].index] == probs.max()
        correct += cats[0].index == label
        # a 4x larger BGR frame goes through resize + colour conversion to the same answer
        big = cv2.cvtColor(cv2.resize(image, (32, 32), interpolation=cv2.INTER_NEAREST),
                           cv2.COLOR_GRAY2BGR)
        same_when_enlarged += clf.classify(big, "BGR")[0].index == cats[0].index
    assert same_when_enlarged >= 54
    assert correct >= 48   # it is a real classifier (~90% on digits)
    options = ClassifierOptions(top_k=10, score_threshold=0.2)
    kept = Classifier(TFLiteModel(int8_model_path), options).classify(data.x_test[0])
    assert kept and all(c.score >= 0.2 for c in kept)


def test_model_without_metadata_needs_explicit_options(tmp_path, int8_model_path):
    from edgecnn.runtime import load

    flat, _ = md.split_bundle(open(int8_model_path, "rb").read())
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(flat)
    model = TFLiteModel(bare)     # still runs
    assert model.metadata is None and model.input.dtype == np.int8
    with pytest.raises(UsageError, match="carries no edgecnn metadata"):
        load(bare)


def test_broken_model_files_exit_2(run_cli, tmp_path, int8_model_path):
    data = open(int8_model_path, "rb").read()
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8), np.uint8))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: len(data) // 3])
    res = run_cli("predict", truncated, image)
    assert_one_line_error(res, "truncated.tflite")
    text = tmp_path / "model.tflite"
    text.write_text("hello, I am not a model\n" * 10)
    assert_one_line_error(run_cli("predict", text, image), "not a TFLite model")
    assert_one_line_error(run_cli("predict", tmp_path / "nope.tflite", image),
                          "model file not found")
    zeros = tmp_path / "zeros.tflite"
    zeros.write_bytes(b"\x00" * 64)
    assert_one_line_error(run_cli("predict", zeros, image), "not a TFLite model")
