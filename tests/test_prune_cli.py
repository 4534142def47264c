"""``edgecnn prune`` end to end on a small digits model: outputs, report, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import assert_one_line_error


def _write_run(folder, build):
    """A run directory as ``edgecnn train`` writes it, for a model ``build()`` returns."""
    import keras

    from edgecnn.rundir import RunInfo

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = build()
    model.save(folder / "model.keras")
    RunInfo(task="classify", arch="test", labels=[str(i) for i in range(10)], imgsz=(8, 8),
            channels=1, color="GRAY", data="digits").save(folder)
    return folder


def _small_cnn():
    import keras
    from keras import layers as L

    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.Conv2D(16, 1, name="pw")(y)
    x = L.Add(name="add")([x, y])
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(24, activation="relu", name="fc")(x)
    out = L.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="small")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _write_run(tmp_path_factory.mktemp("prune") / "dense", _small_cnn)


def _no_output(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_help(run_cli):
    result = run_cli("prune", "--help")
    assert result.exit_code == 0 and "--target-macs" in result.out


def test_magnitude_writes_a_run_directory(run_cli, run_dir, tmp_path):
    out = tmp_path / "mag"
    result = run_cli("prune", run_dir, "--method", "magnitude", "--sparsity", "0.7",
                     "--epochs", "1", "--max-train", "256", "--batch", "32", "--json",
                     "--out", out)
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert sorted(p.name for p in out.iterdir()) == [".edgecnn-output", "history.csv", "labels.txt",
                                                     "model.keras", "run.json"]
    from edgecnn.prune.magnitude import kernel_sparsity
    from edgecnn.rundir import RunInfo, load_keras_model

    model, info = load_keras_model(out)          # safe_mode load of the stripped model
    assert info.reports["pruning"]["method"] == "magnitude"
    assert info.labels == [str(i) for i in range(10)]
    zeros = kernel_sparsity(model)
    for name in ("dw", "pw", "c2", "fc"):
        z, n = zeros[name]
        assert z / n == pytest.approx(0.7, abs=0.02), name
    assert zeros["stem"][0] == 0 and zeros["classifier"][0] == 0
    rows = {r["layer"]: r for r in report["layers"]}
    assert rows["stem"]["target"] is None and rows["fc"]["sparsity"] == pytest.approx(0.7, 0.02)
    assert set(report["metrics_after"]) == {"accuracy"}
    assert RunInfo.load(out).metrics["val_accuracy"] == \
        report["metrics_after"]["accuracy"]
    assert (out / "history.csv").read_text().startswith("epoch,")


def test_magnitude_in_blocks(run_cli, run_dir, tmp_path):
    out = tmp_path / "mag_block"
    result = run_cli("prune", run_dir, "--method", "magnitude", "--sparsity", "0.5",
                     "--block", "1x4", "--epochs", "0", "--out", out)
    assert result.exit_code == 0, result.err
    assert "in 1x4 blocks" in result.out
    from edgecnn.rundir import load_keras_model

    model, info = load_keras_model(out)
    assert info.reports["pruning"]["block"] == [1, 4]
    kernel = model.get_layer("c2").get_weights()[0]            # (3, 3, 16, 32)
    runs = np.transpose(kernel, (3, 0, 1, 2)).reshape(-1, 4) == 0   # TFLite [out, kh, kw, in]
    assert np.array_equal(runs.any(axis=1), runs.all(axis=1))
    assert runs.mean() == pytest.approx(0.5, abs=0.01)


def test_channel_to_half_the_macs(run_cli, run_dir, tmp_path):
    out = tmp_path / "ch"
    result = run_cli("prune", run_dir, "--method", "channel", "--target-macs", "0.5",
                     "--epochs", "0", "--out", out)
    assert result.exit_code == 0, result.err
    assert "MACs" in result.out and "channels" in result.out
    from edgecnn.prune.macs import count
    from edgecnn.rundir import load_keras_model

    model, info = load_keras_model(out)
    dense, _ = load_keras_model(run_dir)
    totals = info.reports["pruning"]["totals"]
    assert totals["macs_after"] == count(model).macs <= 0.5 * count(dense).macs
    assert totals["params_after"] < totals["params_before"]
    assert model.outputs[0].shape == dense.outputs[0].shape
    x = np.zeros((1, 8, 8, 1), "float32")
    assert model(x).shape == (1, 10)


def test_channel_latency_objective(run_cli, run_dir, tmp_path):
    out = tmp_path / "ch_lat"
    result = run_cli("prune", run_dir, "--method", "channel", "--objective", "latency",
                     "--target-macs", "0.6", "--latency-threads", "1", "--epochs", "0",
                     "--json", "--out", out)
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert report["objective"] == "latency"
    latency = report["latency"]
    assert latency["threads"] == 1 and latency["measured_dense_ms"] > 0
    assert latency["measured_ratio"] == pytest.approx(
        latency["measured_pruned_ms"] / latency["measured_dense_ms"], abs=2e-3)
    assert {g["layers"] for g in latency["groups"]} == {"stem, pw", "c2", "fc"}
    assert report["totals"]["macs_ratio"] <= 0.6
    for g in latency["groups"]:
        assert math.ceil(0.5 * g["channels"]) <= g["kept"] <= g["channels"]
    from edgecnn.rundir import load_keras_model

    model, _ = load_keras_model(out)
    assert model.outputs[0].shape[-1] == 10


@pytest.mark.parametrize("args, needle", [
    (("--method", "magnitude", "--sparsity", "1.0"), "outside [0, 1)"),
    (("--method", "magnitude", "--sparsity", "-0.1"), "outside [0, 1)"),
    (("--method", "channel", "--sparsity", "0.97"), "every channel"),
    (("--method", "channel", "--target-macs", "0.5", "--sparsity", "0.3"), "exactly one"),
    (("--method", "channel", "--target-macs", "1.5"), "target-macs"),
    (("--method", "magnitude", "--sparsity", "0.5", "--skip", "nope"), "nope"),
    (("--method", "magnitude", "--sparsity", "0.5", "--block", "1x0"), "--block"),
    (("--method", "magnitude", "--sparsity", "0.5", "--block", "four"), "--block"),
    (("--method", "channel", "--target-macs", "0.5", "--block", "4"), "magnitude only"),
    (("--method", "channel", "--target-macs", "0.5", "--scope", "model"), "magnitude only"),
    (("--method", "channel", "--objective", "latency", "--sparsity", "0.3"), "not --sparsity"),
    (("--method", "channel", "--objective", "latency"), "--target-latency"),
    (("--method", "channel", "--target-macs", "0.5", "--target-latency", "0.5"),
     "needs --objective latency"),
    (("--method", "channel", "--objective", "latency", "--target-latency", "1.5"), "outside"),
    (("--method", "channel", "--objective", "latency", "--target-macs", "0.5", "--min-keep",
      "0"), "--min-keep"),
    (("--method", "magnitude", "--sparsity", "0.5", "--objective", "latency"), "channel only"),
])
def test_bad_options_exit_2_without_output(run_cli, run_dir, tmp_path, args, needle):
    out = tmp_path / "bad"
    result = run_cli("prune", run_dir, *args, "--epochs", "0", "--out", out)
    assert_one_line_error(result, needle)
    _no_output(out)


def test_dataset_that_does_not_match_the_model(run_cli, run_dir, tmp_path):
    import cv2

    folder = tmp_path / "three"
    rng = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        (folder / label).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(folder / label / f"{i}.png"),
                        rng.integers(0, 255, (8, 8), dtype=np.uint8))
    out = tmp_path / "mismatch"
    result = run_cli("prune", run_dir, "--method", "magnitude", "--sparsity", "0.5",
                     "--data", folder, "--epochs", "1", "--out", out)
    assert_one_line_error(result, "3 classes", "predicts 10")
    _no_output(out)


def test_model_without_prunable_layers(run_cli, tmp_path):
    import keras
    from keras import layers as L

    def build():
        inp = keras.Input((8, 8, 1), name="image")
        out = L.Flatten()(L.Conv2D(10, 8, activation="softmax", name="only")(inp))
        return keras.Model(inp, out)

    run = _write_run(tmp_path / "tiny", build)
    for method, needle in (("magnitude", "skipped"), ("channel", "no prunable channels")):
        out = tmp_path / f"tiny_{method}"
        result = run_cli("prune", run, "--method", method, "--sparsity", "0.5", "--epochs", "0",
                         "--out", out)
        assert_one_line_error(result, needle)
        _no_output(out)


def test_missing_model(run_cli, tmp_path):
    out = tmp_path / "x"
    result = run_cli("prune", tmp_path / "nothing", "--method", "magnitude", "--sparsity", "0.5",
                     "--out", out)
    assert_one_line_error(result, "not found")
    _no_output(out)
