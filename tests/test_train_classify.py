"""``edgecnn train --task classify``: the run directory, reproducibility, tf.distribute."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import assert_one_line_error

RUN_FILES = {"model.keras", "run.json", "labels.txt", "history.csv", "curves.png",
             ".edgecnn-output"}


def _tiny_config(out, seed=0, **kw):
    from edgecnn.train.config import TrainConfig

    base = dict(task="classify", data="digits", arch="dsnet_test", out=str(out), epochs=2,
                batch=64, lr=0.01, seed=seed, max_train=320, verbose=0)
    base.update(kw)
    return TrainConfig(**base)


def test_cli_training_writes_the_whole_run_dir(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--task", "classify", "--data", "digits", "--arch", "dsnet_test",
                     "--epochs", "3", "--batch", "32", "--lr", "0.01", "--max-train", "400",
                     "--imgsz", "12", "--out", out)
    assert result.exit_code == 0, result.err
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert "epoch   1/3" in result.out and "epoch   3/3" in result.out
    assert "val accuracy" in result.out
    info = json.loads((out / "run.json").read_text())
    assert info["task"] == "classify" and info["arch"] == "dsnet_test"
    assert info["labels"] == [str(i) for i in range(10)]
    assert info["imgsz"] == [12, 12] and info["channels"] == 1 and info["color"] == "GRAY"
    assert info["mean"] == [0.0] and info["std"] == [255.0] and info["data"] == "digits"
    metrics = info["metrics"]
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["epochs_run"] == 3
    # throughput: 3 epochs of 12 batches of 32, and the cores the process used meanwhile
    assert metrics["samples_per_second"] > 0 and 0 < metrics["cpu_cores"] <= os.cpu_count() + 0.5
    assert "samples/s" in result.out and " cores)" in result.out
    assert info["config"]["deterministic"] is False and info["config"]["threads"] is None
    assert (out / "labels.txt").read_text().split() == info["labels"]
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    # the kept checkpoint is the best epoch, and its accuracy is what run.json says
    best_hist = max(float(r["val_accuracy"]) for r in rows)
    assert metrics["val_accuracy"] == pytest.approx(best_hist, abs=2e-3)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from edgecnn.rundir import load_keras_model

    model, loaded = load_keras_model(out)
    assert model.input_shape == (None, 12, 12, 1) and loaded.arch == "dsnet_test"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp leftovers


def test_fixed_seed_reproduces_weights_and_metrics(tmp_path):
    from edgecnn.rundir import RunInfo, load_keras_model
    from edgecnn.train.classify import train_classifier

    runs = [train_classifier(_tiny_config(tmp_path / name, seed=seed, deterministic=True))
            for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    weights = [load_keras_model(r)[0].get_weights() for r in runs]
    assert all(np.array_equal(x, y) for x, y in zip(weights[0], weights[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(weights[0], weights[2]))
    hist = [(r / "history.csv").read_text() for r in runs]
    assert hist[0] == hist[1]
    m = [RunInfo.load(r).metrics for r in runs]
    assert m[0]["val_accuracy"] == m[1]["val_accuracy"]


def test_keep_last_saves_the_last_epoch(tmp_path):
    from edgecnn.rundir import RunInfo
    from edgecnn.train.classify import train_classifier

    run = train_classifier(_tiny_config(tmp_path / "last", keep="last", epochs=3))
    info = RunInfo.load(run)
    assert info.metrics["kept_epoch"] == 3 and info.config["keep"] == "last"
    with open(run / "history.csv") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert info.metrics["val_accuracy"] == pytest.approx(float(last["val_accuracy"]), abs=2e-3)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from edgecnn.train.classify import train_classifier
        from edgecnn.train.config import TrainConfig
        train_classifier(TrainConfig(task="classify", data="digits", arch="dsnet_test",
                                     out={str(tmp_path / 'run')!r}, epochs=2, batch=64, lr=0.01,
                                     max_train=256, distribute="mirrored"))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 replica(s)" in proc.stdout, proc.stdout
    assert "epoch   2/2" in proc.stdout
    assert RUN_FILES <= {p.name for p in (tmp_path / "run").iterdir()}


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "epochs"),
    (["--batch", "0"], "batch"),
    (["--lr", "-1"], "learning rate"),
    (["--val-split", "0"], "val split"),
])
def test_bad_numbers_are_one_line_errors(run_cli, tmp_path, args, needle):
    result = run_cli("train", "--data", "digits", "--arch", "dsnet_test",
                     "--out", tmp_path / "r", *args)
    assert_one_line_error(result, needle)
    assert not (tmp_path / "r").exists()


def test_model_that_cannot_take_the_data(run_cli, tmp_path):
    # digits are 8x8; the seed CNN needs 10x10 or more
    result = run_cli("train", "--data", "digits", "--arch", "seed", "--out", tmp_path / "r")
    assert_one_line_error(result, "10x10", "--imgsz")
    assert not (tmp_path / "r").exists()


def test_out_is_a_file(run_cli, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = run_cli("train", "--data", "digits", "--arch", "dsnet_test", "--epochs", "1",
                     "--max-train", "64", "--out", target)
    assert_one_line_error(result, "not a directory")
    assert target.read_text() == "keep me"
