"""COCO mAP evaluator: exact cases checked by hand, and the .tflite path without TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.evaluate.detect import ImageDetections, coco_map

NAMES = ("circle", "square")


def _gt():
    return [
        (np.array([[10, 10, 50, 60], [100, 100, 140, 130]], np.float32), np.array([0, 1]), 200,
         200),
        (np.array([[20, 30, 90, 80]], np.float32), np.array([0]), 160, 120),
    ]


def _perfect(gt):
    return [ImageDetections(b.copy(), np.full(len(b), 0.9, np.float32), c.copy())
            for b, c, _, _ in gt]


def test_perfect_predictions_score_one():
    gt = _gt()
    res = coco_map(gt, _perfect(gt), NAMES)
    assert res["map50"] == pytest.approx(1.0)
    assert res["map"] == pytest.approx(1.0)
    assert res["per_class"] == {"circle": pytest.approx(1.0), "square": pytest.approx(1.0)}
    assert res["images"] == 2 and res["instances"] == 3


def test_shifted_boxes_lower_the_strict_map_first():
    gt = _gt()
    det = _perfect(gt)
    shifted = [ImageDetections(d.boxes + np.array([6, 0, 6, 0], np.float32), d.scores,
                               d.classes) for d in det]      # IoU ~0.74..0.84 with the truth
    res = coco_map(gt, shifted, NAMES)
    assert res["map50"] == pytest.approx(1.0)
    assert 0.2 < res["map"] < 0.9
    far = [ImageDetections(d.boxes + 200, d.scores, d.classes) for d in det]
    assert coco_map(gt, far, NAMES)["map50"] == 0.0


def test_wrong_class_is_a_miss():
    gt = _gt()
    det = [ImageDetections(d.boxes, d.scores, 1 - d.classes) for d in _perfect(gt)]
    assert coco_map(gt, det, NAMES)["map50"] == 0.0


def test_hand_computed_average_precision():
    """One class, two boxes; detections by score: hit, false positive, hit.

    Precision/recall after each: (1, 0.5), (0.5, 0.5), (2/3, 1). COCO's interpolated precision
    is 1 on the 51 recall points 0..0.50 and 2/3 on the 50 points 0.51..1, so
    AP = (51 + 50 * 2/3) / 101 at every IoU threshold (the hits are exact).
    """
    gt = [(np.array([[0, 0, 20, 20], [50, 50, 80, 90]], np.float32), np.array([0, 0]), 100,
           100)]
    det = [ImageDetections(np.array([[0, 0, 20, 20], [30, 0, 45, 10], [50, 50, 80, 90]],
                                    np.float32), np.array([0.9, 0.8, 0.7], np.float32),
                           np.array([0, 0, 0]))]
    expected = (51 + 50 * 2 / 3) / 101
    res = coco_map(gt, det, ("thing",))
    assert res["map50"] == pytest.approx(expected, abs=1e-6)
    assert res["map"] == pytest.approx(expected, abs=1e-6)


def test_no_detections_and_no_ground_truth():
    gt = _gt()
    empty = [ImageDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)) for _ in gt]
    assert coco_map(gt, empty, NAMES)["map50"] == 0.0
    nothing = [(np.zeros((0, 4)), np.zeros(0, int), 10, 10)]
    res = coco_map(nothing, [ImageDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0))], NAMES)
    assert res["map50"] == 0.0 and res["instances"] == 0


def test_missing_model_is_a_usage_error(run_cli, tmp_path):
    from edgecnn.errors import UsageError
    from edgecnn.evaluate.detect import evaluate_detection

    with pytest.raises(UsageError, match="not found"):
        evaluate_detection(tmp_path / "nope.tflite", "x")


def _tiny_yolo(root, names, n=3, size=64):
    import cv2

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = np.full((size, size + 16, 3), 90, np.uint8)   # not square: letterboxed
            cv2.rectangle(image, (10 + i, 12), (40 + i, 44), (0, 200, 255), -1)
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), image)
            w = size + 16
            (root / "labels" / split / f"{i}.txt").write_text(
                f"{i % len(names)} {(25 + i) / w:.6f} {28 / size:.6f} {30 / w:.6f} "
                f"{32 / size:.6f}\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                                    f"names: {list(names)}\n")
    return root / "data.yaml"


@pytest.mark.slow  # converts a detector (shared, cached fixture) when run alone
def test_tflite_map_runs_without_tensorflow(tmp_path):
    """evaluate_detection on an int8 .tflite in a subprocess where TensorFlow cannot import."""
    import json
    import subprocess
    import sys

    pytest.importorskip("tensorflow")   # the fixture detector is converted here
    from tests.model_factory import converted_detector

    tflite = converted_detector("int8").path
    data = _tiny_yolo(tmp_path / "ds", ("a", "b", "c", "d"))
    code = f"""
import json, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
from edgecnn.evaluate.detect import evaluate_detection
res = evaluate_detection({str(tflite)!r}, {str(data)!r}, threads=1)
assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
print(json.dumps({{k: res[k] for k in ('map50', 'map', 'images', 'instances')}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["images"] == 3 and doc["instances"] == 3
    assert 0.0 <= doc["map50"] <= 1.0
