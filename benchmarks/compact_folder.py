"""Small real data as an image folder: the compact family's default recipe against the seed CNN.

Writes a seeded, class-balanced subset of Fashion-MNIST's idx files (Debian's
``dataset-fashion-mnist``) as an image folder, one sub-folder of 28x28 grayscale PNGs per
class (what a user's own small dataset looks like), then trains each architecture with the
*same* command, ``edgecnn train --data FOLDER --arch ARCH --epochs E`` and nothing else, and
reports val accuracy (the folder's seeded 10% split) and training seconds.

Example:
    python benchmarks/compact_folder.py --images 8000 --work W --archs seed,dsnet_s \\
        --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
IDX = Path("/usr/share/datasets/fashion-mnist")


def write_folder(out: Path, count: int, seed: int = 0, idx_dir: Path = IDX) -> Path:
    """``count`` training images (balanced over the 10 classes) as ``out/<label>/<i>.png``."""
    import cv2

    from edgecnn.data.classification import FASHION_LABELS
    from edgecnn.data.idx import load_idx_folder

    x, y = load_idx_folder(idx_dir)["train"]
    rng = np.random.default_rng(seed)
    per_class = count // len(FASHION_LABELS)
    for label, name in enumerate(FASHION_LABELS):
        folder = out / name.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        pick = rng.permutation(np.flatnonzero(y == label))[:per_class]
        for i in pick:
            cv2.imwrite(str(folder / f"{i:05d}.png"), x[i, :, :, 0])
    return out


def train(folder: Path, arch: str, epochs: int, out: Path, extra: dict) -> dict:
    from edgecnn.train.api import train as train_model
    from edgecnn.train.config import TrainConfig

    start = time.perf_counter()
    run = train_model(TrainConfig(task="classify", data=str(folder), arch=arch, out=str(out),
                                  epochs=epochs, overwrite=True, verbose=0, **extra))
    info = json.loads((run / "run.json").read_text())
    return {"arch": arch, "options": extra, "val_accuracy": info["metrics"]["val_accuracy"],
            "input": [*info["imgsz"], info["channels"]], "color": info["color"],
            "params": info["metrics"]["params"],
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--work", required=True)
    ap.add_argument("--archs", default="seed,dsnet_s")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--option", action="append", default=[],
                    help="extra TrainConfig option for every run, NAME=VALUE (e.g. imgsz=64)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    work = Path(args.work)
    folder = work / f"fashion_{args.images}"
    if not folder.is_dir():
        write_folder(folder, args.images)
    extra = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    load = os.getloadavg()
    rows = [train(folder, arch, args.epochs, work / f"run_{arch}", extra)
            for arch in args.archs.split(",")]
    result = {"images": args.images, "epochs": args.epochs, "rows": rows,
              "load_average": [load, os.getloadavg()],
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
