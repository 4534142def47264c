"""Knowledge distillation (``edgecnn train --teacher``): the soft-target losses, the teacher
checks (one-line errors before any training) and short real runs for both tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error


def test_classifier_loss_is_cross_entropy_plus_temperature_scaled_kl():
    from edgecnn.lazy import tensorflow
    from edgecnn.train.distill import DistillOptions, classifier_loss

    tf = tensorflow()
    onehot = np.eye(3, dtype=np.float32)[[0, 2]]
    student = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    ce = -np.log(student[[0, 1], [0, 2]])
    # a teacher that agrees with the student adds nothing; w=0 is plain cross-entropy
    same = np.log(student)
    for w in (0.0, 0.5):
        loss = classifier_loss(3, DistillOptions(weight=w, temperature=2.0))
        got = loss(tf.constant(np.concatenate([onehot, same], 1)), tf.constant(student))
        np.testing.assert_allclose(got.numpy(), (1 - w) * ce, rtol=1e-5)
    # a different teacher: the KL of the softened distributions, times T^2
    teacher = np.log(np.array([[0.2, 0.5, 0.3], [0.3, 0.3, 0.4]], np.float32))
    loss = classifier_loss(3, DistillOptions(weight=1.0, temperature=2.0))
    got = loss(tf.constant(np.concatenate([onehot, teacher], 1)), tf.constant(student))
    soft = lambda logp: np.exp(logp / 2) / np.exp(logp / 2).sum(1, keepdims=True)  # noqa: E731
    pt, ps = soft(teacher), soft(np.log(student))
    np.testing.assert_allclose(got.numpy(), 4.0 * (pt * np.log(pt / ps)).sum(1), rtol=1e-4)


def test_detector_soft_loss_vanishes_when_the_student_copies_the_teacher():
    from edgecnn.lazy import tensorflow
    from edgecnn.train.distill import detector_soft_loss

    tf = tensorflow()
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(-3, 2, (2, 20, 3)).astype(np.float32))
    ltrb = tf.constant(rng.uniform(0, 5, (2, 20, 4)).astype(np.float32))
    same = float(detector_soft_loss(logits, ltrb, logits, ltrb))
    off = float(detector_soft_loss(logits, ltrb + 1.0, logits + 2.0, ltrb))
    # BCE against its own probabilities is their entropy, but the focal modulator zeroes it
    assert same == pytest.approx(0.0, abs=1e-6) and off > 0.5


def _digits(out, **kw):
    from edgecnn.train.config import TrainConfig

    base = dict(task="classify", data="digits", arch="dsnet_test", out=str(out), epochs=2,
                batch=64, lr=0.01, max_train=320, verbose=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    from edgecnn.train.classify import train_classifier

    return train_classifier(_digits(tmp_path_factory.mktemp("teacher") / "t", width=2.0))


def test_classifier_learns_from_a_teacher(digits_teacher, tmp_path, run_cli):
    out = tmp_path / "student"
    result = run_cli("train", "--data", "digits", "--arch", "dsnet_test", "--epochs", "2",
                     "--batch", "64", "--lr", "0.01", "--max-train", "320",
                     "--teacher", digits_teacher, "--distill-weight", "0.7", "--out", out)
    assert result.exit_code == 0, result.err
    assert "teacher " in result.out and "weight 0.7, temperature 4" in result.out
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["teacher"] == str(digits_teacher)
    assert info["config"]["distill_weight"] == 0.7
    assert 0.0 <= info["metrics"]["val_accuracy"] <= 1.0
    with open(out / "history.csv") as fh:
        header = fh.readline().strip().split(",")
    assert "accuracy" in header and "val_accuracy" in header


def test_teacher_that_does_not_fit_is_a_one_line_error(digits_teacher, tmp_path, run_cli):
    # another input size
    result = run_cli("train", "--data", "digits", "--arch", "dsnet_test", "--imgsz", "12",
                     "--epochs", "1", "--teacher", digits_teacher, "--out", tmp_path / "a")
    assert_one_line_error(result, "takes input (8, 8, 1)", "--imgsz")
    assert not (tmp_path / "a").exists()
    # not a model at all
    bad = tmp_path / "x.keras"
    bad.write_bytes(b"not a zip")
    result = run_cli("train", "--data", "digits", "--arch", "dsnet_test", "--epochs", "1",
                     "--teacher", bad, "--out", tmp_path / "b")
    assert_one_line_error(result, "cannot load Keras model")


def test_check_teacher_refuses_other_classes_and_tasks(digits_teacher):
    from edgecnn.errors import UsageError
    from edgecnn.runtime.task import Task
    from edgecnn.train.distill import check_teacher, load_teacher

    teacher = load_teacher(str(digits_teacher))
    labels = [str(i) for i in range(10)]
    check_teacher(teacher, Task.CLASSIFY, labels, (8, 8, 1))     # fits
    with pytest.raises(UsageError, match="predicts 10 classes, the data has 3"):
        check_teacher(teacher, Task.CLASSIFY, labels[:3], (8, 8, 1))
    with pytest.raises(UsageError, match="other class names"):
        check_teacher(teacher, Task.CLASSIFY, labels[::-1], (8, 8, 1))
    with pytest.raises(UsageError, match="is not a detector"):
        check_teacher(teacher, Task.DETECT, labels, (8, 8, 1))


@pytest.mark.slow
def test_detector_learns_from_a_teacher(tmp_path, run_cli):
    from edgecnn.data.synth import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "ds", n_train=16, n_val=8, imgsz=64, seed=3)
    common = ["train", "--task", "detect", "--data", data, "--arch", "det_test", "--epochs", "1",
              "--batch", "8", "--quiet"]
    assert run_cli(*common, "--imgsz", "64", "--out", tmp_path / "t").exit_code == 0
    result = run_cli(*common, "--imgsz", "64", "--teacher", tmp_path / "t" / "model.keras",
                     "--out", tmp_path / "s")
    assert result.exit_code == 0, result.err
    info = json.loads((tmp_path / "s" / "run.json").read_text())
    assert np.isfinite(info["metrics"]["val_map50"])
    result = run_cli(*common, "--imgsz", "96", "--teacher", tmp_path / "t",
                     "--out", tmp_path / "u")
    assert_one_line_error(result, "takes input (64, 64, 3)")
