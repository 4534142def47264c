"""Detection losses: quality focal loss on soft (IoU) targets, CIoU and L1 on boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecnn.lazy import tensorflow


@dataclass(frozen=True)
class LossWeights:
    box: float = 7.5     # 1 - CIoU
    cls: float = 1.0     # quality focal loss, summed and divided by the sum of the soft targets
    l1: float = 0.5      # L1 on ltrb distances in stride units (fine localisation)
    dfl: float = 1.5     # distribution focal loss, replacing L1 for integral box heads


def ciou(pred, target, eps: float = 1e-7):
    """Complete IoU of matching xyxy boxes ``(..., 4)`` (Zheng et al. 2020)."""
    tf = tensorflow()
    px1, py1, px2, py2 = tf.unstack(pred, axis=-1)
    tx1, ty1, tx2, ty2 = tf.unstack(target, axis=-1)
    # max() rather than "+ eps": the graph optimizer may reassociate (y2 - y1) + eps into
    # y2 + (eps - y1), which loses eps for a zero-height box and makes atan(0/0) NaN.
    pw, ph = tf.maximum(px2 - px1, 0.0), tf.maximum(py2 - py1, eps)
    tw, th = tf.maximum(tx2 - tx1, 0.0), tf.maximum(ty2 - ty1, eps)
    iw = tf.maximum(tf.minimum(px2, tx2) - tf.maximum(px1, tx1), 0.0)
    ih = tf.maximum(tf.minimum(py2, ty2) - tf.maximum(py1, ty1), 0.0)
    inter = iw * ih
    union = tf.maximum(pw * ph + tw * th - inter, eps)
    iou = inter / union
    cw = tf.maximum(px2, tx2) - tf.minimum(px1, tx1)
    ch = tf.maximum(py2, ty2) - tf.minimum(py1, ty1)
    c2 = tf.maximum(cw * cw + ch * ch, eps)
    rho2 = ((px1 + px2 - tx1 - tx2) ** 2 + (py1 + py2 - ty1 - ty2) ** 2) / 4.0
    v = (4.0 / math.pi ** 2) * tf.square(tf.atan(tw / th) - tf.atan(pw / ph))
    alpha = tf.stop_gradient(v / (v - iou + (1.0 + eps)))
    return iou - (rho2 / c2 + v * alpha)


def detection_loss(logits, pred_ltrb, pred_boxes, targets, anchors, strides,
                   weights: LossWeights = LossWeights(), bin_logits=None, bins=None):
    """Scalar loss and its parts ``(total, box, cls, l1)`` for one batch.

    Args:
        logits: ``(B, N, C)`` class logits (pre-sigmoid; BCE from logits is stable).
        pred_ltrb: ``(B, N, 4)`` predicted distances in stride units.
        pred_boxes: ``(B, N, 4)`` the same decoded to xyxy pixels.
        targets: :class:`edgecnn.train.assign.Targets`.
        anchors: ``(N, 2)`` centres; strides: ``(N,)``.
        bin_logits, bins: an integral box head's ``(B, N, 4 * len(bins))`` logits and its bin
            values: distribution focal loss then takes L1's place in the total (L1 is still
            returned, as a measure).
    """
    tf = tensorflow()
    norm = tf.maximum(tf.reduce_sum(targets.scores), 1.0)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets.scores, logits=logits)
    # Quality focal loss (GFL, Li et al. 2020): BCE scaled by |target - p|^2, so the ~10^5
    # easy background anchors of a batch stop drowning the few positives early in training.
    modulator = tf.square(tf.stop_gradient(tf.sigmoid(logits)) - targets.scores)
    cls_loss = tf.reduce_sum(bce * modulator) / norm

    # Every positive's box counts fully: weighting by the (IoU) class target would give the
    # worst-localised anchors, the ones that most need the gradient, the least of it.
    weight = targets.fg                                                # (B, N)
    box_norm = tf.maximum(tf.reduce_sum(weight), 1.0)
    # background anchors get a dummy pair so nothing undefined is ever differentiated
    fg = targets.fg[..., None] > 0
    dummy = tf.constant([0.0, 0.0, 1.0, 1.0])
    iou_term = ciou(tf.where(fg, pred_boxes, dummy), tf.where(fg, targets.boxes, dummy))
    box_loss = tf.reduce_sum((1.0 - iou_term) * weight) / box_norm
    s = strides[None, :, None]
    a = anchors[None]
    t_ltrb = tf.concat([a - targets.boxes[..., :2], targets.boxes[..., 2:] - a], axis=-1) / s
    l1 = tf.reduce_sum(tf.abs(pred_ltrb - tf.maximum(t_ltrb, 0.0)), axis=-1)
    l1_loss = tf.reduce_sum(l1 * weight) / box_norm
    if bin_logits is None:
        total = weights.box * box_loss + weights.cls * cls_loss + weights.l1 * l1_loss
    else:
        dfl = distribution_focal_loss(bin_logits, t_ltrb, bins)
        total = (weights.box * box_loss + weights.cls * cls_loss
                 + weights.dfl * tf.reduce_sum(dfl * weight) / box_norm)
    return total, box_loss, cls_loss, l1_loss


def distribution_focal_loss(bin_logits, target_ltrb, bins):
    """Per-anchor DFL (Li et al. 2020, GFL) summed over the four sides: the cross-entropy of
    each side's bin distribution with the two bins around the target distance, weighted by
    how close the target is to each (so its expectation is pulled onto the target).

    Args:
        bin_logits: ``(B, N, 4 * K)``; target_ltrb: ``(B, N, 4)`` in stride units;
        bins: the K increasing bin values (targets beyond them are clipped).
    """
    tf = tensorflow()
    k = len(bins)
    values = tf.constant(bins, tf.float32)
    logp = tf.nn.log_softmax(tf.reshape(bin_logits, tf.concat(
        [tf.shape(bin_logits)[:2], [4, k]], 0)), axis=-1)
    t = tf.clip_by_value(target_ltrb, 0.0, bins[-1] - 1e-3)
    right = tf.minimum(tf.searchsorted(values, tf.reshape(t, [-1]), side="right"), k - 1)
    right = tf.reshape(right, tf.shape(t))
    left = right - 1
    v_left, v_right = tf.gather(values, left), tf.gather(values, right)
    w_left = (v_right - t) / (v_right - v_left)
    ce = -(w_left * tf.gather(logp, left, batch_dims=3)
           + (1.0 - w_left) * tf.gather(logp, right, batch_dims=3))
    return tf.reduce_sum(ce, axis=-1)
