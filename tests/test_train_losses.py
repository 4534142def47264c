"""Detection losses (``edgecnn.train.losses``) on hand-made boxes: CIoU values worked out by hand,
the quality focal loss on soft targets, L1 on ltrb distances, the weighted total, and finite
gradients where a careless formula would give NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest


def _tf():
    from edgecnn.lazy import tensorflow

    return tensorflow()


def _ciou(pred, target) -> float:
    from edgecnn.train.losses import ciou

    tf = _tf()
    return float(ciou(tf.constant(pred, tf.float32), tf.constant(target, tf.float32)))


def test_ciou_of_identical_boxes_is_one():
    assert _ciou([2, 3, 10, 7], [2, 3, 10, 7]) == pytest.approx(1.0, abs=1e-6)


def test_ciou_of_a_shifted_square():
    # [0,0,2,2] vs [1,0,3,2]: IoU 2/6; enclosing box 3x2 (diagonal^2 13); centres 1 apart.
    assert _ciou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3 - 1 / 13, abs=1e-6)


def test_ciou_aspect_ratio_term():
    # [0,0,2,2] vs [0,0,4,2]: IoU 0.5, centre distance^2 1 over diagonal^2 20, and the
    # aspect term v = 4/pi^2 (atan 2 - atan 1)^2 weighted by v / (1 - IoU + v).
    v = 4 / math.pi ** 2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    expected = 0.5 - (1 / 20 + v * v / (1 - 0.5 + v))
    assert _ciou([0, 0, 2, 2], [0, 0, 4, 2]) == pytest.approx(expected, abs=1e-6)


def test_ciou_of_disjoint_boxes_is_negative():
    # no overlap: IoU 0, centres 4 apart over an enclosing diagonal^2 of 6^2 + 2^2
    assert _ciou([0, 0, 2, 2], [4, 0, 6, 2]) == pytest.approx(-16 / 40, abs=1e-6)


def _one_positive_batch(pred_ltrb, target_box, logits, target_scores):
    """One image, two anchors at (12, 12) stride 8 (positive) and (20, 12) (background)."""
    from edgecnn.train.assign import Targets

    tf = _tf()
    anchors = tf.constant([[12.0, 12.0], [20.0, 12.0]])
    strides = tf.constant([8.0, 8.0])
    ltrb = tf.constant([pred_ltrb, [0.0, 0.0, 0.0, 0.0]], tf.float32)[None]
    d = ltrb * strides[None, :, None]
    boxes = tf.concat([anchors[None] - d[..., :2], anchors[None] + d[..., 2:]], -1)
    targets = Targets(boxes=tf.constant([[target_box, [0.0, 0.0, 0.0, 0.0]]], tf.float32),
                      scores=tf.constant([target_scores], tf.float32),
                      fg=tf.constant([[1.0, 0.0]]))
    return tf.constant([logits], tf.float32), ltrb, boxes, targets, anchors, strides


def _parts(*batch):
    from edgecnn.train.losses import detection_loss

    return [float(p) for p in detection_loss(*batch)]


def test_perfect_predictions_cost_nothing():
    # box [4,8,28,20] from the anchor (12,12): ltrb (8,4,16,8) px = (1, 0.5, 2, 1) strides;
    # logits whose sigmoid equals the soft targets make the quality focal loss 0.
    soft = 0.8
    logit = math.log(soft / (1 - soft))
    total, box, cls, l1 = _parts(*_one_positive_batch(
        [1.0, 0.5, 2.0, 1.0], [4.0, 8.0, 28.0, 20.0],
        [[-30.0, logit], [-30.0, -30.0]], [[0.0, soft], [0.0, 0.0]]))
    assert box == pytest.approx(0.0, abs=1e-6)
    assert l1 == pytest.approx(0.0, abs=1e-6)
    assert cls == pytest.approx(0.0, abs=1e-6)
    assert total == pytest.approx(0.0, abs=1e-5)


def test_l1_box_and_weighted_total_of_an_offset_prediction():
    from edgecnn.train.losses import LossWeights

    target_box = [4.0, 8.0, 28.0, 20.0]            # ltrb (1, 0.5, 2, 1) in strides
    pred = [1.5, 0.5, 2.0, 0.75]                     # L1 0.5 + 0.25
    total, box, cls, l1 = _parts(*_one_positive_batch(
        pred, target_box, [[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]))
    assert l1 == pytest.approx(0.75, abs=1e-6)
    # the decoded prediction is [0,8,28,18]; the background anchor adds nothing
    assert box == pytest.approx(1.0 - _ciou([0, 8, 28, 18], target_box), abs=1e-6)
    w = LossWeights()
    assert total == pytest.approx(w.box * box + w.cls * cls + w.l1 * l1, rel=1e-6)


def test_quality_focal_loss_on_soft_targets():
    # BCE(l, t) * (sigmoid(l) - t)^2, summed over anchors and classes, divided by the sum of
    # the soft targets (at least 1).
    logits = np.array([[0.5, -1.0], [2.0, -3.0]], np.float32)
    soft = np.array([[0.0, 0.3], [0.0, 0.0]], np.float32)
    _, _, cls, _ = _parts(*_one_positive_batch(
        [1.0, 0.5, 2.0, 1.0], [4.0, 8.0, 28.0, 20.0], logits.tolist(), soft.tolist()))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    bce = -(soft * np.log(p) + (1 - soft) * np.log(1 - p))
    expected = float((bce * (p - soft) ** 2).sum() / max(soft.sum(), 1.0))
    assert cls == pytest.approx(expected, rel=1e-5)


def test_l1_targets_clip_at_zero_for_a_box_not_around_the_anchor():
    # the target box starts right of the anchor: its left distance (-1 stride) counts as 0,
    # which the prediction 0 matches; only the right side is off, by |3 - 2|
    _, _, _, l1 = _parts(*_one_positive_batch(
        [0.0, 0.5, 3.0, 1.0], [20.0, 8.0, 28.0, 20.0], [[0.0, 0.0], [0.0, 0.0]],
        [[0.0, 1.0], [0.0, 0.0]]))
    assert l1 == pytest.approx(1.0, abs=1e-6)


def test_gradients_are_finite_for_degenerate_boxes():
    from edgecnn.train.assign import Targets
    from edgecnn.train.losses import detection_loss

    tf = _tf()
    anchors = tf.constant([[12.0, 12.0], [20.0, 12.0], [28.0, 12.0]])
    strides = tf.constant([8.0, 8.0, 8.0])
    # a zero-height prediction on a positive, zero-size ones on the background
    ltrb = tf.Variable([[[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    logits = tf.Variable(tf.zeros((1, 3, 2)))
    targets = Targets(boxes=tf.constant([[[4.0, 8.0, 20.0, 16.0]] + [[0.0] * 4] * 2]),
                      scores=tf.constant([[[0.0, 0.6], [0.0, 0.0], [0.0, 0.0]]]),
                      fg=tf.constant([[1.0, 0.0, 0.0]]))
    with tf.GradientTape() as tape:
        d = ltrb * strides[None, :, None]
        boxes = tf.concat([anchors[None] - d[..., :2], anchors[None] + d[..., 2:]], -1)
        total = detection_loss(logits, ltrb, boxes, targets, anchors, strides)[0]
    g_ltrb, g_logits = tape.gradient(total, [ltrb, logits])
    assert np.isfinite(float(total))
    assert np.isfinite(g_ltrb.numpy()).all() and np.isfinite(g_logits.numpy()).all()
    # background anchors get no box gradient; the positive does
    assert np.abs(g_ltrb.numpy()[0, 1:]).max() == 0.0
    assert np.abs(g_ltrb.numpy()[0, 0]).max() > 0.0


def _bin_logits(probabilities_per_side):
    """(1, 1, 4 * K) logits whose softmax per side is the given distribution."""
    p = np.asarray(probabilities_per_side, np.float64)
    return _tf().constant(np.log(np.maximum(p, 1e-12)).reshape(1, 1, -1), _tf().float32)


def test_distribution_focal_loss_is_smallest_on_the_two_neighbouring_bins():
    from edgecnn.models.detect import BOX_BINS
    from edgecnn.train.losses import distribution_focal_loss

    k = len(BOX_BINS)
    target = _tf().constant([[[2.25, 0.0, 7.5, 20.0]]])       # the last side is clipped
    best = np.zeros((4, k))
    best[0, 2], best[0, 3] = 0.75, 0.25
    best[1, 0] = 1.0
    best[2, 7] = best[2, 8] = 0.5
    best[3, k - 1] = 1.0
    at_best = float(distribution_focal_loss(_bin_logits(best), target, BOX_BINS)[0, 0])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) + math.log(2)
    # the clipped side sits 1e-3 below the last bin: a sliver of weight on the bin before it
    sliver = 1e-3 / (BOX_BINS[-1] - BOX_BINS[-2]) * -math.log(1e-12)
    assert at_best == pytest.approx(entropy + sliver, abs=2e-3)
    # the same mass one bin off costs more; so does a uniform distribution
    off = np.roll(best, 1, axis=1)
    assert float(distribution_focal_loss(_bin_logits(off), target, BOX_BINS)[0, 0]) > at_best + 1
    flat = np.full((4, k), 1.0 / k)
    assert float(distribution_focal_loss(_bin_logits(flat), target, BOX_BINS)[0, 0]) > at_best + 1


def test_integral_head_trains_with_dfl_in_place_of_l1():
    from edgecnn.models.detect import BOX_BINS
    from edgecnn.train.losses import LossWeights, detection_loss

    batch = _one_positive_batch([1.0, 0.5, 2.0, 1.0], [4.0, 8.0, 28.0, 20.0],
                                [[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]])
    k = len(BOX_BINS)
    flat = _tf().constant(np.zeros((1, 2, 4 * k), np.float32))
    total, box, cls, l1 = (float(v) for v in detection_loss(*batch, bin_logits=flat,
                                                             bins=BOX_BINS))
    w = LossWeights()
    # uniform bins: the DFL of each side is log(K); L1 (0 here) is reported, not added
    assert l1 == pytest.approx(0.0, abs=1e-6)
    assert total == pytest.approx(w.box * box + w.cls * cls + w.dfl * 4 * math.log(k),
                                  rel=1e-4)
