"""The golden vectors on the machine running the tests, judged by the rules the file states.

``tests/golden/detect_golden.json`` is written on x86_64. Here the runtime regenerates the whole
document (benchmarks/make_golden.py drives the real Preprocessor, decoder, NMS and top-k) and
it is compared field by field with the committed file under the file's own ``tolerances``:
fields named in ``exact`` and every input must match bit for bit, ``score`` within ``score``
and ``box``/``box_model`` within IoU ``box_iou``. ``.ci/arm64`` runs this on aarch64, where
numpy's float32 exp differs from x86_64 in the last bits; a perturbed copy of the file must
fail the same comparison.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "detect_golden.json"
BOX_KEYS = ("box", "box_model")


def _iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else float(list(a) == list(b))


def compare_golden(want, got, tolerances: dict, path: str = "") -> list[str]:
    """Every place where ``got`` breaks ``want`` under the golden file's ``tolerances``."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            return [f"{path}: keys {sorted(set(want) ^ set(got))} differ"]
        problems = []
        for key in want:
            sub = f"{path}/{key}"
            if key in tolerances["exact"]:
                if want[key] != got[key]:
                    problems.append(f"{sub}: {got[key]!r:.80} != {want[key]!r:.80} (exact)")
            elif key == "score" and not isinstance(want[key], (dict, list)):
                if abs(want[key] - got[key]) > tolerances["score"]:
                    problems.append(f"{sub}: {got[key]} vs {want[key]} beyond "
                                    f"{tolerances['score']}")
            elif key in BOX_KEYS:
                if _iou(want[key], got[key]) < tolerances["box_iou"]:
                    problems.append(f"{sub}: IoU {_iou(want[key], got[key]):.4f} < "
                                    f"{tolerances['box_iou']}")
            else:
                problems += compare_golden(want[key], got[key], tolerances, sub)
        return problems
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(got)} entries, expected {len(want)}"]
        return [p for i, (w, g) in enumerate(zip(want, got))
                for p in compare_golden(w, g, tolerances, f"{path}[{i}]")]
    # inputs (raw outputs, parameters, names): the generator is deterministic, so exact
    return [] if want == got else [f"{path}: {got!r:.80} != {want!r:.80}"]


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def regenerated() -> dict:
    spec = importlib.util.spec_from_file_location("make_golden",
                                                  ROOT / "benchmarks" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return json.loads(module.dumps(module.build_golden()))


def test_the_file_states_its_tolerances(committed):
    tol = committed["tolerances"]
    assert 0 < tol["score"] <= 1e-3 and 0.9 <= tol["box_iou"] < 1
    assert {"anchor", "index", "label", "letterbox", "lut"} <= set(tol["exact"])


def test_this_machine_reproduces_the_golden_file(committed, regenerated):
    assert compare_golden(committed, regenerated, committed["tolerances"]) == []
    # the exact fields really are compared, not skipped: detections exist and all match
    dets = [d for case in committed["detect"] for d in case["detections"]]
    assert len(dets) >= 10
    got = [d for case in regenerated["detect"] for d in case["detections"]]
    assert [(d["anchor"], d["index"]) for d in got] == [(d["anchor"], d["index"]) for d in dets]


def _perturbations(doc: dict) -> list[tuple[str, dict]]:
    """(the message the comparison must give, a perturbed copy of ``doc``)."""
    tol = doc["tolerances"]
    out = []

    def variant(needle, edit):
        d = copy.deepcopy(doc)
        edit(d)
        out.append((needle, d))

    first = ("/detect[0]/detections[0]", lambda d: d["detect"][0]["detections"][0])
    variant(f"{first[0]}/anchor", lambda d: first[1](d).update(anchor=first[1](d)["anchor"] + 1))
    variant(f"{first[0]}/label", lambda d: first[1](d).update(label="star"))
    variant(f"{first[0]}/score",
            lambda d: first[1](d).update(score=first[1](d)["score"] + 3 * tol["score"]))
    variant(f"{first[0]}/box", lambda d: first[1](d)["box"].__setitem__(
        2, first[1](d)["box"][2] + 0.05 * (first[1](d)["box"][2] - first[1](d)["box"][0])))
    variant("/detect[1]/detections", lambda d: d["detect"][1]["detections"].pop())
    variant("/detect[0]/letterbox", lambda d: d["detect"][0]["letterbox"].update(pad_y=9))
    variant("/letterbox", lambda d: d["letterbox"][2].update(scale_x=d["letterbox"][2]["scale_x"]
                                                             + 1e-12))
    variant("/input_lut[1]/lut", lambda d: d["input_lut"][1]["lut"][0].__setitem__(
        200, d["input_lut"][1]["lut"][0][200] - 1))
    variant("/classify[0]/top[0]/index", lambda d: d["classify"][0]["top"][0].update(index=9))
    variant("/detect[2]/scores/raw", lambda d: d["detect"][2]["scores"]["raw"].__setitem__(
        5, d["detect"][2]["scores"]["raw"][5] + 1))
    return out


def test_a_perturbed_golden_file_fails_here(committed, regenerated):
    for needle, perturbed in _perturbations(committed):
        problems = compare_golden(perturbed, regenerated, committed["tolerances"])
        assert problems, f"perturbing {needle} went unnoticed"
        assert any(p.startswith(needle) for p in problems), (needle, problems)


def test_differences_within_the_stated_tolerance_pass(committed, regenerated):
    tol = committed["tolerances"]
    nudged = copy.deepcopy(committed)
    det = nudged["detect"][0]["detections"][0]
    det["score"] += 0.5 * tol["score"]
    width = det["box"][2] - det["box"][0]
    det["box"][2] += 0.001 * width           # IoU stays above box_iou
    nudged["classify"][2]["top"][1]["score"] -= 0.5 * tol["score"]
    assert compare_golden(nudged, regenerated, tol) == []
    assert np.isclose(_iou([0, 0, 10, 10], [0, 0, 10, 11]), 10 / 11)
