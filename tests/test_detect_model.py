"""Detector architectures: registry, output contract of docs/FORMAT.md, int8-friendly ops."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.models.registry import create_model, get_entry, list_models
from edgecnn.runtime.decoders import anchor_free_ltrb as afl


def test_detectors_are_registered_for_detect():
    names = {e.name for e in list_models("detect")}
    assert {"det_test", "det_s", "det_m"} <= names
    assert get_entry("det_s").default_imgsz == 256
    assert get_entry("det_m").default_imgsz == 320


@pytest.mark.parametrize("imgsz", [64, 96, 160])
def test_output_shapes_match_format_anchor_count(imgsz):
    model = create_model("det_test", (imgsz, imgsz, 3), 3, task="detect")
    n = afl.num_anchors((imgsz, imgsz), (8, 16, 32))
    assert n == sum((imgsz // s) ** 2 for s in (8, 16, 32))
    assert model.get_layer("boxes").output is model.outputs[0]
    assert model.get_layer("scores").output is model.outputs[1]
    assert tuple(model.outputs[0].shape) == (None, n, 4)
    assert tuple(model.outputs[1].shape) == (None, n, 3)


def test_outputs_are_nonnegative_boxes_and_probabilities():
    model = create_model("det_test", (64, 64, 3), 2, task="detect")
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    boxes, scores = (np.asarray(t) for t in model(x, training=False))
    assert boxes.shape == (2, 84, 4) and scores.shape == (2, 84, 2)
    assert (boxes >= 0).all()
    assert ((scores > 0) & (scores < 1)).all()
    # the classification prior starts every score near 0.01 (focal-loss style init)
    assert 0.001 < float(np.median(scores)) < 0.1


def test_anchor_order_is_stride_then_row_major():
    """A feature at one stride-32 cell must move exactly the score of that cell's anchor row.

    Zeroing all head biases and weights except the stride-32 cls bias map shows which flat
    rows come from which grid: rows of stride 8 and 16 come first, stride 32 last.
    """
    model = create_model("det_test", (64, 64, 3), 1, task="detect")
    for layer in model.layers:
        if layer.name.startswith("head") and layer.name.endswith("cls_pred"):
            w, b = layer.get_weights()
            layer.set_weights([np.zeros_like(w), np.full_like(b, 5.0 if "32" in layer.name
                                                              else -5.0)])
    _, scores = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
    scores = np.asarray(scores)[0, :, 0]
    n8, n16 = 64, 16
    assert (scores[:n8 + n16] < 0.01).all() and (scores[n8 + n16:] > 0.99).all()


def test_width_multiplier_changes_size_and_bad_inputs_raise():
    small = create_model("det_s", (128, 128, 3), 4, task="detect", width=0.5)
    full = create_model("det_s", (128, 128, 3), 4, task="detect")
    assert small.count_params() < 0.5 * full.count_params()
    with pytest.raises(ValueError, match="multiple"):
        create_model("det_test", (100, 100, 3), 4, task="detect")


def test_only_int8_friendly_layer_types():
    model = create_model("det_s", (256, 256, 3), 4, task="detect")
    allowed = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
               "UpSampling2D", "Concatenate", "Reshape", "Activation"}
    assert {type(layer).__name__ for layer in model.layers} <= allowed
    assert model.count_params() < 400_000   # a few hundred KB as int8
    integral = create_model("det_s", (256, 256, 3), 4, task="detect", integral_boxes=True)
    assert {type(layer).__name__ for layer in integral.layers} <= allowed | {"Softmax", "Dense"}


def test_integral_boxes_are_the_expectation_over_exact_int8_bins():
    from edgecnn.models.detect import BOX_BINS, BOX_BINS_LAYER

    model = create_model("det_test", (64, 64, 3), 2, task="detect", integral_boxes=True)
    assert [o.shape[1:] for o in model.outputs] == [(84, 4), (84, 2)]
    logits = model.get_layer(BOX_BINS_LAYER).output
    probe = __import__("keras").Model(model.inputs, [logits, model.outputs[0]])
    x = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    raw, boxes = (np.asarray(v) for v in probe(x))
    raw = raw.reshape(1, 84, 4, len(BOX_BINS))
    p = np.exp(raw - raw.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(boxes, (p * np.asarray(BOX_BINS)).sum(-1), rtol=1e-5, atol=1e-5)
    # bins 0..15 and 127/8: with that maximum every bin is a multiple of the int8 scale 1/8
    assert all(float(v * 8).is_integer() for v in BOX_BINS) and max(BOX_BINS) * 8 == 127
