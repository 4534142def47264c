"""The model probe's server starts in a bare interpreter (no site-packages imports first).

``probe_server.py`` runs as a script from ``edgecnn/runtime``, next to ``types.py``. Where
site-packages' ``.pth`` files import the standard library's ``types`` at start-up (this
development machine) the shadowing stayed hidden; in a plain venv (Debian's Python, as on a
Raspberry Pi, found by ``.ci/arm64``) every probe failed. ``python -S`` with site-packages on
``PYTHONPATH`` is that bare start-up, here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import edgecnn.runtime.modelcheck as modelcheck
from edgecnn.runtime.interpreter import interpreter_module

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny_detect.tflite"


def test_probe_server_runs_a_model_without_site_imports():
    server = Path(modelcheck.__file__).with_name("probe_server.py")
    site_dirs = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(site_dirs))
    data = GOLDEN.read_bytes()
    request = {"size": len(data), "threads": 1, "timeout": 60, "memory": 0}
    out = subprocess.run([sys.executable, "-S", str(server), interpreter_module().__name__],
                         input=json.dumps(request).encode() + b"\n" + data,
                         capture_output=True, env=env, timeout=300)
    lines = out.stdout.decode().splitlines()
    assert lines and json.loads(lines[0]) == {"status": "ready"}, out.stderr.decode()[-1500:]
    assert json.loads(lines[1])["status"] == "ok", lines
