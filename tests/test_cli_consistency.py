"""What every command shares: nothing but errors on stderr of the device commands, one name
per option concept (old names kept as hidden aliases), and tasks taken from the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error

GOLDEN = Path(__file__).parent / "golden" / "tiny_detect.tflite"


def _edgecnn(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scene.png"
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255
    cv2.imwrite(str(path), image)
    return path


def test_inspect_and_predict_print_nothing_on_stderr_but_errors(scene):
    # the interpreter's "INFO: Created TensorFlow Lite XNNPACK delegate" line is captured
    for args in (("inspect", GOLDEN), ("predict", GOLDEN, scene)):
        done = _edgecnn(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", (args, done.stderr)
        assert done.stdout.strip()
    verbose = _edgecnn("--verbose", "inspect", GOLDEN)
    assert verbose.returncode == 0 and "XNNPACK" in verbose.stderr   # --verbose shows it
    missing = _edgecnn("predict", GOLDEN, "nothing.png")
    assert missing.returncode == 2 and missing.stderr.startswith("warning: skipped nothing.png")


def test_score_threshold_is_one_name_with_the_old_camera_spelling_hidden(run_cli, scene):
    low = json.loads(run_cli("predict", GOLDEN, scene, "--score-threshold", "0.01",
                             "--json").out)
    high = json.loads(run_cli("predict", GOLDEN, scene, "--score-threshold", "0.99",
                              "--json").out)
    alias = json.loads(run_cli("predict", GOLDEN, scene, "--score", "0.99", "--json").out)
    found = [len(doc["results"][0]["detections"]) for doc in (low, high, alias)]
    assert found[0] > found[1] == found[2]
    for command in ("predict", "camera"):
        help_text = run_cli(command, "--help").out
        assert "--score-threshold" in help_text and "--score " not in help_text
    bad = run_cli("camera", GOLDEN, "--source", scene, "--score", "2")
    assert_one_line_error(bad, "--score-threshold must be within 0..1")


def test_a_detector_architecture_sets_the_task(run_cli, tmp_path):
    result = run_cli("train", "--data", "digits", "--arch", "det_test", "--task", "classify",
                     "--out", tmp_path / "r")
    assert_one_line_error(result, "'det_test' is a detector", "--task detect")
    # without --task the registry's task is used: the detector path asks for a detection
    # dataset (digits is a classification dataset)
    result = run_cli("train", "--data", "digits", "--arch", "det_test", "--out", tmp_path / "r")
    assert_one_line_error(result, "YOLO data.yaml")
    assert not (tmp_path / "r").exists()
