"""Bounded fuzzing in the normal test run (seconds): hypothesis over metadata documents and
image arrays in this process, and a short ``benchmarks/fuzz.py`` run for mutated models,
metadata, images and malformed datasets of every reader, whose loads go through worker
processes so a native crash is counted, not fatal.
``python benchmarks/fuzz.py`` runs the long version (docs/BENCHMARKS.md, "Robustness")."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from edgecnn.errors import UsageError  # noqa: E402
from edgecnn.runtime import metadata as md  # noqa: E402
from edgecnn.runtime.preprocess import Preprocessor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "golden" / "tiny_detect.tflite"
FLAT, _ = md.split_bundle(TINY.read_bytes())
DOC = md.read_document(TINY.read_bytes())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) |
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8),
                                                                     children, max_size=5),
    max_leaves=20)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _bundle(doc) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("edgecnn.json", json.dumps(doc))
    return FLAT + buf.getvalue()


@FAST
@given(section=st.sampled_from(["", "input", "decoder"]), key=st.text(max_size=12) |
       st.sampled_from(["height", "width", "channels", "mean", "std", "pad_value", "strides",
                        "labels", "task", "io", "box_output", "color", "resize", "input"]),
       value=json_values)
def test_any_metadata_value_reads_or_is_a_usage_error(section, key, value):
    doc = json.loads(json.dumps(DOC))
    (doc[section] if section else doc)[key] = value
    try:
        meta = md.read(_bundle(doc))
    except UsageError as err:
        assert "\n" not in str(err)
        return
    assert meta.input.height >= 1 and all(s > 0 for s in meta.input.std)


@FAST
@given(data=st.binary(max_size=400), where=st.integers(0, 600))
def test_any_bytes_in_the_archive_read_or_are_a_usage_error(data, where):
    bundle = bytearray(_bundle(DOC)[len(FLAT):])
    bundle[where % len(bundle):where % len(bundle) + len(data)] = data
    try:
        md.read(FLAT + bytes(bundle))
    except UsageError:
        pass


@pytest.fixture(scope="module")
def pre():
    from edgecnn.runtime.model import TFLiteModel

    model = TFLiteModel(TINY, threads=1)
    meta = model.metadata
    return (Preprocessor(meta.input, model.input),
            Preprocessor(meta.input.__class__(64, 64, 3, resize="stretch"), model.input))


@FAST
@given(image=hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.float32, np.int8]),
                        hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=40)),
       color=st.sampled_from(["BGR", "RGB", "GRAY", "bgr", "XYZ"]),
       flip=st.booleans())
def test_any_array_preprocesses_or_is_a_usage_error(pre, image, color, flip):
    if flip and image.ndim >= 2:
        image = image[::-1, ::2]
    for p in pre:
        try:
            tensor, _ = p(image, color)
        except UsageError:
            continue
        assert tensor.shape == (1, 64, 64, 3) and tensor.dtype == np.int8


def test_short_fuzz_run_has_no_crash_or_hang():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--models",
                           "200", "--metadata", "80", "--images", "150", "--datasets", "60",
                           "--seed", "7", "--json"], capture_output=True, text=True, timeout=600)
    doc = json.loads(proc.stdout)
    assert [r["target"] for r in doc["rows"]] == ["models", "metadata", "images", "datasets"]
    for row in doc["rows"]:
        assert row["tried"] > 0 and row["crashed"] == 0 and row["hangs"] == 0, row
        assert row["peak_rss_mb"] < 500, row
    assert proc.returncode == 0
