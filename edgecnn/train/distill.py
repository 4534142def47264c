"""Knowledge distillation: a trained model (the teacher) adds soft targets to a student's
training, on the same augmented batch the student sees.

- Classifiers: the teacher's class probabilities at temperature ``T`` (Hinton et al. 2015);
  the loss is ``(1 - w) * cross-entropy(labels) + w * T^2 * KL(teacher_T || student_T)``. The
  teacher runs inside the input pipeline (``tf.data`` threads), so on a 2-core machine it
  overlaps the student's step instead of lengthening it.
- Detectors: the teacher's per-anchor class scores are soft targets of a quality-focal BCE
  (every anchor, like the assigner's targets), and its ltrb distances are L1 targets where it
  is confident (weighted by its score); both are added to the detection loss with weight ``w``.
  Student and teacher must share the anchor grid (input size and strides).

The teacher is loaded with Keras' ``safe_mode`` (no code from the file runs) and checked before
any training: a teacher for other classes, another task or another input is a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task


@dataclass(frozen=True)
class DistillOptions:
    """Attributes:
        weight: classify: the soft term's share ``w`` of the loss (0..1); detect: the weight of
            the soft score and box terms added to the detection loss.
        temperature: classify: softens both distributions (``T``).
    """

    weight: float = 0.5
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise UsageError(f"--distill-weight must be >= 0, got {self.weight}",
                             "use e.g. --distill-weight 0.5")
        if self.temperature <= 0:
            raise UsageError(f"--distill-temperature must be > 0, got {self.temperature}",
                             "use e.g. --distill-temperature 4")


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher and what its training recorded.

    Attributes:
        model: the Keras model (inference only).
        source: the path it came from (for messages and run.json).
        labels: its class names, when its run.json gives them.
        mean, std: its input normalization (run.json; edgecnn's default 0 / 255 otherwise).
        probabilities: its classifier output is already softmax (else logits).
    """

    model: Any  # keras.Model (Keras ships no type information)
    source: str
    labels: tuple[str, ...] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    probabilities: bool = True

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.model.inputs[0].shape[1:])


def load_teacher(path: str) -> Teacher:
    """Load a teacher from a run directory or a ``.keras`` file (``safe_mode``).

    Raises:
        UsageError: not found, not loadable.
    """
    from edgecnn.rundir import load_keras_model

    model, info = load_keras_model(path)
    model.trainable = False
    if info is None:
        return Teacher(model, str(path), None, (0.0,), (255.0,),
                       _ends_in_softmax(model))
    return Teacher(model, str(path), tuple(info.labels), tuple(info.mean), tuple(info.std),
                   info.output_activation == "softmax")


def _ends_in_softmax(model) -> bool:
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def check_teacher(teacher: Teacher, task: Task, labels, input_shape,
                  anchors: int | None = None) -> None:
    """Refuse a teacher that cannot teach this student.

    Args:
        labels: the student's class names, in output order.
        input_shape: the student's ``(H, W, C)``.
        anchors: detect: the student's anchor count (the teacher's must match it).
    """
    where = f"teacher {teacher.source}"
    outputs = teacher.model.outputs
    if task is Task.DETECT and len(outputs) != 2:
        raise UsageError(f"{where} is not a detector (it has {len(outputs)} output(s))",
                         "pass a detector run trained on the same classes")
    if task is Task.CLASSIFY and len(outputs) != 1:
        raise UsageError(f"{where} is not a classifier (it has {len(outputs)} outputs)",
                         "pass a classifier run trained on the same classes")
    classes = int(outputs[-1].shape[-1])
    if classes != len(labels):
        raise UsageError(f"{where} predicts {classes} classes, the data has {len(labels)}",
                         "the teacher must be trained on the same classes")
    if teacher.labels is not None and list(teacher.labels) != [str(x) for x in labels]:
        raise UsageError(f"{where} has other class names or another order "
                         f"({', '.join(teacher.labels[:4])}, ...)",
                         "train the teacher on the same dataset")
    if teacher.input_shape != tuple(int(d) for d in input_shape):
        raise UsageError(f"{where} takes input {teacher.input_shape}, the student "
                         f"{tuple(input_shape)}",
                         "train the teacher at the same --imgsz (and colour)")
    if anchors is not None and int(outputs[0].shape[1]) != anchors:
        raise UsageError(f"{where} has {int(outputs[0].shape[1])} anchors, the student "
                         f"{anchors}", "use a teacher with the same strides (8/16/32)")


def teacher_input(x, student_mean, student_std, teacher: Teacher):
    """The student's normalized batch re-normalized the way the teacher was trained."""
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    if (tuple(student_mean), tuple(student_std)) == (teacher.mean, teacher.std):
        return x
    raw = x * tf.constant(student_std, tf.float32) + tf.constant(student_mean, tf.float32)
    return (raw - tf.constant(teacher.mean, tf.float32)) / tf.constant(teacher.std, tf.float32)


# ------------------------------------------------------------------------------- classifiers
def with_teacher_targets(dataset, teacher: Teacher, student_mean, student_std):
    """``(x, onehot)`` batches -> ``(x, [onehot | teacher log-probabilities])``."""
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    model = teacher.model

    @tf.autograph.experimental.do_not_convert
    def add(x, y):
        out = model(teacher_input(x, student_mean, student_std, teacher), training=False)
        logp = (tf.math.log(tf.clip_by_value(out, 1e-7, 1.0)) if teacher.probabilities
                else tf.nn.log_softmax(out))
        return x, tf.concat([y, tf.stop_gradient(logp)], axis=-1)

    return (dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def classifier_loss(num_classes: int, options: DistillOptions, label_smoothing: float = 0.0,
                    from_logits: bool = False):
    """Keras loss on packed targets ``[onehot | teacher log-probs]`` and student outputs."""
    from edgecnn.lazy import keras, tensorflow

    tf, k = tensorflow(), keras()
    hard = k.losses.CategoricalCrossentropy(from_logits=from_logits,
                                            label_smoothing=label_smoothing,
                                            reduction=None)
    t, w = float(options.temperature), float(options.weight)

    def distill_loss(y_true, y_pred):
        onehot, teacher_logp = y_true[:, :num_classes], y_true[:, num_classes:]
        student = y_pred if from_logits else tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0))
        soft_t = tf.nn.softmax(teacher_logp / t)
        log_soft_s = tf.nn.log_softmax(student / t)
        kl = tf.reduce_sum(soft_t * (tf.math.log(tf.maximum(soft_t, 1e-12)) - log_soft_s), -1)
        return (1.0 - w) * hard(onehot, y_pred) + w * t * t * kl

    return distill_loss


def packed_accuracy(num_classes: int):
    """Top-1 accuracy against the label part of packed targets, logged as ``accuracy``."""
    from edgecnn.lazy import keras

    k = keras()

    def accuracy(y_true, y_pred):
        return k.metrics.categorical_accuracy(y_true[:, :num_classes], y_pred)

    return accuracy


# --------------------------------------------------------------------------------- detectors
# Anchors where the teacher's best class score is below this do not teach boxes: its boxes
# there are unconstrained by its own training (background anchors get no box loss).
BOX_SCORE_FLOOR = 0.1


def detector_soft_loss(logits, ltrb, teacher_logits, teacher_ltrb):
    """Soft score and box terms of detector distillation, summed (a scalar).

    Args:
        logits, ltrb: the student's ``(B, N, C)`` pre-sigmoid scores and ``(B, N, 4)``
            distances in stride units.
        teacher_logits, teacher_ltrb: the teacher's, on the same batch.
    """
    from edgecnn.lazy import tensorflow

    tf = tensorflow()
    target = tf.stop_gradient(tf.sigmoid(teacher_logits))
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
    # The quality-focal modulation of the detection loss: the ~10^4 anchors where both agree
    # on background would otherwise drown the few the teacher finds.
    modulator = tf.square(tf.stop_gradient(tf.sigmoid(logits)) - target)
    score = tf.reduce_sum(bce * modulator) / tf.maximum(tf.reduce_sum(target), 1.0)
    confident = tf.reduce_max(target, axis=-1)
    weight = tf.where(confident >= BOX_SCORE_FLOOR, confident, 0.0)
    l1 = tf.reduce_sum(tf.abs(ltrb - tf.stop_gradient(teacher_ltrb)), axis=-1)
    box = tf.reduce_sum(l1 * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
    return score + box
