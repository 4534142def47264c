"""Shared fixtures: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


# Prepended to code run in a fresh interpreter: makes TensorFlow and Keras unimportable, so a
# device-side path that reaches for them fails the test.
BLOCK_TENSORFLOW = """import sys
class _BlockTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, _BlockTensorFlow())
"""


@dataclass
class CliResult:
    exit_code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``edgecnn ARGS...`` in this process; returns exit code, stdout and stderr."""
    from edgecnn.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: CliResult, *needles: str, code: int = 2) -> None:
    """A usage error: the given exit code, one 'error:' line naming the problem, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.out, result.err)
    lines = [ln for ln in result.err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or ln.startswith("Error:")]
    assert errors, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle.lower() in result.err.lower(), (needle, result.err)


@dataclass
class QuickstartRun:
    """A ``--fast`` quickstart run as a user would: stopped by SIGTERM after its first step,
    then finished with ``--resume``. ``root`` is the folder it ran in (``root/quickstart-run``)."""

    root: object
    out: object
    interrupted: CliResult
    resumed: CliResult


@pytest.fixture(scope="session")
def fast_quickstart(tmp_path_factory) -> QuickstartRun:
    """One smoke-test quickstart per session, shared by the quickstart and README tests."""
    import signal
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("qs")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    args = [sys.executable, "-m", "edgecnn", "quickstart", "--fast", "--out", "quickstart-run"]
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    head = []
    for line in proc.stdout:   # the first step's line: it finished, the next one is running
        head.append(line)
        if line.startswith("[1/"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=600)
    interrupted = CliResult(proc.returncode, "".join(head) + out, err)
    done = subprocess.run(args + ["--resume"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    return QuickstartRun(root, root / "quickstart-run", interrupted,
                         CliResult(done.returncode, done.stdout, done.stderr))
