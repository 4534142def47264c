"""The import layers pyproject.toml declares hold (import-linter), and the check can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint(config: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or pytest.skip("import-linter is not installed ([dev])")
    return subprocess.run([exe, "--config", str(config), "--no-cache"], cwd=ROOT, text=True,
                          capture_output=True, timeout=600, check=False)


def test_layer_contracts_are_kept():
    proc = _lint(ROOT / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    # the same contract, with the runtime placed above the camera it is imported by
    text = (ROOT / "pyproject.toml").read_text()
    swapped = text.replace('"edgecnn.camera",\n', "__CAM__", 1)
    swapped = swapped.replace('"edgecnn.runtime",\n', '"edgecnn.runtime",\n    "edgecnn.camera",\n', 1)
    swapped = swapped.replace("__CAM__", "", 1)
    assert swapped != text
    config = tmp_path / "pyproject.toml"
    config.write_text(swapped)
    proc = _lint(config)
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "edgecnn.camera" in proc.stdout

