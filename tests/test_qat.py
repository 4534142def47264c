"""Quantization-aware fine-tuning: the int8 simulation must predict the real int8 .tflite
(checked against the LiteRT interpreter), train the original model's weights, and leave a
normal run directory that converts like any other."""

from __future__ import annotations

import json

import numpy as np
import pytest

import model_factory as mf
from conftest import assert_one_line_error


def _error_correlation(simulated, int8, flt) -> float:
    """Correlation of (simulation - float) with (int8 .tflite - float), over all outputs."""
    return float(np.corrcoef((simulated - flt).ravel(), (int8 - flt).ravel())[0, 1])


def _calib_batches(images):
    return [images[i:i + 32].astype(np.float32) / 255.0 for i in range(0, len(images), 32)]


def test_simulation_predicts_the_int8_classifier():
    from edgecnn.qat.sim import simulate_int8
    from edgecnn.runtime.model import TFLiteModel

    data = mf.digits_data()
    model = mf.keras_model()
    sim = simulate_int8(model)
    sim.calibrate(_calib_batches(data.x_train[:64]))
    sim.release()
    tfl = TFLiteModel(mf.converted("int8").path)
    x = data.x_test[:150]
    got = np.concatenate([tfl.run(im[None].astype(np.float32) / 255.0)[0] for im in x])
    flt = np.asarray(model(x.astype(np.float32) / 255.0, training=False))
    simulated = np.asarray(sim.model(x.astype(np.float32) / 255.0, training=False))
    # The simulation is closer to the int8 model than the float model is, and its departures
    # from float follow the int8 model's (the same rounding, not just the same amount of it).
    assert np.abs(simulated - got).mean() < np.abs(flt - got).mean()
    assert _error_correlation(simulated, got, flt) > 0.4
    # Softmax outputs are quantized to 1/256 steps in both.
    steps = simulated * 256
    assert np.abs(steps - np.round(steps)).max() < 1e-3


def test_simulation_predicts_the_int8_detector():
    import cv2

    from edgecnn.qat.sim import simulate_int8
    from edgecnn.rundir import load_keras_model
    from edgecnn.runtime.model import TFLiteModel

    run = mf.detector_run()
    model, _ = load_keras_model(run)
    paths = sorted((run.parent / "det_images").glob("*.png"))
    images = np.stack([cv2.resize(cv2.imread(str(p)), (64, 64))[:, :, ::-1] for p in paths])
    sim = simulate_int8(model)
    sim.calibrate(_calib_batches(images))
    sim.release()
    tfl = TFLiteModel(mf.converted_detector("int8").path)
    x = images.astype(np.float32) / 255.0
    flt_boxes, flt_scores = (np.asarray(t) for t in model(x, training=False))
    sim_boxes, sim_scores = (np.asarray(t) for t in sim.model(x, training=False))
    dec = tfl.metadata.decoder
    got_boxes, got_scores = [], []
    for i in range(len(x)):
        outs = tfl.run(x[i:i + 1])
        got_boxes.append(outs[dec.box_output][0])
        got_scores.append(outs[dec.score_output][0])
    for simulated, got, flt in ((sim_boxes, np.stack(got_boxes), flt_boxes),
                                (sim_scores, np.stack(got_scores), flt_scores)):
        assert np.abs(simulated - got).mean() < np.abs(flt - got).mean()
        assert _error_correlation(simulated, got, flt) > 0.4


def test_simulation_trains_the_original_weights_and_releases_batchnorm():
    from edgecnn.lazy import keras
    from edgecnn.qat.sim import simulate_int8

    k = keras()
    model = mf.keras_model()
    before = [w.copy() for w in model.get_weights()]
    sim = simulate_int8(model)
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert bns and not any(layer.trainable for layer in bns)
    data = mf.digits_data()
    sim.model.compile(optimizer=k.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    sim.model.fit(data.x_train[:64].astype(np.float32) / 255.0, data.y_train[:64], epochs=1,
                  batch_size=32, verbose=0)
    after = model.get_weights()
    moved = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert any(moved)
    # Frozen BN: its moving statistics (non-trainable) did not move during the fit.
    bn = bns[0]
    idx = [i for i, w in enumerate(model.weights) if w is bn.moving_mean][0]
    assert np.array_equal(before[idx], after[idx])
    sim.release()
    assert all(layer.trainable for layer in bns)


def test_calibration_starts_over_each_time():
    from edgecnn.qat.sim import simulate_int8

    sim = simulate_int8(mf.keras_model())
    sim.release()
    images = mf.digits_data().x_train[:64]
    sim.calibrate(_calib_batches(images))
    wide = [float(q.hi.numpy()) for q in sim.quantizers if q.fixed is None]
    sim.calibrate(_calib_batches(images // 4))       # darker images: smaller activations
    narrow = [float(q.hi.numpy()) for q in sim.quantizers if q.fixed is None]
    assert all(n < w for n, w in zip(narrow, wide)), (narrow, wide)


def test_unsupported_activation_is_a_clear_error():
    from edgecnn.errors import UsageError
    from edgecnn.lazy import keras
    from edgecnn.qat.sim import simulate_int8

    k = keras()
    inp = k.Input((8, 8, 1))
    out = k.layers.Conv2D(4, 3, activation="tanh", name="odd")(inp)
    with pytest.raises(UsageError, match="odd"):
        simulate_int8(k.Model(inp, out))
    out = k.layers.SeparableConv2D(4, 3, name="sep")(inp)
    with pytest.raises(UsageError, match="sep"):
        simulate_int8(k.Model(inp, out))


def test_cli_qat_classifier_writes_a_run_that_converts(run_cli, tmp_path):
    from edgecnn.rundir import load_keras_model
    from edgecnn.runtime.model import TFLiteModel

    out = tmp_path / "qat"
    result = run_cli("qat", mf.digits_run(), "--epochs", "1", "--batch", "32", "--json",
                     "--out", out)
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    for key in ("float_before", "sim_before", "float_after", "sim_after"):
        assert 0.5 < report[key]["accuracy"] <= 1.0, report
    model, info = load_keras_model(out)
    assert info.reports["qat"]["epochs"] == 1
    assert all(layer.trainable for layer in model.layers)
    src, _ = load_keras_model(mf.digits_run())
    assert any(not np.array_equal(a, b) for a, b in zip(src.get_weights(), model.get_weights()))
    tfl = tmp_path / "q.tflite"
    result = run_cli("convert", out, "--quant", "int8", "--calib-size", "32", "-o", tfl)
    assert result.exit_code == 0, result.err
    assert TFLiteModel(tfl).input.dtype == np.int8


@pytest.mark.parametrize("args,needle", [
    (["--epochs", "0"], "--epochs"),
    (["--batch", "0"], "--batch"),
    (["--lr", "-1"], "--lr"),
    (["--ema", "1.5"], "--ema"),
])
def test_cli_qat_bad_options(run_cli, tmp_path, args, needle):
    result = run_cli("qat", mf.digits_run(), *args, "--out", tmp_path / "o")
    assert_one_line_error(result, needle)
    assert not (tmp_path / "o").exists()


def test_cli_qat_refuses_its_own_run_and_missing_models(run_cli, tmp_path):
    run = mf.digits_run()
    assert_one_line_error(run_cli("qat", run, "--out", run), "--out")
    assert_one_line_error(run_cli("qat", tmp_path / "nope", "--out", tmp_path / "o"), "nope")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_qat_detector(run_cli, tmp_path):
    """The detection path: the detector loss through the simulation, mAP before / after."""
    import yaml as pyyaml

    from edgecnn.data.synth import make_synthetic_dataset
    from edgecnn.models.detect import detector_strides
    from edgecnn.models.registry import create_model
    from edgecnn.rundir import RunInfo, load_keras_model
    from edgecnn.lazy import keras

    spec = make_synthetic_dataset(tmp_path / "ds", n_train=16, n_val=8, imgsz=64, seed=3)
    names = pyyaml.safe_load(spec.read_text())["names"]
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    keras().utils.set_random_seed(0)
    run = tmp_path / "det"
    run.mkdir()
    create_model("det_test", (64, 64, 3), len(names), task="detect").save(run / "model.keras")
    RunInfo(task="detect", arch="det_test", labels=names, imgsz=(64, 64), channels=3,
            resize="letterbox", data=str(spec), output_activation="sigmoid",
            decoder={"type": "anchor_free_ltrb", "strides": list(detector_strides("det_test")),
                     "box_output": 0, "score_output": 1, "score_threshold": 0.25,
                     "iou_threshold": 0.45, "max_detections": 100}).save(run)
    out = tmp_path / "qat"
    result = run_cli("qat", run, "--epochs", "1", "--batch", "8", "--json", "--out", out)
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert set(report["sim_after"]) == {"map50", "map"}
    assert report["kept_epoch"] == 1
    model, info = load_keras_model(out)
    assert info.decoder == load_keras_model(run)[1].decoder
    x = np.zeros((1, 64, 64, 3), np.float32)
    assert [o.shape for o in model(x)] == [(1, 84, 4), (1, 84, len(names))]
