"""Fuzz target ``datasets`` for ``benchmarks/fuzz.py``: malformed datasets for every reader.

Each case writes a small valid dataset of one kind (YOLO, Pascal VOC, COCO, loose
``images/`` + ``labels/``, a class-per-folder image folder, or idx files), damages it with 1-4
edits drawn from what the issue-15 fault run found and what tools leave behind, and reads it
the way ``edgecnn data check --decode`` (detection) or ``eval``/``train`` (classification) do.
Edits: hostile numbers (``1e20``, ``1e400``, NaN, 5,000 digits), other encodings (Latin-1,
UTF-16, random bytes), deep nesting and YAML alias bombs, FIFOs, ``/dev/zero`` links, dangling
links and link loops in place of files, NUL bytes and 5,000-character names, duplicate ids,
wrong JSON types, hidden files, GIFs, truncated or forged images, gzip bombs.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
from fuzz_targets import target

KINDS = ("yolo", "voc", "coco", "loose", "folder", "idx")
NUMBERS = ("nan", "inf", "-inf", "1e20", "-1e20", "1e400", "9" * 5000, "-1", "0", "1e-320",
           "2147483648", "0x10", "1_0", "", "-0", "3.5", "1e308")
JSON_VALUES = ([], {}, "28", "1234", -1, 0, 1e308, -1e308, True, None, "x" * 3000, [[[[]]]],
               [1, 2, 3], [1, 2, "3", 4], "\u0000", 10 ** 400, 0.5, "a.jpg", "../x.jpg")
NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")


def _image(path: Path, rng: random.Random, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((size, size + 8, 3), rng.randrange(256), np.uint8)
    cv2.rectangle(image, (4, 4), (14, 16), (255, 255, 255), -1)
    cv2.imwrite(str(path), image)


def _write(path: Path, data: str | bytes) -> Path:
    """Write a regular file, first removing a FIFO/link/folder an earlier edit put there
    (writing into a FIFO would block the fuzzer itself)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def build(kind: str, root: Path, rng: random.Random) -> Path:
    """A small valid dataset of ``kind`` under ``root``; returns the SPEC to read."""
    n = rng.randint(2, 4)
    if kind in ("yolo", "loose"):
        images, labels = (("images/train", "labels/train") if kind == "yolo"
                          else ("images", "labels"))
        for i in range(n):
            _image(root / images / f"{i}.jpg", rng)
            _write(root / labels / f"{i}.txt", f"{i % 2} 0.5 0.5 0.3 0.4\n1 0.2 0.3 0.1 0.1\n")
        if kind == "loose":
            _write(root / "classes.txt", "a\nb\n")
            return root
        return _write(root / "data.yaml", "path: .\ntrain: images/train\nval: images/train\n"
                                          "nc: 2\nnames: [a, b]\n")
    if kind == "voc":
        for i in range(n):
            _image(root / "JPEGImages" / f"{i}.jpg", rng)
            _write(root / "Annotations" / f"{i}.xml", _voc_xml(i))
        _write(root / "ImageSets/Main/train.txt", "".join(f"{i}\n" for i in range(n - 1)))
        _write(root / "ImageSets/Main/val.txt", f"{n - 1}\n")
        return root
    if kind == "coco":
        doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"},
                                                              {"id": 3, "name": "b"}]}
        for i in range(n):
            _image(root / f"{i}.jpg", rng)
            doc["images"].append({"id": i + 1, "file_name": f"{i}.jpg", "width": 32,
                                  "height": 24})
            doc["annotations"].append({"id": i + 1, "image_id": i + 1,
                                       "category_id": 1 + 2 * (i % 2), "bbox": [2, 3, 10, 8],
                                       "iscrowd": 0, "area": 80})
        return _write(root / "instances_x.json", json.dumps(doc))
    if kind == "folder":
        for cls in ("cat", "dog"):
            for i in range(n):
                _image(root / cls / f"{i}.png", rng, 12)
        return root
    labels = np.array([i % 2 for i in range(4 * n)], np.uint8)
    images = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (4 * n, 8, 8),
                                                                     dtype=np.uint8)
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = _idx_bytes(array)
        _write(root / (stem + ".gz" if rng.random() < 0.5 else stem),
               gzip.compress(data) if rng.random() < 0.5 else data)
    return root


def _voc_xml(i: int) -> str:
    return (f"<annotation><filename>{i}.jpg</filename><size><width>32</width><height>24"
            f"</height></size><object><name>{'ab'[i % 2]}</name><difficult>0</difficult>"
            "<bndbox><xmin>3</xmin><ymin>4</ymin><xmax>14</xmax><ymax>16</ymax></bndbox>"
            "</object></annotation>")


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                     for d in array.shape)
    return header + array.tobytes()


# ---- damage ----------------------------------------------------------------------------------

def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _replace_file(path: Path, rng: random.Random) -> None:
    """Something that is not a regular file where a file was."""
    path.unlink()
    choice = rng.randrange(5)
    if choice == 0:
        os.mkfifo(path)
    elif choice == 1:
        path.symlink_to("/dev/zero")
    elif choice == 2:
        path.symlink_to(path.name)                    # a link to itself: ELOOP
    elif choice == 3:
        path.symlink_to(path.parent / "nowhere")
    else:
        path.mkdir()


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(8)
    if choice <= 2:          # a hostile number where a number was
        spans = [m.span() for m in NUMBER.finditer(data)]
        if spans:
            a, b = rng.choice(spans)
            return data[:a] + rng.choice(NUMBERS).encode() + data[b:]
    if choice == 3:
        return data.decode("utf-8", "replace").replace("a", "\xe9").encode(
            rng.choice(("latin-1", "utf-16", "cp1252")), "replace")
    if choice == 4:
        return data[:rng.randrange(len(data) + 1)]
    if choice == 5:
        b = bytearray(data or b"x")
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if choice == 6:
        return data + rng.choice((b"\x00", b"\n" * 3, b"\r\n", "\u2028".encode(),
                                  b"y" * 5000, b"\n" + data))
    return data.replace(b"\n", b"\n" + data.splitlines()[0] + b"\n", 1) if data else data


def _nest(kind: str, rng: random.Random) -> str:
    depth = rng.choice((70, 1000, 100_000))
    if kind == "yolo":
        if rng.random() < 0.5:
            return "train: images/train\nnames: " + "[" * depth + "]" * depth + "\n"
        lines = ["a: &a [x,x,x,x,x,x,x,x,x]"] + [
            f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh",
                                                                           "bcdefghi")]
        return "\n".join(lines) + f"\ntrain: images/train\nnames: *{rng.choice('cfi')}\n"
    return '{"images": [], "annotations": [], "categories": ' + "[" * depth + "]" * depth + "}"


def _mutate_json(path: Path, rng: random.Random) -> None:
    doc = json.loads(path.read_text())
    places = [doc] + doc["images"] + doc["annotations"] + doc["categories"]
    for _ in range(rng.randint(1, 4)):
        where = rng.choice(places)
        key = rng.choice(sorted(where) + ["id", "bbox", "file_name", "image_id"])
        if rng.random() < 0.15:
            where.pop(key, None)
        elif rng.random() < 0.2 and doc["images"]:
            doc["images"].append(dict(rng.choice(doc["images"])))      # a duplicate id
        else:
            where[key] = rng.choice(JSON_VALUES)
    path.write_text(json.dumps(doc, allow_nan=True))


def damage(kind: str, root: Path, spec: Path, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        files = _files(root)
        if not files:
            return
        choice = rng.random()
        path = rng.choice(files)
        if choice < 0.12:
            _replace_file(path, rng)
        elif choice < 0.2 and kind in ("yolo", "coco"):
            _write(spec, _nest(kind, rng))
        elif choice < 0.35 and kind == "coco" and spec.is_file() and not spec.is_symlink():
            try:
                _mutate_json(spec, rng)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                pass          # an earlier edit broke the json already: the fuzzer's problem
        elif choice < 0.45:
            extra = path.parent / rng.choice((".hidden.jpg", "._0.jpg", "anim.gif", "x.tif",
                                              ".git/HEAD", "nested/deeper/7.jpg", "README"))
            _write(extra, path.read_bytes()[:4000])
        elif choice < 0.5 and kind in ("yolo", "voc", "loose"):
            lst = root / ("list.txt" if kind == "yolo" else "ImageSets/Main/train.txt")
            _write(lst, "images/train/0.jpg\n0\n\x00x\n" + "z" * 5000 + "\n~nouser/y\n0\n")
            if kind == "yolo":
                _write(spec, "train: list.txt\nnames: [a, b]\n")
        else:
            path.write_bytes(_mutate_bytes(path.read_bytes(), rng))


def read(kind: str, spec: Path) -> str:
    """Read ``spec`` as the CLI does; ``"loaded"`` when it was accepted."""
    if kind in ("folder", "idx"):
        from edgecnn.data import load_classification

        load_classification(str(spec), imgsz=16, val_split=0.25)
        return "loaded"
    from edgecnn.data.detection import check_dataset

    dataset = check_dataset(spec, decode=True)
    dataset.report.to_dict(max_files=5)
    dataset.report.lines()
    return "loaded"


@target("datasets")
def datasets(rng: random.Random, work: Path) -> str:
    """A small dataset of each kind in turn, damaged, then read (see the module docstring)."""
    kind = KINDS[rng.randrange(len(KINDS))]
    root = work / "ds"
    if root.exists() or root.is_symlink():
        shutil.rmtree(root)
    spec = build(kind, root, rng)
    damage(kind, root, spec, rng)
    return read(kind, spec)
