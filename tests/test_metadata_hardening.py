"""The metadata schema and the defensive zip reader (issue 15, item 2): every hostile value or
archive of the fault-injection run is a one-line UsageError naming the problem, in
``md.read``, in loading, and in ``inspect`` (which describes the damage instead of crashing)."""

from __future__ import annotations

import copy
import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import assert_one_line_error
from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from fuzz_targets import bomb_archive  # noqa: E402

TINY = Path(__file__).parent / "golden" / "tiny_detect.tflite"


@pytest.fixture(scope="module")
def parts():
    data = TINY.read_bytes()
    flat, _ = md.split_bundle(data)
    return flat, md.read_document(data)


def _archive(entries, method=zipfile.ZIP_STORED) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in entries:
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=method)
    return bytearray(buf.getvalue())


def _with(doc, path: list, value):
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


HOSTILE = [
    (["input"], [], "'input' must be an object"),
    (["input", "height"], "28", "'input.height' must be an integer"),
    (["input", "height"], True, "'input.height' must be an integer"),
    (["input", "width"], 10 ** 6, "'input.width' must be an integer in 1..8192"),
    (["input", "pad_value"], 256, "'input.pad_value' must be an integer in 0..255"),
    (["input", "std"], [0], "'input.std[0]' must be a finite number 1e-06"),
    (["input", "mean"], [1, 2], "'input.mean' must be a list of 1 or 3 numbers"),
    (["input", "color"], "GRAY", "does not fit 3 channel(s)"),
    (["decoder", "strides"], [0], "'decoder.strides[0]' must be an integer in 1..1024"),
    (["decoder", "strides"], [32, 8], "ascending"),
    (["decoder", "score_output"], 1.5, "'decoder.score_output' must be an integer"),
    (["decoder", "box_output"], 0, "must differ"),
    (["decoder", "iou_threshold"], 7, "'decoder.iou_threshold' must be a finite number"),
    (["decoder", "max_detections"], 0, "'decoder.max_detections'"),
    (["labels"], ["a"] * 70000, "'labels' must be a list of 1..65536"),
    (["labels"], ["a\nb"], "'labels[0]' must be one line"),
    (["labels"], "abc", "'labels' must be a list"),
    (["name"], {"x": 1}, "'name' must be text"),
    (["io"], [1], "'io' must be an object"),
    (["io"], {"a": [[[[[[[[[[1]]]]]]]]]]}, "'io' is nested deeper"),
    (["flatbuffer_sha256"], "abc", "'flatbuffer_sha256' must be 64"),
    (["task"], None, "'task' must be text"),
]


@pytest.mark.parametrize("path, value, needle", HOSTILE,
                         ids=[".".join(p) + f"={str(v)[:12]}" for p, v, _ in HOSTILE])
def test_schema_names_the_bad_field(parts, path, value, needle):
    flat, doc = parts
    data = flat + bytes(_archive([("edgecnn.json", json.dumps(_with(doc, path, value)))]))
    with pytest.raises(UsageError) as info:
        md.read(data)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text, needle", [
    ('{"input": {"height": NaN}}', "NaN is not a number JSON allows"),
    ('{"input": {"height": 1e999}}', "out of range"),
    ('{"a": 1, "a": 2}', "repeats a key"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"labels": ["\\ud800"]}', ""),
    ("\xff\xfe{}", "not valid JSON"),
])
def test_json_failures_are_usage_errors(parts, text, needle):
    flat, _ = parts
    raw = text.encode("latin-1") if text.startswith("\xff") else text.encode()
    with pytest.raises(UsageError, match=needle):
        md.read(flat + bytes(_archive([("edgecnn.json", raw)])))


def _encrypted(doc: bytes) -> bytes:
    z = _archive([("edgecnn.json", doc)])
    z[z.find(b"PK\x03\x04") + 6] |= 1
    z[z.find(b"PK\x01\x02") + 8] |= 1
    return bytes(z)


def _method(doc: bytes, method: int) -> bytes:
    z = _archive([("edgecnn.json", doc)])
    z[z.find(b"PK\x01\x02") + 10] = method
    return bytes(z)


def _bad_deflate(doc: bytes) -> bytes:
    z = _archive([("edgecnn.json", doc)], zipfile.ZIP_DEFLATED)
    start = 30 + len("edgecnn.json")
    for i in range(start, start + 6):
        z[i] ^= 0xFF
    return bytes(z)


ARCHIVES = {
    "encrypted": (_encrypted, "is encrypted"),
    "unknown compression": (lambda d: _method(d, 99), "compression method 99"),
    "bzip2": (lambda d: _method(d, 12), "compression method 12"),
    "bad deflate": (_bad_deflate, "corrupt"),
    "duplicate names": (lambda d: bytes(_archive([("edgecnn.json", d), ("edgecnn.json", b"{}")])),
                        "duplicate entry names"),
    "too many entries": (lambda d: bytes(_archive([(f"f{i}", b"") for i in range(40)] +
                                                  [("edgecnn.json", d)])), "41 entries"),
    "bomb, declared": (lambda d: bomb_archive(1 << 30), "declares 1073741824 bytes"),
    "bomb, lying": (lambda d: bomb_archive(100), "corrupt"),
    "big stored entry": (lambda d: bytes(_archive([("edgecnn.json", b" " * (3 << 20))])),
                         "declares 3145728 bytes"),
}


@pytest.mark.parametrize("kind", list(ARCHIVES))
def test_zip_damage_is_a_one_line_error_and_inspect_describes_it(parts, tmp_path, kind,
                                                                  run_cli):
    flat, doc = parts
    make, needle = ARCHIVES[kind]
    data = flat + make(json.dumps(doc).encode())
    with pytest.raises(UsageError, match=needle):
        md.read(data)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert_one_line_error(run_cli("predict", path, TINY), "metadata bundle is corrupt")
    res = run_cli("inspect", path, "--json")   # the model itself is fine: described, exit 0
    assert res.exit_code == 0 and "Traceback" not in res.err, res.err
    described = json.loads(res.out)
    assert described["inputs"] and described["model_check"] and described["metadata"] is None
    assert "metadata bundle is damaged" in described["metadata_note"]
    assert described["problems"] == [described["metadata_note"]]


def test_inflating_bomb_is_refused_before_it_is_read(parts, tmp_path):
    """A 1.1 MB file whose entry inflates to 1 GiB: refused from its declared size, and one
    that lies about its size is cut at the cap; the reader's peak memory stays small."""
    flat, _ = parts
    for declared in (1 << 30, 100, 4 << 20):
        path = tmp_path / f"bomb{declared}.tflite"
        path.write_bytes(flat + bomb_archive(declared))
        assert path.stat().st_size < 1_200_000
        code = ("import sys\nfrom edgecnn.runtime import metadata as md\n"
                "from edgecnn.errors import UsageError\n"
                "try:\n    md.read(open(sys.argv[1], 'rb').read())\n    print('accepted')\n"
                "except UsageError as err:\n    print('refused', err)\n"
                "print([int(ln.split()[1]) // 1024 for ln in open('/proc/self/status')"
                " if ln.startswith('VmHWM')][0])")   # ru_maxrss survives exec: not that
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=120)
        lines = proc.stdout.strip().splitlines()
        assert lines[0].startswith("refused"), proc.stdout + proc.stderr
        assert int(lines[-1]) < 150, f"peak RSS {lines[-1]} MB"


def test_schema_damage_is_described_by_inspect(parts, tmp_path, run_cli):
    flat, doc = parts
    path = tmp_path / "m.tflite"
    path.write_bytes(flat + bytes(_archive([("edgecnn.json",
                                             json.dumps(_with(doc, ["input"], [])))])))
    res = run_cli("inspect", path)
    assert res.exit_code == 0, res.err
    assert "problem: metadata bundle is damaged: metadata 'input' must be an object" in res.out
    assert "metadata as read:" in res.out and "input 0: serving_default_image:0" in res.out


def test_old_and_new_documents_still_read(parts):
    flat, doc = parts
    legacy = md.read(flat + bytes(_archive([("edgecnn.json", json.dumps(doc))])))
    assert legacy.flatbuffer_sha256 == "" and legacy.decoder.strides == (8, 16, 32)
    minimal = {"schema": md.SCHEMA, "task": "classify", "labels": ["a", "b"],
               "input": {"height": 8, "width": 8, "channels": 1}}
    meta = md.read(flat + bytes(_archive([("edgecnn.json", json.dumps(minimal))])))
    assert meta.input.color == "GRAY" and meta.input.std == (255.0,)
    unknown_top_level = dict(minimal, future_field={"x": 1})
    assert md.read(flat + bytes(_archive([("edgecnn.json", json.dumps(unknown_top_level))])))


def test_deflated_entry_within_the_cap_is_read(parts):
    flat, doc = parts
    data = flat + bytes(_archive([("edgecnn.json", json.dumps(doc))], zipfile.ZIP_DEFLATED))
    assert md.read(data).labels == ("circle", "square", "triangle")


def test_entry_sizes_are_checked_for_every_entry(parts):
    flat, doc = parts
    z = _archive([("edgecnn.json", json.dumps(doc).encode()), ("labels.txt", b"a\n")])
    i = z.find(b"PK\x01\x02", z.find(b"PK\x01\x02") + 4)   # the second central record
    struct.pack_into("<I", z, i + 24, 1 << 31)              # labels.txt declares 2 GiB
    with pytest.raises(UsageError, match="'labels.txt' declares"):
        md.read(flat + bytes(z))
