"""Task-aligned target assignment (TOOD / YOLOv8's TAL), batched in TensorFlow.

For every ground-truth box the anchors whose centre lies inside it are candidates. Each
candidate gets an alignment metric ``score**alpha * iou**beta`` (predicted probability of the
box's class times the IoU of the predicted box with it), and the ``topk`` best candidates become
positives. An anchor claimed by several boxes keeps the one its prediction overlaps most.
Classification targets are soft: the IoU of each positive's prediction with its box (at least
0.1). The assigner therefore teaches the score to predict localisation quality, which is what
COCO mAP@0.5:0.95 rewards.

Everything here is under ``stop_gradient``: it decides targets, it is not differentiated.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.lazy import tensorflow


@dataclass(frozen=True)
class AssignConfig:
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0
    eps: float = 1e-9
    prior_size: float = 5.0   # static-phase anchor box side, in strides (ATSS-style prior)
    # Scale-aware candidates (FCOS-like): an anchor may take a box only if every side is within
    # this many of its strides, except on the coarsest level (None: any distance).
    max_distance: float | None = None


@dataclass(frozen=True)
class Targets:
    """Per-anchor training targets for a batch.

    Attributes:
        boxes: ``(B, N, 4)`` xyxy target box of each anchor (meaningful where ``fg``).
        scores: ``(B, N, C)`` soft classification targets (0 for background).
        fg: ``(B, N)`` float 1 for positive anchors.
    """

    boxes: object
    scores: object
    fg: object


def pairwise_iou(gt, pred, eps: float = 1e-9):
    """IoU of ``gt (B, M, 4)`` with ``pred (B, N, 4)`` -> ``(B, M, N)``."""
    tf = tensorflow()
    g = gt[:, :, None, :]
    p = pred[:, None, :, :]
    iw = tf.maximum(tf.minimum(g[..., 2], p[..., 2]) - tf.maximum(g[..., 0], p[..., 0]), 0.0)
    ih = tf.maximum(tf.minimum(g[..., 3], p[..., 3]) - tf.maximum(g[..., 1], p[..., 1]), 0.0)
    inter = iw * ih
    ag = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    ap = tf.maximum(p[..., 2] - p[..., 0], 0.0) * tf.maximum(p[..., 3] - p[..., 1], 0.0)
    return inter / tf.maximum(ag + ap - inter, eps)


def _candidates(tf, anchors, gt_boxes, valid, cfg: AssignConfig, strides):
    """``(B, M, N)`` 1 where anchor n may take box m: its centre inside the box (and, with
    ``max_distance``, the box fitting the anchor's level)."""
    ax = anchors[None, None, :, 0]
    ay = anchors[None, None, :, 1]
    d = tf.stack([ax - gt_boxes[..., 0:1], ay - gt_boxes[..., 1:2],
                  gt_boxes[..., 2:3] - ax, gt_boxes[..., 3:4] - ay], axis=-1)
    inside = tf.cast(tf.reduce_min(d, axis=-1) > cfg.eps, tf.float32) * valid[..., None]
    if cfg.max_distance is not None and strides is not None:
        # The coarsest level takes whatever is left, so every box keeps candidates.
        coarsest = tf.equal(strides, tf.reduce_max(strides))[None, None, :]
        fits = tf.reduce_max(d, axis=-1) <= cfg.max_distance * strides[None, None, :]
        inside *= tf.cast(fits | coarsest, tf.float32)
    return inside


def assign(pred_scores, pred_boxes, anchors, gt_boxes, gt_classes, num_classes: int,
           cfg: AssignConfig = AssignConfig(), strides=None, static=None) -> Targets:
    """Targets for one batch.

    Args:
        pred_scores: ``(B, N, C)`` predicted probabilities.
        pred_boxes: ``(B, N, 4)`` predicted xyxy boxes in model-input pixels.
        anchors: ``(N, 2)`` anchor centres in model-input pixels.
        gt_boxes: ``(B, M, 4)`` xyxy ground truth (rows with class -1 are padding).
        gt_classes: ``(B, M)`` int class ids, -1 for padding.
        num_classes: C.
        strides: ``(N,)`` anchor strides; needed for the static phase and ``max_distance``.
        static: scalar bool tensor; when true, candidates are ranked by the IoU of a fixed
            ``prior_size * stride`` square at the anchor with the box (ATSS-like) instead of by
            the predictions. Early predictions are noise, and ranking by them makes the positive
            set jump from step to step (YOLOv6 warms up with a static assigner for this reason).
    """
    tf = tensorflow()
    pred_scores = tf.stop_gradient(pred_scores)
    pred_boxes = tf.stop_gradient(pred_boxes)
    valid = tf.cast(gt_classes >= 0, tf.float32)                      # (B, M)
    cls = tf.maximum(gt_classes, 0)

    ax = anchors[None, None, :, 0]
    ay = anchors[None, None, :, 1]
    inside = _candidates(tf, anchors, gt_boxes, valid, cfg, strides)

    iou = pairwise_iou(gt_boxes, pred_boxes) * inside                   # (B, M, N)
    # probability of each gt's class at every anchor: (B, M, N)
    score = tf.gather(tf.transpose(pred_scores, [0, 2, 1]), cls, axis=1, batch_dims=1)
    metric = tf.pow(score, cfg.alpha) * tf.pow(iou, cfg.beta) * inside
    if static is not None and strides is not None:
        half = 0.5 * cfg.prior_size * strides[:, None]
        priors = tf.concat([anchors - half, anchors + half], axis=-1)[None]   # (1, N, 4)
        prior_iou = pairwise_iou(gt_boxes, tf.broadcast_to(
            priors, [tf.shape(gt_boxes)[0], tf.shape(priors)[1], 4])) * inside
        metric = tf.where(static, prior_iou, metric)

    n = tf.shape(metric)[-1]
    k = tf.minimum(cfg.topk, n)
    kth = tf.math.top_k(metric, k=k).values[..., -1:]
    pos = tf.cast((metric >= kth) & (metric > cfg.eps), tf.float32) * inside
    # Early in training every metric is ~0; then fall back to the anchors nearest each centre
    # among those inside, so every box gets positives from the first step.
    gcx = (gt_boxes[..., 0:1] + gt_boxes[..., 2:3]) / 2
    gcy = (gt_boxes[..., 1:2] + gt_boxes[..., 3:4]) / 2
    dist = tf.square(ax - gcx) + tf.square(ay - gcy)
    near_score = tf.where(inside > 0, -dist, -1e12)
    near_kth = tf.math.top_k(near_score, k=tf.minimum(3, n)).values[..., -1:]
    near = tf.cast(near_score >= near_kth, tf.float32) * inside
    has_pos = tf.cast(tf.reduce_sum(pos, axis=-1, keepdims=True) > 0, tf.float32)
    pos = pos * has_pos + near * (1.0 - has_pos)

    # anchors claimed by several boxes keep the box they overlap most
    many = tf.reduce_sum(pos, axis=1, keepdims=True) > 1                # (B, 1, N)
    best = tf.one_hot(tf.argmax(iou, axis=1), tf.shape(iou)[1], axis=1)  # (B, M, N)
    pos = tf.where(many, best * inside, pos)

    fg = tf.reduce_max(pos, axis=1)                                     # (B, N)
    gt_idx = tf.argmax(pos, axis=1)                                     # (B, N)
    boxes = tf.gather(gt_boxes, gt_idx, axis=1, batch_dims=1)           # (B, N, 4)
    labels = tf.gather(cls, gt_idx, axis=1, batch_dims=1)               # (B, N)

    # Soft class target = IoU of the anchor's prediction with its box (varifocal / IoU-aware
    # classification). TAL's normalised metric (``metric / max_metric * max_iou``) makes every
    # positive but the best one nearly 0 with beta=6, which starves the classifier in the short
    # schedules we train; the IoU keeps the ranking by localisation quality and a strong signal.
    iou_fg = tf.reduce_max(iou * pos, axis=1)                            # (B, N)
    # fallback positives (prediction still far off) learn their class with a small target
    norm = tf.where(fg > 0, tf.maximum(iou_fg, 0.1), 0.0)
    scores = tf.one_hot(labels, num_classes) * (norm * fg)[..., None]
    return Targets(boxes=tf.stop_gradient(boxes), scores=tf.stop_gradient(scores),
                   fg=tf.stop_gradient(fg))
