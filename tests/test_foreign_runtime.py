"""Models edgecnn did not write, on the device side: the foreign detection decoders on a real
interpreter's outputs, Ultralytics' metadata.json read as it is, ``--task/--labels/...`` on
predict, ``edgecnn metadata show|set`` round trips, NCHW inputs, and one-line errors.

The models are tiny ``.tflite`` files (``foreign_models.py``) whose outputs are known constants
plus the mean of the input: a black image (stretch resize, mean 0) gives exactly the constants,
so every decoded box is known in advance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import BLOCK_TENSORFLOW, assert_one_line_error
from foreign_models import build_tflite, with_ultralytics_metadata

from edgecnn.runtime import load
from edgecnn.runtime import metadata as md

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("a", "b", "c")
# Ultralytics YOLO head, channels first [1, 4 + 3, N anchors]: cx, cy, w, h in 0..1 of the
# 64 px input, then class probabilities. Anchor 1 overlaps anchor 0 (IoU 0.92, same class):
# NMS drops it. Anchor 2 is class 0.
YOLO = np.array([[0.50, 0.52, 0.25],
                 [0.50, 0.50, 0.25],
                 [0.50, 0.50, 0.20],
                 [0.50, 0.50, 0.20],
                 [0.05, 0.10, 0.60],
                 [0.90, 0.80, 0.10],
                 [0.01, 0.02, 0.03]], np.float32)
# 5 more anchors scoring 0 (a head has more anchors than channels: [1, 7, 8])
YOLO = np.concatenate([YOLO, np.tile([[0.5], [0.5], [0.1], [0.1], [0], [0], [0]], 5)],
                      axis=1)[None].astype(np.float32)
# In a 128 px image (scale 2): anchor 0 -> [32, 32, 96, 96], anchor 2 -> [19.2, 19.2, 44.8, 44.8]
YOLO_BOXES = [("b", 0.9, [32.0, 32.0, 96.0, 96.0]), ("a", 0.6, [19.2, 19.2, 44.8, 44.8])]
# End-to-end YOLO rows: x1 y1 x2 y2 (input pixels), score, class.
END2END = np.array([[[4, 8, 20, 40, 0.3, 2], [10, 10, 30, 30, 0.8, 1],
                     [0, 0, 64, 64, 0.1, 0], [1, 1, 2, 2, 0.9, 7]]], np.float32)
# TFLite_Detection_PostProcess: boxes ymin xmin ymax xmax (0..1), classes, scores, count.
SSD = (np.array([[[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.5], [0, 0, 1, 1]]], np.float32),
       np.array([[2, 0, 1]], np.float32), np.array([[0.7, 0.95, 0.99]], np.float32),
       np.array([2], np.float32))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign")
    built = {"yolo": build_tflite([YOLO]), "yolo_t": build_tflite([YOLO.transpose(0, 2, 1)]),
             "end2end": build_tflite([END2END]), "ssd": build_tflite(list(SSD)),
             "nchw": build_tflite([], shape=(1, 3, 16, 16), channel_means=True)}
    built["ultra"] = with_ultralytics_metadata(built["yolo"])
    paths = {}
    for name, data in built.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(data)
    black = root / "black.png"
    cv2.imwrite(str(black), np.zeros((128, 128, 3), np.uint8))
    red = root / "red.png"
    cv2.imwrite(str(red), np.full((20, 30, 3), (0, 0, 255), np.uint8))   # BGR on disk
    return {**paths, "black": black, "red": red}


def _boxes(result) -> list[tuple[str, float, list[float]]]:
    report = json.loads(result.out)
    return [(d["label"], round(d["score"], 4), [round(v, 3) for v in d["box"]])
            for d in report["results"][0]["detections"]]


def _expect(rows) -> list[tuple[str, float, list[float]]]:
    return [(label, pytest.approx(score, abs=1e-4), pytest.approx(box, abs=1e-3))
            for label, score, box in rows]


@pytest.mark.parametrize("name", ["yolo", "yolo_t"])
def test_ultralytics_yolo_layouts_decode_with_labels_given(models, run_cli, name):
    result = run_cli("predict", models[name], models["black"], "--json", "--task", "detect",
                     "--labels", ",".join(LABELS), "--resize", "stretch")
    assert result.exit_code == 0, result.err
    assert _boxes(result) == _expect(YOLO_BOXES)


def test_end2end_rows_are_selected_not_suppressed(models, run_cli):
    result = run_cli("predict", models["end2end"], models["black"], "--json", "--task",
                     "detect", "--labels", "a,b,c", "--resize", "stretch",
                     "--score-threshold", "0.2")
    assert result.exit_code == 0, result.err
    # class 7 is no label: dropped; score 0.1 below the threshold; order by score.
    assert _boxes(result) == _expect([("b", 0.8, [20, 20, 60, 60]),
                                      ("c", 0.3, [8, 16, 40, 80])])


def test_ssd_postprocess_outputs_decode_count_rows_only(models, run_cli):
    decoder = "ssd_postprocess:box_output=0,class_output=1,score_output=2,count_output=3"
    result = run_cli("predict", models["ssd"], models["black"], "--json", "--task", "detect",
                     "--labels", "a,b,c", "--resize", "stretch", "--decoder", decoder)
    assert result.exit_code == 0, result.err
    # count 2: the third row (score 0.99) is not valid; ymin xmin ymax xmax -> x1 y1 x2 y2.
    assert _boxes(result) == _expect([("a", 0.95, [0, 0, 64, 64]),
                                      ("c", 0.7, [64, 32, 128, 96])])
    # The four shapes alone point to the same decoder (classes before scores).
    guessed = run_cli("predict", models["ssd"], models["black"], "--json", "--task", "detect",
                      "--labels", "a,b,c", "--resize", "stretch")
    assert _boxes(guessed) == _boxes(result)
    swapped = decoder.replace("box_output=0,class_output=1", "box_output=1,class_output=0")
    assert_one_line_error(run_cli("predict", models["ssd"], models["black"], "--task", "detect",
                                  "--labels", "a,b,c", "--decoder", swapped),
                          "TFLite_Detection_PostProcess outputs do not fit",
                          "boxes (output 1) [1, 3]", "expected boxes [1, N, 4]")


def test_ultralytics_metadata_json_is_read_without_options(models, run_cli):
    result = run_cli("predict", models["ultra"], models["black"], "--json")
    assert result.exit_code == 0, result.err
    assert _boxes(result) == _expect(YOLO_BOXES)     # a square image: letterbox == stretch
    shown = run_cli("metadata", "show", models["ultra"], "--json")
    report = json.loads(shown.out)
    assert report["source"] == "ultralytics" and report["foreign"]["labels"] == list(LABELS)
    meta = report["metadata"]
    assert meta["decoder"]["type"] == "ultralytics_yolo" and meta["decoder"]["iou_threshold"] \
        == 0.7
    assert meta["input"]["interpolation"] == "linear" and meta["input"]["resize"] == "letterbox"
    text = run_cli("metadata", "show", models["ultra"]).out
    assert "metadata from ultralytics" in text and "3 labels: a, b, c" in text


def test_metadata_set_round_trip_keeps_the_model_and_ultralytics_json(models, run_cli,
                                                                      tmp_path):
    out = tmp_path / "named.tflite"
    result = run_cli("metadata", "set", models["ultra"], "-o", out, "--labels", "cat,dog,emu",
                     "--score-threshold", "0.7", "--name", "yolo_toy")
    assert result.exit_code == 0, result.err
    assert "task detect, 3 labels, input NHWC, decoder ultralytics_yolo" in result.out
    data = out.read_bytes()
    flat, bundle = md.split_bundle(data)
    assert flat == md.split_bundle(models["ultra"].read_bytes())[0]   # model byte for byte
    assert json.loads(md.read_bundle_entry(bundle, "metadata.json"))["author"] == "Ultralytics"
    meta = md.read(data)
    assert meta.labels == ("cat", "dog", "emu") and meta.name == "yolo_toy"
    assert meta.decoder.score_threshold == 0.7
    shown = json.loads(run_cli("metadata", "show", out, "--json").out)
    assert shown["source"] == "edgecnn" and shown["metadata"]["labels"] == ["cat", "dog", "emu"]
    [det] = load(out)(cv2.imread(str(models["black"])))    # 0.6 is now below the threshold
    assert det.category.label == "dog" and det.category.score == pytest.approx(0.9)
    again = run_cli("metadata", "set", out, "--in-place", "--score-threshold", "0.5")
    assert again.exit_code == 0 and md.read(out.read_bytes()).labels == meta.labels
    assert len(load(out)(cv2.imread(str(models["black"])))) == 2


def test_nchw_input_is_fed_channels_first(models, run_cli, tmp_path):
    result = run_cli("predict", models["nchw"], models["red"], "--json", "--labels",
                     "red,green,blue")
    assert result.exit_code == 0, result.err
    top = json.loads(result.out)["results"][0]["categories"][0]
    assert top["label"] == "red"
    out = tmp_path / "nchw_meta.tflite"
    assert run_cli("metadata", "set", models["nchw"], "-o", out, "--labels", "r,g,b",
                   "--activation", "none").exit_code == 0
    meta = md.read(out.read_bytes())
    assert meta.input.layout == "NCHW" and meta.task.value == "classify"
    assert_one_line_error(run_cli("metadata", "set", out, "--in-place", "--layout", "NHWC"),
                          "--layout NHWC does not fit", "[1, 3, 16, 16]")


@pytest.mark.parametrize("args,needles", [
    ([], ["metadata set needs a destination", "--in-place"]),
    (["-o", "{out}", "--decoder", "ultralytics_yolo", "--labels", "a,b"],
     ["expected [1, 6, N] or [1, N, 6]", "--labels"]),
    (["-o", "{out}", "--task", "detect", "--labels", "a"],
     ["no known detection layout", "[1, 4+1, N]"]),
    (["-o", "{out}", "--labels", "a"], ["cannot tell the task", "--task"]),
    (["-o", "{out}", "--decoder", "ssd_postprocess", "--labels", "a,b,c"],
     ["decoder.class_output = 1 but the model has 1 outputs"]),
    (["-o", "{out}", "--decoder", "ssd_postprocess"], ["cannot tell the number of classes"]),
    (["-o", "{out}", "--decoder", "yolo_v9"], ["unknown decoder type 'yolo_v9'"]),
    (["-o", "{out}", "--mean", "grey"], ["--mean 'grey' is not a number"]),
    (["-o", "{out}", "--layout", "NCHW"], ["--layout NCHW does not fit"]),
    (["-o", "{out}", "--task", "classify", "--labels", "a,b,c"], ["do not fit 3 labels"]),
])
def test_metadata_set_bad_input_is_one_line_and_writes_nothing(models, run_cli, tmp_path,
                                                               args, needles):
    out = tmp_path / "out.tflite"
    argv = [a.format(out=out) for a in args]
    assert_one_line_error(run_cli("metadata", "set", models["yolo"], *argv), *needles)
    assert not out.exists()


def test_models_without_metadata_or_options_are_refused(models, run_cli, tmp_path):
    assert_one_line_error(run_cli("predict", models["yolo"], models["black"]),
                          "carries no edgecnn metadata", "--labels")
    shown = run_cli("metadata", "show", models["yolo"])
    assert shown.exit_code == 0 and "no metadata:" in shown.out
    out = tmp_path / "o.tflite"
    out.write_bytes(b"old")
    assert_one_line_error(run_cli("metadata", "set", models["ultra"], "-o", out),
                          "exists", "--overwrite")
    assert out.read_bytes() == b"old"


def test_device_side_reads_and_sets_metadata_without_tensorflow(models, tmp_path):
    out = tmp_path / "set.tflite"
    code = BLOCK_TENSORFLOW + f"""
from edgecnn.cli import main
assert main(["metadata", "show", {str(models['ultra'])!r}]) == 0
assert main(["metadata", "set", {str(models['yolo'])!r}, "-o", {str(out)!r}, "--task",
             "detect", "--labels", "a,b,c"]) == 0
assert main(["predict", {str(out)!r}, {str(models['black'])!r}, "--json"]) == 0
mods = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
assert not mods, mods
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"label": "b"' in proc.stdout


def test_float_tflite_detector_requantized_with_detection_parity(models, run_cli, tmp_path):
    src = tmp_path / "yolo_sig.tflite"
    src.write_bytes(build_tflite([YOLO], signature=True))
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(calib / f"{i}.png"), rng.integers(0, 256, (80, 80, 3), np.uint8))
    out = tmp_path / "yolo_int8.tflite"
    result = run_cli("convert", src, "--quant", "int8", "--calib", calib, "--task", "detect",
                     "--labels", "a,b,c", "-o", out, "--json")
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert report["metadata"]["decoder"]["type"] == "ultralytics_yolo"
    assert report["outputs"][0]["dtype"] == "int8"
    parity = report["agreement"]
    # Random images shift every score by their mean: each float box is found again in int8.
    assert parity["samples"] == 6 and parity["source_boxes"] == parity["converted_boxes"] >= 12
    assert parity["matched"] == 1.0 and parity["mean_iou"] > 0.98
    dets = _boxes(run_cli("predict", out, models["black"], "--json"))
    assert [d[0] for d in dets] == ["b", "a"]
    for (_, score, box), (_, want_score, want_box) in zip(dets, YOLO_BOXES):
        assert score == pytest.approx(want_score, abs=0.01)      # one int8 step: 0.0055
        assert box == pytest.approx(want_box, abs=1.0)


def _toy_dataset(root: Path) -> Path:
    """A YOLO dataset whose val images are black with the toy detector's two boxes as ground
    truth (random training images, for calibration)."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(0, 256, (128, 128, 3), np.uint8) if split == "train" \
                else np.zeros((128, 128, 3), np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            (root / "labels" / split / f"{i}.txt").write_text(
                "1 0.5 0.5 0.5 0.5\n0 0.25 0.25 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\n"
                                    "val: images/val\nnames: [a, b, c]\n")
    return root / "data.yaml"


def test_eval_and_camera_run_a_foreign_detector(models, run_cli, tmp_path):
    data = _toy_dataset(tmp_path)
    result = run_cli("eval", models["ultra"], "--data", data, "--split", "val", "--json",
                     "--iou-threshold", "0.7")
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert report["map50"] == pytest.approx(1.0) and report["map"] == pytest.approx(1.0)
    wrong = run_cli("eval", models["ultra"], "--data", data, "--split", "val", "--json",
                    "--labels", "a,b,c", "--decoder", "ultralytics_yolo:normalized=false")
    assert wrong.exit_code == 0 and json.loads(wrong.out)["map50"] < 0.5  # boxes 64x too small
    video = tmp_path / "black.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 128))
    for _ in range(3):
        writer.write(np.zeros((128, 128, 3), np.uint8))
    writer.release()
    frames = tmp_path / "frames.jsonl"
    cam = run_cli("camera", models["yolo"], "--source", video, "--json", frames, "--task",
                  "detect", "--labels", "a,b,c", "--resize", "stretch")
    assert cam.exit_code == 0, cam.err
    lines = [json.loads(ln) for ln in frames.read_text().splitlines() if ln.strip()]
    assert len(lines) == 4 and "summary" in lines[-1]    # 3 frames, then the summary
    assert [d["label"] for d in lines[0]["detections"]] == ["b", "a"]
    assert lines[0]["detections"][0]["box"] == pytest.approx([32, 32, 96, 96], abs=0.01)


def test_detector_parity_scores_map_of_both_on_held_out_boxes(run_cli, tmp_path):
    """--calib data.yaml: the held-out images come with boxes, so the report has the mAP of
    the float source and of the int8 file (the toy model's boxes are the ground truth)."""
    src = tmp_path / "yolo_sig.tflite"
    src.write_bytes(build_tflite([YOLO], signature=True))
    _toy_dataset(tmp_path)
    result = run_cli("convert", src, "--quant", "int8", "--calib", tmp_path / "data.yaml",
                     "--task", "detect", "-o", tmp_path / "int8.tflite", "--json")
    assert result.exit_code == 0, result.err
    report = json.loads(result.out)
    assert report["metadata"]["labels"] == ["a", "b", "c"]     # the dataset's names
    parity = report["agreement"]
    assert parity["samples"] == 3 and parity["matched"] == 1.0
    assert parity["map50_source"] == pytest.approx(1.0) and parity["map_source"] == \
        pytest.approx(1.0)
    assert parity["map50_converted"] == pytest.approx(1.0) and parity["map_converted"] > 0.8
    text = run_cli("convert", src, "--quant", "int8", "--calib", tmp_path / "data.yaml",
                   "--task", "detect", "-o", tmp_path / "int8b.tflite").out
    assert "mAP@0.5 1.000 -> 1.000" in text
