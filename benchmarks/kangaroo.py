"""The kangaroo benchmark split, as a dataset folder every training command reads.

The kangaroo set (164 real photos, one class, Pascal VOC xml in ``annots/`` beside ``images/``)
ships without a split. The benchmark convention (its SOURCE.txt): sort the image names; the last
20% (33 images, from 00149.jpg) are val, the rest (131) train. This writes a folder that links
to the original ``images/`` and ``annots/`` and adds ``train.txt`` / ``val.txt``, which
edgecnn's loose-layout reader takes as the split, so the same images are held out in every
benchmark (and val is then the dataset's own split, never a seeded draw).

Example:
    python benchmarks/kangaroo.py ../shared/data/kangaroo work/kangaroo_split
    edgecnn data check work/kangaroo_split     # 131 train / 33 val images
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

VAL_FRACTION = 0.2


def kangaroo_split(source: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Write (or refresh) the split folder ``dest`` for the kangaroo set at ``source``."""
    source, dest = Path(source).resolve(), Path(dest)
    names = sorted(p.stem for p in (source / "images").glob("*.jpg"))
    if not names:
        raise SystemExit(f"no images in {source / 'images'}")
    n_val = math.ceil(len(names) * VAL_FRACTION)
    train, val = names[:-n_val], names[-n_val:]
    dest.mkdir(parents=True, exist_ok=True)
    for folder in ("images", "annots"):
        link = dest / folder
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / folder, target_is_directory=True)
    (dest / "train.txt").write_text("\n".join(train) + "\n")
    (dest / "val.txt").write_text("\n".join(val) + "\n")
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="the kangaroo folder (images/ + annots/)")
    ap.add_argument("dest", help="split folder to write")
    args = ap.parse_args(argv)
    dest = kangaroo_split(args.source, args.dest)
    val = (dest / "val.txt").read_text().split()
    print(f"{dest}: {len((dest / 'train.txt').read_text().split())} train, {len(val)} val "
          f"(from {val[0]}.jpg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
