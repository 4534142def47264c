"""A small trained classifier run and its conversions, shared by the convert/eval/inspect/
predict/runtime tests (built once per test session, in a temp folder).

The classifier is trained for real on scikit-learn's digits (8x8 grey, offline) for a few
seconds, so its predictions are confident and float-vs-int8 agreement means something; the
detector is the registry's ``det_test`` with random weights and 4 classes, which makes its
box and score outputs the same shape ``[1, N, 4]`` (the case the converter must tell apart).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_ROOT = Path(tempfile.mkdtemp(prefix="edgecnn-test-models-"))
atexit.register(shutil.rmtree, _ROOT, True)

DIGIT_LABELS = [str(i) for i in range(10)]


def digits_data():
    from edgecnn.data import load_classification

    return load_classification("digits", val_split=0.1, seed=0)


@functools.lru_cache(maxsize=None)
def digits_run() -> Path:
    """Run directory (model.keras + run.json) of a small CNN trained on digits (~95% val)."""
    from edgecnn.lazy import keras
    from edgecnn.rundir import RunInfo

    k = keras()
    k.utils.set_random_seed(0)
    data = digits_data()
    inputs = k.Input((8, 8, 1))
    x = k.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = k.layers.BatchNormalization()(x)      # folded into the conv at conversion
    x = k.layers.ReLU()(x)
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    x = k.layers.Conv2D(96, 1, activation="relu")(x)   # 1536 weights: dynamic quantizes it
    x = k.layers.MaxPooling2D()(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    outputs = k.layers.Dense(10, activation="softmax")(x)
    model = k.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=k.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.x_train.astype("float32") / 255.0, data.y_train, epochs=16, batch_size=64,
              verbose=0)
    run = _ROOT / "digits_run"
    run.mkdir()
    model.save(run / "model.keras")
    RunInfo(task="classify", arch="digits_cnn", labels=DIGIT_LABELS, imgsz=(8, 8), channels=1,
            color="GRAY", data="digits", seed=0,
            ).save(run)
    return run


@functools.lru_cache(maxsize=None)
def converted(quant: str, io: str | None = None):
    """ConversionResult of ``digits_run()`` with the recipe (small calibration set)."""
    from converters import convert_model

    out = _ROOT / "converted" / f"digits_{quant}_{io or 'default'}.tflite"
    return convert_model(digits_run(), out, quant, io=io, calib_size=64, held_out=120)


def keras_model():
    from edgecnn.rundir import load_keras_model

    return load_keras_model(digits_run())[0]


def keras_probs(images: np.ndarray) -> np.ndarray:
    """Keras probabilities for uint8 (N, 8, 8, 1) digits."""
    model = _cached_keras()
    return np.asarray(model(images.astype("float32") / 255.0, training=False))


@functools.lru_cache(maxsize=None)
def _cached_keras():
    return keras_model()


@functools.lru_cache(maxsize=None)
def detector_run() -> Path:
    """Run directory of the registry's ``det_test`` (64x64 RGB, 4 classes, random weights)
    with a folder of calibration photos-like images (random blobs)."""
    import cv2

    from edgecnn.lazy import keras
    from edgecnn.models import create_model
    from edgecnn.models.detect import detector_strides
    from edgecnn.rundir import RunInfo

    keras().utils.set_random_seed(1)
    run = _ROOT / "det_run"
    images = _ROOT / "det_images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        img = np.full((48 + 4 * i, 64, 3), int(rng.integers(0, 256)), np.uint8)
        for _ in range(3):
            x, y = rng.integers(0, 40, 2)
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.rectangle(img, (int(x), int(y)), (int(x) + 20, int(y) + 14), color, -1)
        cv2.imwrite(str(images / f"{i:02d}.png"), img)
    model = create_model("det_test", (64, 64, 3), 4, task="detect")
    run.mkdir()
    model.save(run / "model.keras")
    RunInfo(task="detect", arch="det_test", labels=["a", "b", "c", "d"], imgsz=(64, 64),
            resize="letterbox", decoder={"strides": list(detector_strides("det_test"))},
            data=str(images), seed=0).save(run)
    return run


@functools.lru_cache(maxsize=None)
def converted_detector(quant: str = "int8"):
    from converters import convert_model

    return convert_model(detector_run(), _ROOT / "converted" / f"det_{quant}.tflite", quant,
                         calib_size=8, held_out=4)


def scratch(name: str) -> Path:
    """A fresh folder under the session's temp root."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_ROOT))
    return path
