"""Detector calibration leaves out the images the model answers with extreme logits."""

from __future__ import annotations

import numpy as np
import pytest

from converters.outliers import outlier_mask, robust_detector_calibration


def test_outlier_mask_takes_the_few_extreme_images_only():
    peaks = np.array([3.1, 3.9, 4.2, 4.5, 3.8, 60.0, 1690.0, 4.0])
    assert outlier_mask(peaks).tolist() == [False] * 5 + [True, True, False]
    # a model whose every image is extreme keeps them all: the median is the normal then
    assert not outlier_mask(np.array([500.0, 600.0, 700.0, 5000.0])).any()
    # never more than half
    assert not outlier_mask(np.array([1.0, 1.0, 100.0, 100.0, 100.0])).any()
    assert outlier_mask(np.zeros(0)).shape == (0,)


def test_a_detector_head_drops_its_outlier_images_and_says_so():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((4, 4, 3))
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(2, name="scores_logits", use_bias=False,
                                kernel_initializer="ones")(flat)
    scores = keras.layers.Activation("sigmoid", name="scores")(logits)
    model = keras.Model(inputs, scores)
    x = np.full((20, 4, 4, 3), 0.1, np.float32)
    x[[3, 11]] = 50.0                       # two images the model answers with logits of 2400
    kept, note = robust_detector_calibration(model, x)
    assert len(kept) == 18 and float(kept.max()) == pytest.approx(0.1)
    assert note is not None and "2 of 20 images left out" in note
    # a model without the detector head's logits layer (a classifier) keeps every image
    other = keras.Model(inputs, keras.layers.Dense(2, name="logits")(flat))
    same, none = robust_detector_calibration(other, x)
    assert same is x and none is None
