"""The model check and probe (issue 15, item 1): the measured faults rebuilt from the committed
tiny detector. Loads that could kill the process run in a subprocess through the CLI, so a
regression fails the test instead of the test run."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.flatbuf import FlatbufferError, root
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.modelcheck import ModelCheckError, Probe, check_model

TINY = Path(__file__).parent / "golden" / "tiny_detect.tflite"


@pytest.fixture(scope="module")
def tiny():
    data = TINY.read_bytes()
    flat, _ = md.split_bundle(data)
    return flat, md.read(data)


def _tensor(flat: bytes, name: str):
    for t in root(flat).tables(2)[0].tables(0):
        if t.string(3) == name.encode():
            return t
    raise KeyError(name)


def _vector_pos(table, field: int) -> int:
    return table._vector(field, 1, "test")[0]  # noqa: SLF001 - a test pokes bytes


def _put(flat: bytes, pos: int, fmt: str, value) -> bytes:
    b = bytearray(flat)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _assert_refused(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_scale_that_aborts_the_interpreter_is_refused(tiny, tmp_path):
    flat, _ = tiny
    weights = _tensor(flat, "functional_1/down4_1/convolution")
    bad = _put(flat, _vector_pos(weights.table(4), 2), "<f", 1e30)   # one scale, 4 bytes
    path = tmp_path / "abort.tflite"
    path.write_bytes(bad)
    check_model(bad)   # finite and positive: only the probe can tell
    proc = _cli("predict", path, TINY.with_suffix(".json"))
    _assert_refused(proc, "crashed the interpreter in the probe", "SIGABRT")
    with pytest.raises(UsageError, match="crashed the interpreter"):
        TFLiteModel(bad)   # in this process: the probe took the abort, not us


@pytest.mark.parametrize("batch, needle", [
    (40000, "tensors would need"),                 # refused from the file alone
    # the probe measured it, or (slow machine, emulated aarch64) gave up waiting for it
    (5000, ("loading the model took", "did not load and run in time")),
])
def test_changed_batch_size_is_refused_before_it_allocates(tiny, tmp_path, batch, needle):
    flat, _ = tiny
    image = _tensor(flat, "serving_default_image:0")
    path = tmp_path / "batch.tflite"
    path.write_bytes(_put(flat, _vector_pos(image, 0), "<i", batch))
    code = ("import sys\nfrom edgecnn.cli import main\nrc = main(['inspect', sys.argv[1]])"
            "\nprint([int(ln.split()[1]) // 1024 for ln in open('/proc/self/status')"
            " if ln.startswith('VmHWM')][0], file=sys.stderr)"
            "\nsys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    alternatives = needle if isinstance(needle, tuple) else (needle,)
    _assert_refused(proc)
    assert any(n in proc.stderr for n in alternatives), proc.stderr
    assert int(proc.stderr.strip().splitlines()[-1]) < 300, "peak RSS (MB) of the loader"


def test_tensor_name_that_is_not_utf8(tiny, tmp_path):
    flat, _ = tiny
    pos = flat.find(b"serving_default_image:0")
    path = tmp_path / "name.tflite"
    path.write_bytes(_put(flat, pos + 2, "<B", 0xFF))
    _assert_refused(_cli("inspect", path), "name is not UTF-8")
    with pytest.raises(ModelCheckError, match="not UTF-8"):
        TFLiteModel(path)


def test_a_changed_byte_is_caught_by_the_checksum(tiny, tmp_path):
    flat, meta = tiny
    hashed = md.attach(flat, meta)
    weights = _tensor(flat, "functional_1/down0_1/convolution")
    buffer = root(flat).tables(4)[weights.scalar(2, "I")]
    pos = _vector_pos(buffer, 0) + 5
    changed = bytearray(hashed)
    changed[pos] ^= 0x01   # one weight, one bit: loads fine, computes something else
    path = tmp_path / "changed.tflite"
    path.write_bytes(bytes(changed))
    _assert_refused(_cli("predict", path, TINY.with_suffix(".json")),
                    "does not match the SHA-256")
    model = TFLiteModel(path, verify=False)          # --no-verify: checked and probed instead
    assert model.checksum is md.Checksum.SKIPPED and model.probed
    proc = _cli("inspect", path, "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["checksum"] == "mismatch" and doc["loadable"] and doc["inputs"]


def test_verified_files_skip_the_probe_old_files_do_not(tiny, tmp_path):
    flat, meta = tiny
    hashed = tmp_path / "hashed.tflite"
    hashed.write_bytes(md.attach(flat, meta))
    model = TFLiteModel(hashed)
    assert model.checksum is md.Checksum.VERIFIED and not model.probed
    assert TFLiteModel(hashed, probe=Probe.ALWAYS).probed
    old = TFLiteModel(TINY)   # written before checksums: still loads, probed first
    assert old.checksum is md.Checksum.ABSENT and old.probed
    assert old.metadata == meta
    out = old.run(np.zeros(old.input.shape, np.float32))
    assert [o.shape for o in out] == [(1, 84, 3), (1, 84, 4)]
    proc = _cli("inspect", TINY)
    assert proc.returncode == 0, proc.stderr
    assert "checksum: none" in proc.stdout and "model check: passed" in proc.stdout
    proc = _cli("inspect", hashed)
    assert proc.returncode == 0 and "checksum: verified" in proc.stdout


def test_every_truncation_and_header_damage_is_a_check_error(tiny):
    flat, _ = tiny
    for cut in range(8, len(flat), 397):
        with pytest.raises(ModelCheckError):
            check_model(flat[:cut])
    for pos in range(0, 64, 4):      # root offset, identifier, root vtable
        for value in (0, 0xFFFFFFFF, 0x7FFFFFFF, len(flat), 3):
            try:
                check_model(_put(flat, pos, "<I", value))
            except ModelCheckError:
                pass


def test_reader_refuses_offsets_outside_the_buffer():
    with pytest.raises(FlatbufferError):
        root(b"\xff\xff\xff\x7fTFL3")
    with pytest.raises(FlatbufferError):
        root(b"\x08\x00\x00\x00TFL3\xf0\xff\xff\xff")   # vtable before the buffer start


def test_tensor_limit_override(tiny, monkeypatch):
    flat, _ = tiny
    monkeypatch.setenv("EDGECNN_MAX_TENSOR_MB", "0.01")
    with pytest.raises(ModelCheckError, match="EDGECNN_MAX_TENSOR_MB"):
        check_model(flat)
    monkeypatch.setenv("EDGECNN_MAX_TENSOR_MB", "lots")
    with pytest.raises(UsageError, match="not a number"):
        check_model(flat)
