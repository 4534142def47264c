"""The Kotlin core of the Android demo (android_demo/core) against the Python runtime's golden
vectors: compiled with Debian's kotlinc and run with JUnit 4 by android_demo/core/test.sh.

kotlinc is slow (~30-60 s), so the jar is built once per session and reused by every test here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "android_demo" / "core" / "test.sh"
GOLDEN = ROOT / "tests" / "golden" / "detect_golden.json"
# Compiling takes ~30-80 s on a shared 2-core machine: a slow test (CI still runs it).
pytestmark = pytest.mark.slow

TEST_CLASSES = ("GoldenTest", "TinyModelTest", "BundleTest", "JsonTest", "MetadataTest",
                "DetectTest", "PreprocessTest", "ModelCheckTest", "TrackerTest",
                "DecodersGoldenTest")


def _need_toolchain() -> None:
    missing = [tool for tool in ("kotlinc", "java") if shutil.which(tool) is None]
    missing += [jar for jar in ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")
                if not os.environ.get("JUNIT_JAR") and not Path(jar).is_file()]
    if not missing:
        return
    reason = f"Kotlin core tests need {', '.join(missing)} (apt-get install kotlin junit4)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run them", pytrace=False)
    pytest.skip(reason)


def _run(build: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(build)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **env})


def _summary(proc: subprocess.CompletedProcess) -> dict[str, int]:
    match = re.search(r"EDGECNN-CORE-RESULT tests=(\d+) failures=(\d+) skipped=(\d+)", proc.stdout)
    assert match, f"no result line\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return dict(zip(("tests", "failures", "skipped"), map(int, match.groups())))


@pytest.fixture(scope="module")
def core_run(tmp_path_factory):
    """Compile once and run every JUnit test against the committed golden files."""
    _need_toolchain()
    build = tmp_path_factory.mktemp("android_core")
    return build, _run(build)


def test_kotlin_core_passes_all_junit_tests(core_run):
    _, proc = core_run
    summary = _summary(proc)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert summary["failures"] == 0
    assert summary["skipped"] == 0, "no Kotlin test may be skipped: every input is provided"
    assert summary["tests"] >= 40


def test_every_test_class_ran(core_run):
    _, proc = core_run
    ran = dict(re.findall(r"EDGECNN-CORE-CLASS (\w+) (\d+)", proc.stdout))
    for name in TEST_CLASSES:
        assert int(ran.get(name, 0)) > 0, f"{name} did not run: {ran}"


def test_golden_comparison_can_fail(core_run, tmp_path):
    """A golden file with one detection's score moved by 0.01 must make the Kotlin tests fail."""
    build, first = core_run
    assert first.returncode == 0
    doc = json.loads(GOLDEN.read_text())
    case = next(c for c in doc["detect"] if c["detections"])
    case["detections"][0]["score"] += 0.01
    bad = tmp_path / "golden_perturbed.json"
    bad.write_text(json.dumps(doc))
    proc = _run(build, EDGECNN_GOLDEN=str(bad))
    assert proc.returncode != 0
    assert _summary(proc)["failures"] >= 1
    assert "detectionsMatchPythonRuntime" in proc.stdout
    assert case["name"] in proc.stdout


def test_tracker_golden_comparison_can_fail(core_run, tmp_path):
    """A tracker golden file with one track ID changed must make the Kotlin tracker test fail."""
    build, first = core_run
    assert first.returncode == 0
    doc = json.loads((ROOT / "tests" / "golden" / "track_golden.json").read_text())
    frame = next(f for f in doc["frames"][10:] if f["ids"])
    frame["ids"][0] += 1
    bad = tmp_path / "track_golden_perturbed.json"
    bad.write_text(json.dumps(doc))
    proc = _run(build, EDGECNN_TRACK_GOLDEN=str(bad))
    assert proc.returncode != 0
    assert "tracksMatchPythonFrameByFrame" in proc.stdout


@pytest.mark.parametrize("field,delta", [("score", 1e-6), ("anchor", 1)])
def test_foreign_decoder_golden_comparison_can_fail(core_run, tmp_path, field, delta):
    """One foreign-layout detection's score moved by 1e-6 (or its anchor by one) must make the
    Kotlin comparison fail: the tolerances are that tight."""
    build, first = core_run
    assert first.returncode == 0
    doc = json.loads((ROOT / "tests" / "golden" / "decoders_golden.json").read_text())
    case = next(c for c in doc["detect"] if c["decoder"]["type"] == "ssd_postprocess"
                and c["detections"])
    case["detections"][-1][field] += delta
    bad = tmp_path / "decoders_golden_perturbed.json"
    bad.write_text(json.dumps(doc))
    proc = _run(build, EDGECNN_DECODERS_GOLDEN=str(bad))
    assert proc.returncode != 0
    assert _summary(proc)["failures"] == 1
    assert "detectionsMatchPythonDecoders" in proc.stdout and case["name"] in proc.stdout
