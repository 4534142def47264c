"""Cross-architecture parity (tests/parity.py): a record of what the runtime computed, checked.

With ``$EDGECNN_PARITY_DIR`` (set by ``.ci/arm64`` in the emulated aarch64 root) the record was
written on x86_64 by ``tests/parity_models.py`` and this machine must reproduce it within the
tolerances of docs/FORMAT.md. Without it, a smaller record is written here first (TensorFlow
builds the models): the round trip, the TensorFlow-free check and the perturbation test then
run on this machine alone.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import parity
from conftest import BLOCK_TENSORFLOW

PARITY_ENV = "EDGECNN_PARITY_DIR"
SUMMARY = "check-summary.json"


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory, request) -> Path:
    given = os.environ.get(PARITY_ENV)
    if given:
        folder = Path(given)
        if not (folder / parity.REFERENCE_JSON).is_file():
            raise FileNotFoundError(f"${PARITY_ENV}={given} holds no {parity.REFERENCE_JSON}")
        return folder
    pytest.importorskip("tensorflow", reason="tensorflow builds the parity models")
    import parity_models

    folder = tmp_path_factory.mktemp("parity") / "record"
    parity_models.build(folder, detector=False, config=request.config)
    return folder


@pytest.fixture(scope="module")
def reference(record_dir) -> tuple[dict, dict]:
    return parity.load_reference(record_dir)


def test_this_machine_reproduces_the_record(record_dir, reference):
    doc, arrays = reference
    problems, summary = parity.check(record_dir, doc, arrays)
    if os.environ.get(PARITY_ENV):  # .ci/arm64 prints it: which machines, largest differences
        (record_dir / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    assert problems == [], "\n".join(problems[:40])
    tasks = {c["task"] for c in doc["cases"]}
    quantized = {arrays[f"{c['images'][0]['key']}|out0"].dtype.name for c in doc["cases"]}
    assert tasks == {"classify", "detect"} and {"int8", "float32"} <= quantized
    assert summary["images"] >= 50 and summary["evals"] >= 3
    detections = sum(len(i["result"].get("detections", ())) for c in doc["cases"]
                     for i in c["images"])
    assert detections >= 40  # boxes really are compared


def test_the_check_runs_without_tensorflow(record_dir):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed here: the check above already ran without it")
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import parity
        problems, summary = parity.check({str(record_dir)!r})
        assert not any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)
        print(len(problems), summary['images'])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    problems, images = out.stdout.split()[-2:]
    assert problems == "0" and int(images) > 0


def _edgecnn(*args, cwd: Path) -> dict:
    """``edgecnn ARGS... --json`` in a fresh interpreter (the installed package, as a user runs
    it on the device), parsed."""
    out = subprocess.run([sys.executable, "-m", "edgecnn", *args, "--json"], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_the_cli_gives_the_recorded_results(record_dir, reference):
    """``edgecnn predict``, ``eval`` and ``inspect`` on the recorded files, as on a Pi."""
    doc = reference[0]
    case = next(c for c in doc["cases"] if c["model"].endswith("digits_int8.tflite"))
    images = [item["image"] for item in case["images"]]
    report = _edgecnn("predict", case["model"], *images, cwd=record_dir)
    assert [Path(r["image"]).name for r in report["results"]] == [Path(i).name for i in images]
    for item, got in zip(case["images"], report["results"]):
        # the CLI rounds scores to 6 decimals
        assert parity.compare_categories(item["result"]["categories"], got["categories"],
                                         2e-6) == [], item["image"]
    ev = next(e for e in doc["evals"] if e["model"] == case["model"])
    got = _edgecnn("eval", ev["model"], "--data", ev["data"], "--split", ev["split"],
                   cwd=record_dir)
    assert parity.compare_eval(ev["result"], got, doc["tolerances"]) == []
    info = _edgecnn("inspect", "models/tiny_detect.tflite", cwd=record_dir)
    assert info["metadata"]["task"] == "detect" and info["outputs"][0]["dtype"] == "int8"


def _first(doc: dict, task: str, dtype: str | None, arrays: dict, model: str = ""):
    """(case, image item): the first image with results of a ``task`` case with ``dtype``
    outputs (None: any) and ``model`` in its file name."""
    for case in doc["cases"]:
        for item in case["images"]:
            found = item["result"].get("detections" if task == "detect" else "categories")
            if case["task"] == task and model in case["model"] and found and \
                    dtype in (None, arrays[item["key"] + "|out0"].dtype.name):
                return case, item
    raise LookupError(f"no {dtype} {task} case in the record")


def test_a_perturbed_record_fails_here(record_dir, reference):
    """Each kind of difference, planted in its own image of a copy of the record, is named."""
    doc, arrays = copy.deepcopy(reference[0]), dict(reference[1])
    tol = doc["tolerances"]
    expected, keep = [], {}

    def plant(task, dtype, needle, edit, model=""):
        case, item = _first(doc, task, dtype, arrays, model)
        case["images"].remove(item)   # one perturbation per image, so none hides another
        keep.setdefault(case["model"], []).append(item)
        edit(item)
        expected.append(f"{case['model']} on {item['image']}: {needle}")

    def bump(key, amount):
        arrays[key] = arrays[key].copy()
        flat = arrays[key].reshape(-1)
        flat[flat.size // 2] += np.asarray(amount, flat.dtype)

    def move(item):
        det = item["result"]["detections"][0]
        det["box"] = [v + (det["box"][2] - det["box"][0]) for v in det["box"]]

    plant("classify", "int8", "output 0 differs by",
          lambda it: bump(it["key"] + "|out0", tol["int8_lsb"] + 1))
    plant("detect", "float32", "output 1 differs by",
          lambda it: bump(it["key"] + "|out1", 1e-3), model="bright")
    plant("detect", None, "input tensor differs by",
          lambda it: bump(it["key"] + "|input", 2), model="bright_detector_int8")
    plant("classify", "int8", "rank 0:", lambda it: it["result"]["categories"].reverse())
    plant("detect", None, "missing", move, model="bright_detector_int8")
    plant("detect", "float32", "unexpected",
          lambda it: it["result"]["detections"].pop(0), model="bright")
    for case in doc["cases"]:
        case["images"] = keep.get(case["model"], [])
    doc["cases"] = [case for case in doc["cases"] if case["images"]]
    doc["evals"] = [ev for ev in doc["evals"] if "accuracy" in ev["result"]][:1]
    doc["evals"][0]["result"]["accuracy"] -= 0.05
    expected.append(f"eval {doc['evals'][0]['model']} on {doc['evals'][0]['data']}: accuracy")

    problems, _ = parity.check(record_dir, doc, arrays)
    for needle in expected:
        assert any(p.startswith(needle) for p in problems), (needle, problems)


def test_tolerance_rules():
    tol = parity.TOLERANCES
    a = np.array([[-128, 0, 127]], np.int8)
    assert parity.output_difference(a, a + np.int8(tol["int8_lsb"]) * (a < 127), tol)[1]
    assert not parity.output_difference(a, a + np.int8(tol["int8_lsb"] + 1) * (a < 127), tol)[1]
    f = np.array([0.5, 1e-7, -3.0], np.float32)
    assert parity.output_difference(f, f * (1 + 0.5 * tol["float_rtol"]), tol)[1]
    assert not parity.output_difference(f, f + 2 * tol["float_atol"] + 1e-3, tol)[1]
    near = [{"index": 1, "label": "b", "score": 0.5000, "box": [0, 0, 10, 10]},
            {"index": 0, "label": "a", "score": 0.2502, "box": [20, 20, 30, 30]}]
    # a detection just above the threshold may vanish on the other machine; a strong one not
    assert parity.compare_detections(near, near[:1], 1e-3, 0.1, 0.25, 100) == []
    assert parity.compare_detections(near, near[1:], 1e-3, 0.1, 0.25, 100) != []
    tie = [{"index": 3, "label": "3", "score": 0.40}, {"index": 5, "label": "5", "score": 0.40}]
    assert parity.compare_categories(tie, tie[::-1], 1e-6) == []
    assert parity.compare_categories(tie, [tie[0], {**tie[1], "index": 7}], 1e-6) == []  # cut
    assert parity.compare_categories(tie + tie[:1], [tie[0], {**tie[1], "index": 7}, tie[0]],
                                     1e-6) != []
