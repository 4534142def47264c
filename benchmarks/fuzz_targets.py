"""Fuzz targets for ``benchmarks/fuzz.py``: each one makes one hostile input and feeds it to an
edgecnn entry point the way a user would reach it.

A target is one function ``fn(rng, work) -> str`` registered with ``@target(name, expected)``:
it builds its input from ``rng`` (a ``random.Random`` seeded per case, so a case is
reproducible by its number), may write files under ``work``, calls the entry point and returns
``"loaded"`` when it was accepted. Raising one of ``expected`` (the project's own errors) counts
as ``"refused"``; any other exception, or the process dying, is a crash.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn.errors import EdgeCNNError

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ROOT / "tests" / "golden" / "tiny_detect.tflite"


@dataclass(frozen=True)
class Target:
    name: str
    fn: Callable[[random.Random, Path], str]
    expected: tuple[type[BaseException], ...]
    warm: tuple[Callable[[], object], ...] = ()   # cached inputs built before the clock runs


TARGETS: dict[str, Target] = {}


def target(name: str, expected: tuple[type[BaseException], ...] = (EdgeCNNError,),
           warm: tuple[Callable[[], object], ...] = ()):
    def register(fn):
        TARGETS[name] = Target(name, fn, expected, warm)
        return fn
    return register


# ---- the seed model -----------------------------------------------------------------------

@lru_cache(maxsize=1)
def seed_model() -> tuple[bytes, bytes, dict]:
    """(flatbuffer, hashed file bytes, metadata document) of the committed tiny detector."""
    from edgecnn.runtime import metadata as md

    data = TINY_MODEL.read_bytes()
    flat, _ = md.split_bundle(data)
    hashed = md.attach(flat, md.read(data))
    return flat, hashed, md.read_document(hashed)


@lru_cache(maxsize=1)
def hot_spots() -> tuple[tuple[int, str], ...]:
    """Byte positions where one change matters most: quantization scales and zero points,
    shape dimensions, tensor types and buffer indices, operator tensor lists, vtable offsets."""
    from edgecnn.runtime.flatbuf import root

    flat = seed_model()[0]
    spots: list[tuple[int, str]] = []
    graph = root(flat).tables(2)[0]

    def vector(table, field: int, size: int, kind: str) -> None:
        span = table._vector(field, size, kind)  # noqa: SLF001 - positions, not values
        if span:
            spots.extend((span[0] + size * i, kind) for i in range(span[1]))

    for t in graph.tables(0):
        vector(t, 0, 4, "i32")
        for field, kind in ((1, "i8"), (2, "u32")):
            pos = t._field(field, 1)  # noqa: SLF001
            if pos is not None:
                spots.append((pos, kind))
        q = t.table(4)
        if q is not None:
            vector(q, 2, 4, "f32")
            vector(q, 3, 8, "i64")
        spots.append((t.vtable + 4, "u16"))
    for op in graph.tables(3):
        vector(op, 1, 4, "i32")
        vector(op, 2, 4, "i32")
    return tuple(spots)


_INTS = (0, 1, -1, 2, 3, 127, 128, 255, 256, 40000, 65535, 1 << 20, 1 << 30, (1 << 31) - 1,
         -(1 << 31))
_FLOATS = (0.0, -1.0, 1e-45, 1e-30, 1e30, 100.0, float("nan"), float("inf"), -float("inf"),
           3.4e38)


def mutate_model(rng: random.Random, data: bytes, limit: int) -> bytes:
    """1-4 changes inside the first ``limit`` bytes: random bytes, or hostile values at hot
    spots (half the cases)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5:
            pos, kind = rng.choice(hot_spots())
            fmt = {"i32": "<i", "u32": "<I", "i8": "<b", "u16": "<H", "f32": "<f",
                   "i64": "<q"}[kind]
            if kind == "f32":
                value = rng.choice(_FLOATS)
            else:
                bits = struct.calcsize(fmt) * 8
                lo, hi = (0, (1 << bits) - 1) if fmt[1].isupper() else \
                    (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
                value = min(hi, max(lo, rng.choice(_INTS)))
            struct.pack_into(fmt, b, pos, value)
        elif rng.random() < 0.7:
            b[rng.randrange(limit)] = rng.randrange(256)
        else:
            pos = rng.randrange(limit - 4)
            struct.pack_into("<i", b, pos, rng.choice(_INTS))
    return bytes(b)


# ---- targets -------------------------------------------------------------------------------

@target("models", warm=(lambda: seed_model(), lambda: hot_spots()))
def models(rng: random.Random, work: Path) -> str:
    """A mutated tiny detector (flatbuffer bytes changed, metadata intact) through the loader
    with --no-verify (model check + probe + load + one run), then ``inspect``'s path."""
    from edgecnn.runtime.model import TFLiteModel
    from edgecnn.runtime.summary import describe_model

    flat, hashed, _ = seed_model()
    data = mutate_model(rng, hashed, len(flat))
    path = work / "m.tflite"
    path.write_bytes(data)
    describe_model(path)   # never raises for damage: it describes it
    model = TFLiteModel(path, threads=1, verify=False)
    model.run(*[np.zeros(i.shape, np.float32) for i in model.inputs])
    return "loaded"


_HOSTILE = ([], {}, "28", 256, -1, 0, [0], [0.0], 1e308, -1e308, True, None, "x" * 5000,
            [[[[]]]], list(range(100)), "\udcff", 2 ** 70, 0.5)


def _mutate_doc(rng: random.Random, doc: dict) -> dict | str:
    doc = json.loads(json.dumps(doc))
    choice = rng.random()
    if choice < 0.05:
        return "[" * rng.choice((100, 1000, 100000)) + "]" * 3
    if choice < 0.1:
        return json.dumps(doc).replace(str(doc["input"]["height"]), rng.choice(
            ("NaN", "Infinity", "1e999", "-0", "9" * 5000)), 1)
    if choice < 0.15:
        doc["labels"] = ["l"] * rng.choice((0, 1, 70000, 300000))
        return doc
    sections = [doc, doc["input"], doc.get("decoder") or doc["input"]]
    for _ in range(rng.randint(1, 3)):
        sec = rng.choice(sections)
        key = rng.choice(sorted(sec) + ["unknown", "schema"])
        if rng.random() < 0.2:
            sec.pop(key, None)
        else:
            sec[key] = rng.choice(_HOSTILE)
    return doc


def _zip(entries: list[tuple[str, bytes, int]]) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload, method in entries:
            zf.writestr(zipfile.ZipInfo(name), payload, compress_type=method)
    return bytearray(buf.getvalue())


@lru_cache(maxsize=1)
def deflate_bomb() -> bytes:
    """A raw deflate stream of exactly 1 GiB of zeros in ~1 MB, built in milliseconds: one MiB
    compressed and closed with a full flush (no reference to earlier data) repeats as is."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    part = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    return part * 1024 + b"\x03\x00"   # + an empty final block


def bomb_archive(declared: int = 1 << 30) -> bytes:
    """A zip whose ``edgecnn.json`` inflates to 1 GiB from ~1 MB; ``declared`` is the size its
    headers claim (the truth, or a lie that only the actual-size cap catches)."""
    bomb = deflate_bomb()
    name = b"edgecnn.json"
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(bomb), declared,
                        len(name), 0) + name
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, len(bomb),
                          declared, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(bomb), 0)
    return local + bomb + central + end


def _zip_damage(rng: random.Random, doc_bytes: bytes) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return bomb_archive(rng.choice((1 << 30, 100)))
    if kind == 1:   # encrypted flag
        z = _zip([("edgecnn.json", doc_bytes, zipfile.ZIP_STORED)])
        for sig in (b"PK\x03\x04", b"PK\x01\x02"):
            i = z.find(sig)
            z[i + (6 if sig == b"PK\x03\x04" else 8)] |= 1
        return bytes(z)
    if kind == 2:   # unknown compression method
        z = _zip([("edgecnn.json", doc_bytes, zipfile.ZIP_STORED)])
        i = z.find(b"PK\x01\x02")
        z[i + 10] = rng.choice((1, 9, 12, 14, 99))
        return bytes(z)
    if kind == 3:   # bad deflate data
        z = _zip([("edgecnn.json", doc_bytes, zipfile.ZIP_DEFLATED)])
        start = 30 + len("edgecnn.json")
        for _ in range(4):
            z[start + rng.randrange(min(40, len(z) - start))] ^= 0xFF
        return bytes(z)
    if kind == 4:   # duplicate names
        return bytes(_zip([("edgecnn.json", doc_bytes, 0), ("edgecnn.json", b"{}", 0)]))
    z = _zip([("edgecnn.json", doc_bytes, zipfile.ZIP_STORED), ("labels.txt", b"a\n", 0)])
    for _ in range(rng.randint(1, 6)):   # random bytes anywhere in the archive
        z[rng.randrange(len(z))] = rng.randrange(256)
    return bytes(z)


@target("metadata", warm=(lambda: seed_model(), lambda: deflate_bomb()))
def metadata(rng: random.Random, work: Path) -> str:
    """A mutated metadata archive on an intact flatbuffer: JSON values of the wrong type or
    range, deep nesting, NaN/inf, huge label lists, and zip damage (bombs, encryption,
    unknown compression, bad deflate, duplicates, random bytes); read, inspected, loaded."""
    from edgecnn.runtime import load
    from edgecnn.runtime import metadata as md
    from edgecnn.runtime.summary import describe_model

    flat, _, doc = seed_model()
    if rng.random() < 0.6:
        mutated = _mutate_doc(rng, doc)
        raw = (mutated if isinstance(mutated, str) else json.dumps(mutated)).encode("utf-8",
                                                                                    "replace")
        bundle = bytes(_zip([("edgecnn.json", raw, zipfile.ZIP_STORED)]))
    else:
        bundle = _zip_damage(rng, json.dumps(doc).encode())
    path = work / "m.tflite"
    path.write_bytes(flat + bundle)
    describe_model(path)
    md.read(path.read_bytes())
    run_image(load(path, threads=1), np.zeros((48, 64, 3), np.uint8), "BGR")
    return "loaded"


def run_image(runner, image, color: str):
    """One image through a runner (the runtime's protocol: Classifier, Detector, ...)."""
    return runner(image, color)


def _image_bytes(rng: random.Random) -> bytes:
    import cv2

    h, w = rng.randint(1, 64), rng.randint(1, 64)
    ext = rng.choice((".png", ".jpg", ".bmp", ".webp"))
    arr = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (h, w, 3), np.uint8)
    data = bytearray(cv2.imencode(ext, arr)[1].tobytes())
    kind = rng.randrange(4)
    if kind == 0 and ext == ".png":          # forged size in IHDR
        struct.pack_into(">II", data, 16, rng.choice((40000, 1 << 20, 0)), rng.choice((40000, 0)))
    elif kind == 0 and ext == ".bmp":
        struct.pack_into("<ii", data, 18, rng.choice((40000, -40000, 0)), 40000)
    elif kind == 1:
        data = data[:rng.randrange(1, len(data))]
    elif kind == 2:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@lru_cache(maxsize=1)
def _runners():
    from edgecnn.runtime import Classifier, load
    from edgecnn.runtime import metadata as md
    from edgecnn.runtime.model import TFLiteModel

    flat, hashed, _ = seed_model()
    det = load(hashed, threads=1)
    # the same flatbuffer as a 252-class classifier with a stretch resize: the other path
    meta = md.Metadata(task="classify", labels=tuple(f"c{i}" for i in range(252)),
                       input=md.InputSpec(64, 64, 3, resize="stretch"),
                       output_activation="none")
    clf = Classifier(TFLiteModel(md.attach(flat, meta), threads=1))
    return det, clf


@target("images", expected=(EdgeCNNError, ValueError), warm=(lambda: _runners(),))
def images(rng: random.Random, work: Path) -> str:
    """Image files with forged headers, truncated or flipped bytes through predict's reader,
    and arrays of any shape, dtype and stride through the runtime's preprocessing."""
    from edgecnn.predict import read_bgr

    det, clf = _runners()
    if rng.random() < 0.5:
        path = work / "i.img"
        path.write_bytes(_image_bytes(rng))
        image = read_bgr(path)
    else:
        shape = [rng.choice((0, 1, 2, 3, 17, 640)) for _ in range(rng.choice((1, 2, 3, 3, 4)))]
        if len(shape) == 3 and rng.random() < 0.6:
            shape[2] = rng.choice((1, 3, 4))
        dtype = rng.choice((np.uint8, np.uint8, np.uint16, np.float32, np.int8, bool))
        image = np.zeros(shape, dtype)
        if image.ndim >= 2 and rng.random() < 0.3:
            image = image[::2, ::-1]
    for runner in (det, clf):
        run_image(runner, image, rng.choice(("BGR", "RGB", "GRAY", "bgr", "XYZ")))
    return "loaded"


import fuzz_datasets  # noqa: E402,F401 - registers the "datasets" target (its own module)
