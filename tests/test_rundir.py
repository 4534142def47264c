"""The run contract: run.json schema 2, typed fields, and runs of the first format still work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from edgecnn.errors import UsageError
from edgecnn.rundir import RUN_SCHEMA, Provenance, RunInfo, Split, dataset_reference
from edgecnn.runtime.metadata import DecoderSpec
from edgecnn.runtime.task import Task

# What session-3 edgecnn wrote for a detector (schema 1: no schema field, a free-form extra).
V1_DETECT = {
    "task": "detect", "arch": "det_s", "labels": ["a", "b"], "imgsz": [64, 64],
    "channels": 3, "color": "RGB", "resize": "letterbox", "mean": [0.0], "std": [255.0],
    "data": "synth/data.yaml", "data_dir": None, "output_activation": "sigmoid",
    "decoder": {"type": "anchor_free_ltrb", "strides": [8, 16, 32], "box_output": 0,
                "score_output": 1, "score_threshold": 0.25, "iou_threshold": 0.45,
                "max_detections": 100},
    "seed": 3,
    "extra": {"metrics": {"val_map50": 0.5}, "config": {"val_split": 0.2, "epochs": 4},
              "width": 1.5, "pruning": {"method": "channel"}},
}


def test_schema_1_is_read_into_typed_fields(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(V1_DETECT))
    info = RunInfo.load(tmp_path)
    assert info.task is Task.DETECT
    assert info.decoder == DecoderSpec(strides=(8, 16, 32))
    assert info.split == Split(0.2, 3) and info.val_split == 0.2
    assert info.metrics == {"val_map50": 0.5}
    assert info.config["width"] == 1.5 and info.config["epochs"] == 4
    assert info.reports == {"pruning": {"method": "channel"}}
    assert info.provenance.command == "prune"


def test_round_trip_writes_schema_2(tmp_path):
    info = RunInfo(task="classify", arch="dsnet_s", labels=["x", "y"], imgsz=(28, 28),
                   channels=1, color="GRAY", split=Split(0.25, 7), metrics={"val_accuracy": 0.9},
                   provenance=Provenance.now("train", weights="imagenet:efficientnet_lite0"))
    info.save(tmp_path)
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["schema"] == RUN_SCHEMA and doc["task"] == "classify"
    assert doc["split"] == {"val_split": 0.25, "seed": 7}
    again = RunInfo.load(tmp_path)
    assert again == info
    assert (tmp_path / "labels.txt").read_text() == "x\ny\n"


@pytest.mark.parametrize("doc, needle", [
    ({**V1_DETECT, "schema": "edgecnn.run/9"}, "edgecnn.run/9"),
    ({**V1_DETECT, "task": "segment"}, "unknown task"),
    ({**V1_DETECT, "schema": RUN_SCHEMA, "extra": {}}, "unknown fields: extra"),
    ({**V1_DETECT, "decoder": {"type": "anchor_free_ltrb", "bogus": 1}}, "decoder"),
    ({**V1_DETECT, "extra": {"config": {"val_split": 1.5}}}, "val_split"),
    ([1, 2], "not a JSON object"),
])
def test_bad_run_json_is_one_line_error(tmp_path, doc, needle):
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError) as err:
        RunInfo.load(tmp_path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_dataset_reference_makes_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    assert dataset_reference("data.yaml") == str(tmp_path / "data.yaml")
    assert dataset_reference("digits") == "digits"
    assert dataset_reference(None) is None


def test_a_schema_1_run_still_converts_evaluates_and_prunes(run_cli, tmp_path):
    from model_factory import digits_run

    run = tmp_path / "old"
    shutil.copytree(digits_run(), run)
    doc = RunInfo.load(run).to_dict()
    v1 = {k: doc[k] for k in ("task", "arch", "labels", "imgsz", "channels", "color", "resize",
                              "mean", "std", "data", "data_dir", "output_activation", "decoder",
                              "seed")}
    v1["extra"] = {"config": {"val_split": 0.1}, "metrics": {}}
    (run / "run.json").write_text(json.dumps(v1))
    (run / ".edgecnn-output").unlink(missing_ok=True)
    out = tmp_path / "m.tflite"
    assert run_cli("convert", run, "--quant", "int8", "-o", out).exit_code == 0
    result = run_cli("eval", run, "--data", "digits", "--json")
    assert result.exit_code == 0, result.err
    assert json.loads(result.out)["accuracy"] > 0.8
    pruned = run_cli("prune", run, "--method", "magnitude", "--sparsity", "0.5", "--epochs", "0",
                     "--out", tmp_path / "pruned", "-q")
    assert pruned.exit_code == 0, pruned.err
    assert RunInfo.load(tmp_path / "pruned").provenance.parent == str(run)


def test_newer_run_json_is_refused_by_commands(run_cli, tmp_path):
    from model_factory import digits_run

    run = tmp_path / "new"
    shutil.copytree(digits_run(), run)
    doc = json.loads((run / "run.json").read_text())
    doc["schema"] = "edgecnn.run/3"
    (run / "run.json").write_text(json.dumps(doc))
    assert_one_line_error(run_cli("convert", run, "-o", tmp_path / "x.tflite"), "edgecnn.run/3")
    assert not (tmp_path / "x.tflite").exists()
    assert not list(Path(tmp_path).glob(".x*"))
