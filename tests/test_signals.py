"""SIGTERM is handled like SIGINT: a real ``edgecnn train``/``convert`` subprocess that gets
one exits with 130 and leaves no temp folder, no half-written output behind; and a command whose
KeyboardInterrupt was swallowed (raised inside a ``__del__``) still commits nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecnn import interrupts
from edgecnn.fsutil import atomic_dir, write_atomic


def _start(args: list[str], tmpdir: Path) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmpdir), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "edgecnn", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, found, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found():
            return
        if proc.poll() is not None:
            pytest.fail(f"finished before the signal could be sent: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the temp output never appeared")


def _stop(proc: subprocess.Popen, sig: signal.Signals) -> str:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{sig.name} did not stop the command")
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err
    return err


def test_train_leaves_no_temp_run_folder(tmp_path, sig=signal.SIGTERM):
    pytest.importorskip("tensorflow")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "runs" / "r"
    proc = _start(["train", "--data", "digits", "--arch", "dsnet_test", "--epochs", "200",
                   "--quiet", "--out", str(out)], tmpdir)
    # the checkpoint of the first epoch: training is under way inside the temp run folder
    _wait_for(proc, lambda: any((p / "model.keras").exists() for p in out.parent.glob(".r.*")))
    _stop(proc, sig)
    assert list(out.parent.iterdir()) == [], list(out.parent.iterdir())
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_convert_leaves_no_export_folder(tmp_path, sig):
    pytest.importorskip("tensorflow")
    import model_factory as mf

    run = mf.digits_run()
    before = set(run.iterdir())
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "out" / "m.tflite"
    proc = _start(["convert", str(run), "--quant", "int8", "--calib-size", "16",
                   "--held-out", "0", "-o", str(out)], tmpdir)
    _wait_for(proc, lambda: any(tmpdir.glob("edgecnn-export-*")))
    _stop(proc, sig)
    assert list(tmpdir.iterdir()) == [], list(tmpdir.iterdir())
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert set(run.iterdir()) == before


class _InterruptedInDel:
    """Sends SIGTERM to this process from ``__del__``: Python prints and drops the
    KeyboardInterrupt the handler raises there, as it does in TensorFlow's finalizers."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):   # give the handler a bytecode boundary to run at
            pass


def test_swallowed_interrupt_still_commits_nothing(tmp_path, capfd):
    out_file = tmp_path / "result.bin"
    out_dir = tmp_path / "run"
    with interrupts.handling_signals():
        obj = _InterruptedInDel()
        # the KeyboardInterrupt raised inside __del__ is dropped by Python; the handler raises it
        # again outside, without the "Exception ignored" traceback (as in JAX's GC callback)
        with pytest.raises(KeyboardInterrupt):
            del obj
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pass
        assert "Traceback" not in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            write_atomic(out_file, b"finished anyway")
        with pytest.raises(KeyboardInterrupt), atomic_dir(out_dir) as tmp:
            (tmp / "model.keras").write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # outside the block SIGTERM is back to its default and writes go through again
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    write_atomic(out_file, b"ok")
    assert out_file.read_bytes() == b"ok"


def test_signal_handlers_are_restored_by_the_cli(run_cli):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert run_cli("--version").exit_code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
