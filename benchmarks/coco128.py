"""COCO128 (real photos, 80 classes) through the whole detection chain.

Trains a detector from scratch on COCO128's ``train2017`` images (128 photos: far too few for a
good detector; this proves the readers, training, conversion and the int8 chain on real
images), converts it to float32 and int8, and reports COCO mAP overall and for ``person`` on
``val2017`` for the Keras model and both ``.tflite`` files. Note: val2017 also picks the best
checkpoint during training (the dataset has no third split), so the Keras number is slightly
optimistic; float-vs-int8 is a like-for-like comparison.

Example:
    python benchmarks/coco128.py --data ../shared/data/coco128/data.yaml --epochs 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="COCO128 data.yaml")
    ap.add_argument("--work", default=None)
    ap.add_argument("--arch", default="det_m")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="coco128-"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve()

    from converters import convert_model
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import train_detector

    t0 = time.perf_counter()
    run = train_detector(TrainConfig(task="detect", data=str(data), arch=args.arch,
                                     out=str(work / "run"), imgsz=args.imgsz,
                                     epochs=args.epochs, batch=args.batch, optimizer="adamw",
                                     seed=0))
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": " ".join(sys.argv), "arch": args.arch, "imgsz": args.imgsz,
               "epochs": args.epochs, "train_seconds": round(time.perf_counter() - t0, 1),
               "load_avg": os.getloadavg()}
    rows = {"keras": run}
    for quant in ("float32", "int8"):
        rows[quant] = convert_model(run, work / f"coco128_{quant}.tflite", quant).path
    for name, model in rows.items():
        ev = evaluate_detection(model, str(data))  # val2017
        results[name] = {"map50": ev["map50"], "map": ev["map"],
                         "person_ap50": ev["per_class"].get("person"),
                         "person_ap": ev["per_class_map"].get("person"),
                         "images": ev["images"], "instances": ev["instances"]}
        if name != "keras":
            results[name]["size_bytes"] = Path(model).stat().st_size
        print(name, json.dumps(results[name]), flush=True)
    (work / "coco128.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
