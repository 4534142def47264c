"""The device side must run without TensorFlow: import it with TensorFlow made unimportable."""

import subprocess
import sys
import textwrap

import pytest

DEVICE_MODULES = ["edgecnn", "edgecnn.cli", "edgecnn.runtime"]
OPTIONAL_DEVICE_MODULES = ["edgecnn.runtime.detector", "edgecnn.runtime.runner",
                           "edgecnn.runtime.decoders.anchor_free_ltrb", "edgecnn.camera.loop",
                           "edgecnn.bench.latency", "edgecnn.predict", "edgecnn.export.android",
                           "edgecnn.runtime.tracking", "edgecnn.camera.serve",
                           "edgecnn.camera.deploy"]
FORBIDDEN = ("tensorflow", "keras", "tf_keras", "matplotlib", "sklearn", "torch")


def _import_without_tf(modules: list[str]) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import importlib, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {FORBIDDEN!r}:
                    raise ImportError('blocked for the test: ' + name)
        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            importlib.import_module(name)
        loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))
        print('LOADED', loaded)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_runtime_imports_without_tensorflow():
    proc = _import_without_tf(DEVICE_MODULES)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout


@pytest.mark.parametrize("module", OPTIONAL_DEVICE_MODULES)
def test_device_packages_import_without_tensorflow(module):
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is missing")
    proc = _import_without_tf([module])
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout


def test_cli_help_lists_commands_without_importing_them():
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for name in ("quickstart", "train", "convert", "bench", "camera"):
        assert name in proc.stdout
