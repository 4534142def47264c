"""The foreign layouts' golden vectors (``tests/golden/decoders_golden.json``) cannot drift:
benchmarks/make_golden_decoders.py rebuilds them with the registered decoders and the result
must equal the committed file that the Kotlin core is tested against."""

from __future__ import annotations

import importlib.util
import json
import platform
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "decoders_golden.json"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location(
        "make_golden_decoders", ROOT / "benchmarks" / "make_golden_decoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(GOLDEN.read_text())


def test_detections_regenerate_bit_for_bit_everywhere(generator, committed):
    # No transcendental function in these decoders: every platform gives the same floats.
    assert generator.build_golden()["detect"] == committed["detect"], \
        "run: python benchmarks/make_golden_decoders.py"


@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="written on x86_64; the sigmoid classify cases use numpy's float32 "
                    "exp, which may differ in the last bits elsewhere")
def test_golden_file_matches_generator(generator):
    text = GOLDEN.read_text()
    assert generator.dumps(generator.build_golden()) == text, \
        "run: python benchmarks/make_golden_decoders.py"
    assert len(text) < 100_000


def test_cases_cover_what_the_kotlin_core_must_handle(committed):
    cases = {c["name"]: c for c in committed["detect"]}
    by_type: dict[str, list[dict]] = {}
    for case in cases.values():
        by_type.setdefault(case["decoder"]["type"], []).append(case)
    assert set(by_type) == {"ultralytics_yolo", "ultralytics_end2end", "ssd_postprocess"}
    for type_, group in by_type.items():
        assert any(c["detections"] for c in group), type_
        assert any(not c["detections"] for c in group), f"{type_}: no empty case"
        assert any(o["dtype"] != "float32" for c in group for o in c["outputs"]), type_
    yolo = by_type["ultralytics_yolo"]
    shapes = [c["outputs"][0]["shape"] for c in yolo]
    k = [4 + c["decoder"]["objectness"] + len(c["labels"]) for c in yolo]
    assert any(s[1] == kk != s[2] for s, kk in zip(shapes, k))   # channels first
    assert any(s[2] == kk != s[1] for s, kk in zip(shapes, k))   # transposed
    assert any(c["decoder"]["objectness"] for c in yolo)
    assert {c["decoder"]["normalized"] for c in yolo} == {True, False}
    assert any(c["classes"] for c in yolo)
    assert {c["input"]["resize"] for c in cases.values()} == {"letterbox", "stretch"}
    assert any(c["letterbox"]["pad_y"] > 0 for c in cases.values())
    # suppression happened: an overlapping same-class anchor is missing from the result
    first = cases["yolo_int8_channels_first_letterbox"]["detections"]
    assert [d["anchor"] for d in first] == [3, 17, 5, 9]
    assert any(d["score"] == 0.25 for d in first)   # exactly at the threshold: kept
    ssd = cases["ssd_float_reordered_offset"]
    assert [d["index"] for d in ssd["detections"]] == [2, 0, 1]   # class_offset -1 applied
