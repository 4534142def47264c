"""Target assignment (``edgecnn.train.assign``) on hand-made anchors and boxes whose right answer
is worked out by hand: which anchors become positive, their box and soft class targets, and what
never becomes positive (padding rows, boxes with no anchor centre inside)."""

from __future__ import annotations

import numpy as np
import pytest

STRIDE = 8


def _grid(size: int = 32) -> np.ndarray:
    """Anchor centres of one stride-8 level, row by row: (4, 4), (12, 4), ... (size - 4)."""
    c = np.arange(STRIDE / 2, size, STRIDE, dtype=np.float32)
    xs, ys = np.meshgrid(c, c)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def _index(anchors: np.ndarray, x: float, y: float) -> int:
    return int(np.flatnonzero((anchors[:, 0] == x) & (anchors[:, 1] == y))[0])


def _assign(anchors, pred_boxes, gt_boxes, gt_classes, num_classes=2, score=0.5, static=None,
            **cfg):
    from edgecnn.lazy import tensorflow
    from edgecnn.train.assign import AssignConfig, assign

    tf = tensorflow()
    n = len(anchors)
    scores = np.full((1, n, num_classes), score, np.float32)
    strides = np.full((n,), STRIDE, np.float32)
    t = assign(tf.constant(scores), tf.constant(np.asarray(pred_boxes, np.float32)[None]),
               tf.constant(anchors), tf.constant(np.asarray(gt_boxes, np.float32)[None]),
               tf.constant(np.asarray(gt_classes, np.int32)[None]), num_classes,
               AssignConfig(**cfg), tf.constant(strides),
               None if static is None else tf.constant(static))
    return t.fg.numpy()[0], t.boxes.numpy()[0], t.scores.numpy()[0]


def _far_boxes(n: int) -> np.ndarray:
    """Predictions that overlap nothing: a 1-pixel box far outside the image."""
    return np.tile(np.array([[500, 500, 501, 501]], np.float32), (n, 1))


def test_top_k_by_predicted_iou_with_soft_targets():
    anchors = _grid()
    gt = [0, 0, 16, 16]               # holds the centres (4, 4), (12, 4), (4, 12), (12, 12)
    pred = _far_boxes(len(anchors))
    a, b, c = (_index(anchors, 4, 4), _index(anchors, 12, 4), _index(anchors, 12, 12))
    pred[a] = gt                      # IoU 1
    pred[b] = [0, 0, 16, 8]           # IoU 0.5
    pred[c] = [0, 0, 8, 8]            # IoU 0.25
    fg, boxes, scores = _assign(anchors, pred, [gt], [1], topk=2)
    assert np.flatnonzero(fg).tolist() == sorted([a, b])
    np.testing.assert_allclose(boxes[[a, b]], [gt, gt])
    # the class target is the IoU of the anchor's prediction with its box, on its class only
    np.testing.assert_allclose(scores[a], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(scores[b], [0.0, 0.5], atol=1e-6)
    assert scores[fg == 0].max() == 0.0


def test_without_overlap_the_nearest_three_anchors_inside_become_positive():
    anchors = _grid()
    gt = [0, 0, 22, 20]               # centre (11, 10); centres at y = 20 are on the edge
    fg, boxes, scores = _assign(anchors, _far_boxes(len(anchors)), [gt], [0])
    # squared distances to (11, 10): (12, 12) 5, (12, 4) 37, (4, 12) 53, then 85
    expected = sorted(_index(anchors, x, y) for x, y in ((12, 12), (12, 4), (4, 12)))
    assert np.flatnonzero(fg).tolist() == expected
    np.testing.assert_allclose(boxes[expected], [gt] * 3)
    # predictions far off still learn their class, with the floor target 0.1
    np.testing.assert_allclose(scores[expected], [[0.1, 0.0]] * 3, atol=1e-6)


def test_padding_rows_and_boxes_without_anchor_centres_give_no_positives():
    anchors = _grid()
    pred = np.tile(np.array([[0, 0, 32, 32]], np.float32), (len(anchors), 1))
    gt = [[0, 0, 32, 32],             # padding (class -1) although it covers every anchor
          [100, 100, 120, 120],       # outside the image
          [5, 5, 7, 7],               # tiny, between the centres (4, 4) and (12, 12)
          [0, 0, 0, 0]]               # zero padding row
    fg, _, scores = _assign(anchors, pred, gt, [-1, 1, 0, -1])
    assert fg.sum() == 0 and scores.sum() == 0


def test_a_tiny_box_around_one_centre_gets_that_anchor():
    anchors = _grid()
    gt = [3, 3, 5, 5]
    fg, boxes, _ = _assign(anchors, _far_boxes(len(anchors)), [gt, [0, 0, 0, 0]], [1, -1])
    a = _index(anchors, 4, 4)
    assert np.flatnonzero(fg).tolist() == [a]
    np.testing.assert_allclose(boxes[a], gt)


def test_an_anchor_claimed_by_two_boxes_keeps_the_one_its_prediction_overlaps_most():
    anchors = _grid()
    left, right = [0, 0, 16, 16], [8, 0, 24, 16]    # both hold the centre (12, 4) and (12, 12)
    pred = _far_boxes(len(anchors))
    shared = _index(anchors, 12, 4)
    pred[shared] = right
    fg, boxes, scores = _assign(anchors, pred, [left, right], [0, 1], topk=4)
    assert fg[shared] == 1
    np.testing.assert_allclose(boxes[shared], right)
    np.testing.assert_allclose(scores[shared], [0.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("static", [False, True])
def test_static_phase_ranks_by_prior_boxes_not_predictions(static):
    anchors = _grid(64)
    gt = [8, 8, 48, 48]               # exactly the 5-stride prior square at (28, 28)
    pred = _far_boxes(len(anchors))
    predicted = _index(anchors, 12, 12)
    pred[predicted] = gt              # the prediction at (12, 12) is perfect
    fg, _, _ = _assign(anchors, pred, [gt], [0], topk=1, static=static)
    expected = _index(anchors, 28, 28) if static else predicted
    assert np.flatnonzero(fg).tolist() == [expected]


def test_batch_rows_are_independent():
    from edgecnn.lazy import tensorflow
    from edgecnn.train.assign import assign

    tf = tensorflow()
    anchors = _grid()
    n = len(anchors)
    pred = np.stack([_far_boxes(n), _far_boxes(n)])
    gt = np.array([[[0, 0, 16, 16]], [[16, 16, 32, 32]]], np.float32)
    t = assign(tf.constant(np.full((2, n, 1), 0.5, np.float32)), tf.constant(pred),
               tf.constant(anchors), tf.constant(gt), tf.constant([[0], [0]]), 1)
    fg = t.fg.numpy()
    first = {_index(anchors, x, y) for x, y in ((4, 4), (12, 4), (4, 12), (12, 12))}
    second = {_index(anchors, x, y) for x, y in ((20, 20), (28, 20), (20, 28), (28, 28))}
    # no overlap anywhere: the anchors nearest each centre, all four tied at the same distance
    assert set(np.flatnonzero(fg[0])) == first
    assert set(np.flatnonzero(fg[1])) == second


def test_max_distance_keeps_large_boxes_off_fine_levels():
    from edgecnn.lazy import tensorflow
    from edgecnn.train.assign import AssignConfig, assign

    tf = tensorflow()
    # a stride-8 anchor and a stride-32 anchor, both at the centre of a 160-pixel box
    anchors = np.array([[100.0, 100.0], [101.0, 101.0]], np.float32)
    strides = np.array([8.0, 32.0], np.float32)
    gt = np.array([[[20.0, 20.0, 180.0, 180.0]]], np.float32)
    pred = np.array([[[20.0, 20.0, 180.0, 180.0]] * 2], np.float32)
    scores = np.full((1, 2, 1), 0.5, np.float32)

    def fg(**cfg):
        t = assign(tf.constant(scores), tf.constant(pred), tf.constant(anchors),
                   tf.constant(gt), tf.constant([[0]], tf.int32), 1, AssignConfig(**cfg),
                   tf.constant(strides))
        return t.fg.numpy()[0].tolist()

    assert fg() == [1.0, 1.0]
    # 80 px to each side is 10 strides of 8: too far for a limit of 8; the coarsest level
    # (2.5 strides of 32) always may take it
    assert fg(max_distance=8.0) == [0.0, 1.0]
    assert fg(max_distance=12.0) == [1.0, 1.0]
