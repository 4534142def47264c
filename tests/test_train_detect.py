"""``edgecnn train --task detect`` end to end on a tiny synthetic set written by the test.

One tiny training run (det_test, 64x64, 3 epochs) is shared by the module; it takes well under
a minute on an idle 2-core machine, so the module is marked slow.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    from edgecnn.data.synth import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", n_train=16, n_val=8,
                                  imgsz=64, seed=3)


@pytest.fixture(scope="module")
def tiny_run(tiny_yaml, tmp_path_factory):
    from edgecnn.cli import main

    out = tmp_path_factory.mktemp("runs") / "det"
    code = main(["train", "--task", "detect", "--data", str(tiny_yaml), "--arch", "det_test",
                 "--imgsz", "64", "--epochs", "3", "--batch", "8", "--optimizer", "adamw",
                 "--threads", "2", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_run_dir_is_complete(tiny_run):
    for name in ("model.keras", "run.json", "labels.txt", "history.csv"):
        assert (tiny_run / name).is_file(), name
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["task"] == "detect" and info["resize"] == "letterbox"
    assert info["imgsz"] == [64, 64] and info["arch"] == "det_test"
    assert info["decoder"]["type"] == "anchor_free_ltrb"
    assert info["decoder"]["strides"] == [8, 16, 32]
    assert (info["decoder"]["box_output"], info["decoder"]["score_output"]) == (0, 1)
    assert info["labels"] == ["circle", "square", "triangle", "star"]
    assert (tiny_run / "labels.txt").read_text().split() == info["labels"]
    metrics = info["metrics"]
    assert 0.0 <= metrics["val_map50"] <= 1.0 and metrics["best_epoch"] >= 1
    assert metrics["samples_per_second"] > 0 and metrics["cpu_cores"] > 0
    assert 0.0 <= metrics["input_wait_fraction"] <= 1.0
    assert info["config"]["deterministic"] is False and info["config"]["threads"] == 2


def test_loss_decreases(tiny_run):
    with open(tiny_run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    losses = [float(r["loss"]) for r in rows]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def test_saved_model_loads_safely_and_keeps_the_contract(tiny_run):
    from edgecnn.rundir import load_keras_model

    model, info = load_keras_model(tiny_run)
    boxes, scores = model(np.zeros((1, 64, 64, 3), "float32"), training=False)
    assert tuple(boxes.shape) == (1, 84, 4) and tuple(scores.shape) == (1, 84, 4)
    assert info.task == "detect"


def test_eval_of_the_run(tiny_run, run_cli):
    result = run_cli("eval", str(tiny_run), "--json")
    assert result.exit_code == 0, result.err
    doc = json.loads(result.out)
    assert set(doc) >= {"map50", "map", "per_class"} and doc["images"] == 8


def test_bad_detect_options_are_one_line_errors(tiny_yaml, tmp_path, run_cli):
    res = run_cli("train", "--task", "detect", "--data", str(tiny_yaml), "--arch", "dsnet_s",
                  "--out", str(tmp_path / "x"))
    assert_one_line_error(res, "dsnet_s")
    res = run_cli("train", "--task", "detect", "--data", str(tiny_yaml), "--arch", "det_test",
                  "--imgsz", "70", "--out", str(tmp_path / "y"))
    assert_one_line_error(res, "imgsz")
    res = run_cli("train", "--task", "detect", "--data", str(tmp_path / "none.yaml"),
                  "--arch", "det_test", "--out", str(tmp_path / "z"))
    assert res.exit_code == 2 and "Traceback" not in res.err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_box_quality_knobs_train_convert_and_evaluate(tiny_yaml, tmp_path, run_cli):
    """--mosaic, --mixup and --integral-boxes reach the run: the integral head trains, its int8
    file decodes with the same decoder, and run.json records the knobs."""
    import json

    from edgecnn.lazy import keras

    out = tmp_path / "knobs"
    res = run_cli("train", "--task", "detect", "--data", str(tiny_yaml), "--arch", "det_test",
                  "--imgsz", "64", "--epochs", "2", "--batch", "8", "--mosaic", "0.5",
                  "--mixup", "0.5", "--integral-boxes", "--out", str(out), "--quiet")
    assert res.exit_code == 0, res.err
    config = json.loads((out / "run.json").read_text())["config"]
    assert (config["mosaic"], config["mixup"], config["integral_boxes"]) == (0.5, 0.5, True)
    model = keras().saving.load_model(out / "model.keras", safe_mode=True, compile=False)
    assert model.get_layer("boxes_softmax") is not None
    res = run_cli("convert", str(out), "--quant", "int8", "--calib-size", "8", "--held-out", "0",
                  "-o", str(tmp_path / "knobs.tflite"))
    assert res.exit_code == 0, res.err
    res = run_cli("eval", str(tmp_path / "knobs.tflite"), "--data", str(tiny_yaml), "--json")
    assert res.exit_code == 0, res.err
    assert 0.0 <= json.loads(res.out)["map"] <= 1.0


def test_box_head_is_the_flag_else_the_weights_run_else_the_architecture(tiny_run, tmp_path):
    """Without --integral-boxes / --dense-boxes a run gets the head of the --weights run it
    starts from (no other fits its weights), else its architecture's default: integral on
    EfficientNet-Lite0, dense on edgecnn's own families."""
    import shutil

    from edgecnn.rundir import RunInfo
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import box_head
    from edgecnn.train.initial_weights import parse_weights

    def head(arch, weights=None, flag=None):
        config = TrainConfig(task="detect", data="d", arch=arch, out="o", weights=weights,
                             integral_boxes=flag)
        return box_head(config, parse_weights(weights))

    assert (head("det_lite0"), head("det_lite0_slim"), head("det_s"), head("det_mnv2")) == (
        True, True, False, False)
    assert (head("det_lite0", flag=False), head("det_s", flag=True)) == (False, True)
    assert RunInfo.load(tiny_run).config["integral_boxes"] is False   # resolved, recorded
    assert head("det_lite0", weights=str(tiny_run)) is False       # a dense det_test run
    integral_run = tmp_path / "integral_run"
    shutil.copytree(tiny_run, integral_run)
    info = RunInfo.load(integral_run)
    info.config["integral_boxes"] = True
    info.save(integral_run)
    assert head("det_test", weights=str(integral_run)) is True
    assert head("det_test", weights=str(integral_run), flag=False) is False


def test_the_resolved_box_head_reaches_the_builder_either_way():
    """--dense-boxes must reach a builder whose own default is the integral head."""
    from edgecnn.models import get_entry
    from edgecnn.train.common import arch_kwargs
    from edgecnn.train.config import TrainConfig

    def kwargs(arch, task, flag):
        config = TrainConfig(task=task, data="d", arch=arch, out="o", integral_boxes=flag)
        return arch_kwargs(get_entry(arch, task=task).builder, config)

    assert kwargs("det_lite0", "detect", False) == {"integral_boxes": False}
    assert kwargs("det_s", "detect", True) == {"integral_boxes": True}
    assert kwargs("det_s", "detect", None) == {}
    assert kwargs("dsnet_s", "classify", None) == {}


@pytest.mark.parametrize("flag", ["--integral-boxes", "--dense-boxes"])
def test_integral_boxes_for_a_classifier_is_a_usage_error(tmp_path, run_cli, flag):
    res = run_cli("train", "--task", "classify", "--data", "digits", "--arch", "dsnet_test",
                  flag, "--out", str(tmp_path / "c"))
    assert_one_line_error(res, "--integral-boxes/--dense-boxes", "detect")
    assert not (tmp_path / "c").exists()
