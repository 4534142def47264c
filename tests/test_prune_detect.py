"""``edgecnn prune`` on a registry detector: heads keep their shapes, fine-tuning runs the
detector's own loss, mAP is reported before and after. Slow-ish (detector data + one epoch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    """An untrained det_test run directory (what train_detector writes) and its dataset."""
    import keras

    from edgecnn.data.synth import make_synthetic_dataset
    from edgecnn.models.detect import detector_strides
    from edgecnn.models.registry import create_model
    from edgecnn.rundir import RunInfo

    root = tmp_path_factory.mktemp("prune_det")
    yaml = make_synthetic_dataset(root / "ds", n_train=16, n_val=8, imgsz=64, seed=3)
    import yaml as pyyaml

    names = pyyaml.safe_load(yaml.read_text())["names"]
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    keras.utils.set_random_seed(0)
    model = create_model("det_test", (64, 64, 3), len(names), task="detect")
    run = root / "det"
    run.mkdir()
    model.save(run / "model.keras")
    RunInfo(task="detect", arch="det_test", labels=names, imgsz=(64, 64), channels=3,
            resize="letterbox", data=str(yaml), output_activation="sigmoid",
            decoder={"type": "anchor_free_ltrb", "strides": list(detector_strides("det_test")),
                     "box_output": 0, "score_output": 1, "score_threshold": 0.25,
                     "iou_threshold": 0.45, "max_detections": 100}).save(run)
    return run, model


def test_channel_and_magnitude_on_a_detector(run_cli, det_run, tmp_path):
    from edgecnn.prune.magnitude import kernel_sparsity
    from edgecnn.rundir import load_keras_model

    run, dense = det_run
    out = tmp_path / "ch"
    # One fine-tuning epoch below (magnitude) exercises the detector loop and the mask
    # callback in it; the channel run skips fine-tuning to keep the test short.
    result = run_cli("prune", run, "--method", "channel", "--target-macs", "0.5", "--epochs", "0",
                     "--json", "--out", out)
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert report["totals"]["macs_ratio"] <= 0.5
    assert set(report["metrics_before"]) == set(report["metrics_after"]) == {"map50", "map"}
    thin, info = load_keras_model(out)
    x = np.zeros((1, 64, 64, 3), "float32")
    assert [o.shape for o in thin(x)] == [o.shape for o in dense(x)]
    assert info.decoder == load_keras_model(run)[1].decoder

    out = tmp_path / "mag"
    result = run_cli("prune", run, "--method", "magnitude", "--sparsity", "0.6", "--epochs", "1",
                     "--batch", "8", "--out", out, "-q")
    assert result.exit_code == 0, result.err
    pruned, _ = load_keras_model(out)
    zeros = kernel_sparsity(pruned)
    assert zeros["stage2_block0_pw"][0] / zeros["stage2_block0_pw"][1] == \
        pytest.approx(0.6, abs=0.01)
    assert zeros["head8_box_pred"][0] == 0      # output layers stay dense
