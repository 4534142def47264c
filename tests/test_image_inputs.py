"""Run-time images (issue 15, item 5): empty, strided, gray, BGRA, 16-bit and wrongly typed
arrays, and image files whose header declares 40000x40000 pixels: a one-line error for that
image, and a predict batch goes on with the others."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.predict import header_size, read_bgr
from edgecnn.runtime import Classifier, load
from edgecnn.runtime import metadata as md
from edgecnn.runtime.model import TFLiteModel

TINY = Path(__file__).parent / "golden" / "tiny_detect.tflite"


@pytest.fixture(scope="module")
def runners():
    flat, _ = md.split_bundle(TINY.read_bytes())
    # the same flatbuffer as a classifier with a stretch resize: the other preprocessing path
    meta = md.Metadata(task="classify", labels=tuple(f"c{i}" for i in range(252)),
                       input=md.InputSpec(64, 64, 3, resize="stretch"), output_activation="none")
    return load(TINY, threads=1), Classifier(TFLiteModel(md.attach(flat, meta), threads=1))


def _run(runner, image, color="BGR"):
    return runner.detect(image, color) if hasattr(runner, "detect") else \
        runner.classify(image, color)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 0), (7, 0)])
def test_empty_images_are_usage_errors(runners, shape):
    for runner in runners:
        with pytest.raises(UsageError, match="the image is empty"):
            _run(runner, np.zeros(shape, np.uint8))


@pytest.mark.parametrize("image, needle", [
    (np.zeros((8, 8, 3), np.float32), "must be uint8"),
    (np.zeros((8, 8), bool), "must be uint8"),
    (np.zeros((8, 8, 2), np.uint8), "is not HxW"),
    (np.zeros((2, 8, 8, 3), np.uint8), "is not HxW"),
    ([[0, 1]], "must be a numpy array"),
])
def test_wrong_arrays_are_usage_errors(runners, image, needle):
    for runner in runners:
        with pytest.raises(UsageError, match=needle):
            _run(runner, image)


def test_gray_bgra_16bit_and_strided_images_run(runners):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), np.uint8)
    want = [_run(r, base) for r in runners]
    bgra = np.dstack([base, np.full(base.shape[:2], 255, np.uint8)])
    wide = base.astype(np.uint16) * 257
    strided = np.zeros((96, 128, 3), np.uint8)
    strided[::2, ::2] = base
    for runner, expected in zip(runners, want):
        assert _run(runner, bgra) == expected
        assert _run(runner, wide) == expected
        assert _run(runner, strided[::2, ::2]) == expected
        _run(runner, base[:, :, 0])                 # gray
        _run(runner, base[:, :, 0], "GRAY")
        with pytest.raises(UsageError, match="color must be BGR or RGB"):
            _run(runner, base, "GRAY")


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def test_header_sizes():
    assert header_size(_png_header_only(40000, 30000)) == (40000, 30000)
    for ext in (".png", ".jpg", ".bmp", ".webp"):
        data = cv2.imencode(ext, np.zeros((21, 34, 3), np.uint8))[1].tobytes()
        assert header_size(data) == (34, 21), ext


def test_predict_batch_goes_on_past_a_40000x40000_png(tmp_path, run_cli):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((40, 60, 3), 90, np.uint8))
    gray16 = tmp_path / "gray16.png"
    cv2.imwrite(str(gray16), np.full((30, 30), 40000, np.uint16))
    bgra = tmp_path / "bgra.png"
    cv2.imwrite(str(bgra), np.full((30, 30, 4), 200, np.uint8))
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header_only(40000, 40000))
    with pytest.raises(ValueError, match="40000x40000 pixels"):
        read_bgr(huge)
    res = run_cli("predict", TINY, huge, good, gray16, bgra, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert [Path(r["image"]).name for r in doc["results"]] == ["good.png", "gray16.png",
                                                               "bgra.png"]
    assert [s["image"] for s in doc["skipped"]] == [str(huge)]
    assert "1600 MP" in doc["skipped"][0]["reason"]
    assert "warning: skipped" in res.err and "Traceback" not in res.err
