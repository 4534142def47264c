"""The detector's training step: one function that ``train``, prune, ``qat`` and the XLA
benchmark all run.

A step decodes the predicted ltrb distances to boxes, assigns targets (static prior boxes during
the warm-up, task-aligned after it; :mod:`edgecnn.train.assign`), computes the detection loss
(:mod:`edgecnn.train.losses`), clips the gradient's global norm, applies the optimizer and
updates the weight average.
"""

from __future__ import annotations

from typing import Any
from dataclasses import dataclass

from edgecnn.errors import UsageError
from edgecnn.lazy import keras, tensorflow
from edgecnn.models.detect import BOX_BINS, BOX_BINS_LAYER

BOXES_LAYER = "boxes"               # ReLU'd ltrb distances in stride units: output 0
LOGITS_LAYER = "scores_logits"      # pre-sigmoid class scores (BCE from logits is stable)
CLIP_NORM = 10.0


def detector_heads(model, replay=None):
    """A Keras model from images to ``(ltrb, logits)``, plus the bin logits of an integral
    box head (:func:`edgecnn.models.detect.integral_box_output`): what the step trains through.

    Args:
        model: a detector from the registry (its layers ``boxes`` and ``scores_logits``).
        replay: a wrapper that replays ``model``'s layers on an input of its own and so
            shares their weights: an object with ``model`` (the wrapper's Keras model) and
            ``tensor(layer_name)`` (its output for that layer), such as the
            ``Simulation`` of :mod:`edgecnn.qat.sim`. The heads then train through it.

    Raises:
        UsageError: the model has no ``boxes`` or pre-sigmoid score layer.
    """
    names = {layer.name for layer in model.layers}
    for name in (BOXES_LAYER, LOGITS_LAYER):
        if name not in names:
            raise UsageError(f"model {model.name} has no {name!r} layer",
                             "detector builders must expose ltrb boxes and pre-sigmoid scores "
                             "for training")
    if replay is None:
        inputs, tensor_of = model.inputs, (lambda name: model.get_layer(name).output)
    else:
        inputs, tensor_of = replay.model.inputs, replay.tensor
    outputs = [tensor_of(BOXES_LAYER), tensor_of(LOGITS_LAYER)]
    if BOX_BINS_LAYER in names:
        outputs.append(tensor_of(BOX_BINS_LAYER))
    return keras().Model(inputs, outputs)


@dataclass(frozen=True)
class AnchorGrid:
    """Anchor centres ``(N, 2)`` and their strides ``(N,)`` as constants, in FORMAT.md order."""

    centers: Any   # tf.Tensor; TensorFlow has no types mypy can read
    strides: Any

    @classmethod
    def of(cls, imgsz: int, strides: tuple[int, ...]) -> "AnchorGrid":
        from edgecnn.runtime.decoders import anchor_free_ltrb as afl

        tf = tensorflow()
        centers, stride_per_anchor = afl.anchor_points((imgsz, imgsz), tuple(strides))
        return cls(tf.constant(centers), tf.constant(stride_per_anchor))

    @property
    def count(self) -> int:
        return int(self.centers.shape[0])


def make_train_step(heads, optimizer, grid: AnchorGrid, num_classes: int, *,
                    static_steps: float = 0.0, average=None, clip_norm: float = CLIP_NORM,
                    fused_bn: bool = True, teacher=None, distill_weight: float = 0.0,
                    assign_config=None):
    """The step as a plain Python function ``(images 0..255, gt_boxes, gt_classes) -> (loss,
    box_loss, cls_loss, l1_loss)``; wrap it in ``tf.function`` (the engine does, without
    autograph: it is plain graph code with no Python control flow on tensors).

    Args:
        heads: model from images in [0, 1] to ``(ltrb, logits)`` (:func:`detector_heads`).
        optimizer: a built Keras optimizer for ``heads.trainable_variables``.
        static_steps: steps of static (prior-box) assignment before task-aligned assignment
            takes over; 0 leaves the static branch out of the graph.
        average: a :class:`~edgecnn.train.engine.ema.WeightAverage` updated after each step.
        fused_bn: trace training-mode batch norm as TensorFlow's fused kernel
            (:mod:`~edgecnn.train.engine.fused_bn`); False keeps Keras' unfused ops.
        teacher: a :class:`edgecnn.train.distill.Teacher` detector whose scores and boxes on
            the batch are soft targets (:func:`edgecnn.train.distill.detector_soft_loss`),
            weighted by ``distill_weight``.
        assign_config: :class:`edgecnn.train.assign.AssignConfig` (None: its defaults).
    """
    tf = tensorflow()
    from edgecnn.train.assign import AssignConfig, assign
    from edgecnn.train.engine.fused_bn import fused_batch_norm
    from edgecnn.train.losses import LossWeights, detection_loss

    assign_cfg, weights = assign_config or AssignConfig(), LossWeights()
    anchors, strides = grid.centers, grid.strides
    variables = heads.trainable_variables
    step_var = tf.Variable(0.0, trainable=False, dtype=tf.float32)
    teach = _teacher_forward(teacher)

    def train_step(images, gt_boxes, gt_classes):
        with tf.GradientTape() as tape:
            with fused_batch_norm(fused_bn):
                ltrb, logits, *bin_logits = heads(images / 255.0, training=True)
            d = ltrb * strides[None, :, None]
            boxes = tf.concat([anchors[None] - d[..., :2], anchors[None] + d[..., 2:]], -1)
            static = step_var < static_steps if static_steps > 0 else None
            targets = assign(tf.sigmoid(logits), boxes, anchors, gt_boxes, gt_classes,
                             num_classes, assign_cfg,
                             strides if static is not None or assign_cfg.max_distance else None,
                             static)
            integral = ({"bin_logits": bin_logits[0], "bins": BOX_BINS} if bin_logits
                        else {})
            loss, lbox, lcls, l1 = detection_loss(logits, ltrb, boxes, targets, anchors,
                                                  strides, weights, **integral)
            if teach is not None:
                from edgecnn.train.distill import detector_soft_loss

                t_ltrb, t_logits = teach(images)
                loss += distill_weight * detector_soft_loss(logits, ltrb, t_logits, t_ltrb)
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, clip_norm)
        optimizer.apply_gradients(zip(grads, variables))
        step_var.assign_add(1.0)
        if average is not None:
            average.update(step_var)
        return loss, lbox, lcls, l1

    return train_step


def _teacher_forward(teacher):
    """images 0..255 -> the teacher's ``(ltrb, logits)``, or None without a teacher."""
    if teacher is None:
        return None
    tf = tensorflow()
    heads = detector_heads(teacher.model)
    mean = tf.constant(teacher.mean, tf.float32)
    std = tf.constant(teacher.std, tf.float32)

    def forward(images):
        ltrb, logits, *_ = heads((images - mean) / std, training=False)
        return tf.stop_gradient(ltrb), tf.stop_gradient(logits)

    return forward
