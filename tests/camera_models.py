"""Tiny real ``.tflite`` models and videos with known content for the camera and bench tests.

The models are built with TensorFlow here (tests may use it to make fixtures; the modules under
test do not). They are hand-wired, not trained, so what they output is known:

- ``bright_detector``: 64x64 RGB input, strides (8, 16), one class ``blob``. At stride 8 each
  anchor's score is ``sigmoid(40 * (mean brightness of its 8x8 cell - 0.5))`` and its box is the
  cell itself; stride 16 never fires. A white square on black is found where it is.
- ``brightness_classifier``: 32x32 RGB, classes ``dark`` / ``bright`` from the mean brightness.
- ``blob_detector``: ``bright_detector`` with boxes twice the cell, so one square is one box.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _convert(fn, signature, quantize_int8: bool = False, rep=None) -> bytes:
    import tensorflow as tf

    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], fn)
    if quantize_int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
    return conv.convert()


def bright_detector_bytes(int8: bool = False, reach: float = 0.5) -> bytes:
    """The hand-wired detector of the module docstring, with edgecnn metadata attached.

    ``reach``: each box side's distance from its anchor in strides (0.5: the cell itself;
    1.0: a box twice the cell, so neighbouring cells' boxes overlap and NMS keeps one).
    """
    import tensorflow as tf

    from edgecnn.runtime.metadata import DecoderSpec, InputSpec, Metadata, attach

    size = 64

    def model(x):
        cell = tf.nn.avg_pool2d(tf.reduce_mean(x, axis=-1, keepdims=True), 8, 8, "VALID")
        s8 = tf.sigmoid(40.0 * (tf.reshape(cell, [1, 64, 1]) - 0.5))
        s16 = tf.zeros([1, 16, 1]) + 0.0 * tf.reduce_mean(x)
        scores = tf.concat([s8, s16], axis=1)
        boxes = tf.ones([1, 80, 4]) * reach + 0.0 * tf.reduce_mean(x)
        return boxes, scores

    sig = [tf.TensorSpec([1, size, size, 3], tf.float32)]

    def rep():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)]

    flat = _convert(model, sig, int8, rep)
    meta = Metadata(task="detect", labels=("blob",),
                    input=InputSpec(size, size, 3, color="RGB", resize="letterbox",
                                    mean=(0.0,), std=(255.0,)),
                    decoder=DecoderSpec(strides=(8, 16), box_output=_output_index(flat, 4),
                                        score_output=1 - _output_index(flat, 4),
                                        score_threshold=0.5, iou_threshold=0.3),
                    quantization="int8" if int8 else "float32", name="bright_detector")
    return attach(flat, meta)


def _output_index(flat: bytes, last_dim: int) -> int:
    """Position of the output whose last dimension is ``last_dim`` (converter order varies)."""
    from edgecnn.runtime.model import TFLiteModel

    outs = TFLiteModel(flat).outputs
    for i, o in enumerate(outs):
        if o.shape[-1] == last_dim:
            return i
    raise RuntimeError("no such output")


def brightness_classifier_bytes() -> bytes:
    import tensorflow as tf

    from edgecnn.runtime.metadata import InputSpec, Metadata, attach

    def model(x):
        m = tf.reduce_mean(x, axis=[1, 2, 3])
        logits = tf.stack([20.0 * (0.5 - m), 20.0 * (m - 0.5)], axis=-1)
        return tf.nn.softmax(logits)

    flat = _convert(model, [tf.TensorSpec([1, 32, 32, 3], tf.float32)])
    meta = Metadata(task="classify", labels=("dark", "bright"),
                    input=InputSpec(32, 32, 3, color="RGB", resize="stretch",
                                    mean=(0.0,), std=(255.0,)),
                    output_activation="softmax", quantization="float32", name="brightness")
    return attach(flat, meta)


def square_positions(frames: int, size=(320, 240), side: int = 80, seed: int = 0):
    """Top-left corners of a square moving diagonally and bouncing (deterministic)."""
    w, h = size
    rng = np.random.default_rng(seed)
    x, y = float(rng.integers(0, w - side)), float(rng.integers(0, h - side))
    vx, vy = 7.0, 5.0
    out = []
    for _ in range(frames):
        out.append((int(x), int(y)))
        x += vx
        y += vy
        if not 0 <= x <= w - side:
            vx = -vx
            x = min(max(x, 0), w - side)
        if not 0 <= y <= h - side:
            vy = -vy
            y = min(max(y, 0), h - side)
    return out


def write_square_video(path: Path, frames: int = 30, size=(320, 240), side: int = 80,
                       fps: float = 25.0) -> list[tuple[int, int, int, int]]:
    """A video of a white square moving on black; returns its box (x1, y1, x2, y2) per frame."""
    w, h = size
    suffix = Path(path).suffix.lower()
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write the test video")
    boxes = []
    for x, y in square_positions(frames, size, side):
        img = np.zeros((h, w, 3), np.uint8)
        img[y:y + side, x:x + side] = 255
        writer.write(img)
        boxes.append((x, y, x + side, y + side))
    writer.release()
    return boxes


_BUILDERS = {
    "bright_detector.tflite": lambda: bright_detector_bytes(False),
    "bright_detector_int8.tflite": lambda: bright_detector_bytes(True),
    "brightness_classifier.tflite": brightness_classifier_bytes,
    "blob_detector.tflite": lambda: bright_detector_bytes(False, reach=1.0),
}
MODEL_NAMES = tuple(_BUILDERS)

# A folder of these models built elsewhere: ``.ci/arm64`` builds them on x86_64 (TensorFlow)
# and runs the camera and bench tests on aarch64 (no TensorFlow, as on a Raspberry Pi) with them.
PREBUILT_ENV = "EDGECNN_TEST_MODELS"


def model_path(config, name: str) -> Path:
    """Build ``name`` once and keep it in pytest's cache (keyed by this file's content).

    With ``$EDGECNN_TEST_MODELS`` set, the models live in that folder instead: built there
    when TensorFlow is installed, required to be there when it is not. Without TensorFlow and
    without that folder, the calling test is skipped (as on a Raspberry Pi).

    Args:
        config: ``request.config`` of the calling fixture (may be None).
        name: one of :data:`MODEL_NAMES`.
    """
    import hashlib
    import importlib.util

    import pytest

    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    name_dir = f"edgecnn-camera-models-{key}"
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if os.environ.get(PREBUILT_ENV):
        folder = Path(os.environ[PREBUILT_ENV])
        folder.mkdir(parents=True, exist_ok=True)
    elif cache is not None:
        folder = Path(cache.mkdir(name_dir))
    else:
        import tempfile

        folder = Path(tempfile.gettempdir()) / name_dir
        folder.mkdir(exist_ok=True)
    path = folder / name
    if not path.exists() and importlib.util.find_spec("tensorflow") is None:
        if os.environ.get(PREBUILT_ENV):
            raise FileNotFoundError(f"{path} is missing and TensorFlow is not here to build it")
        pytest.skip("needs tensorflow to build the fixture model (or $EDGECNN_TEST_MODELS)")
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.part")  # parallel test workers never collide
        tmp.write_bytes(_BUILDERS[name]())
        os.replace(tmp, path)
    return path
