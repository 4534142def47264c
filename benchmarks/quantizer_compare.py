"""Converter PTQ vs ai-edge-quantizer on the same model: accuracy, size, invoke latency.

DESIGN.md keeps ``tf.lite.TFLiteConverter`` post-training quantization as the default until a
measurement says otherwise; this script is that measurement. Both produce int8 weights and
activations with float I/O from the same float model and the same calibration images:

- converter: ``edgecnn convert RUN --quant int8 --io float``
- ai-edge-quantizer: the run's float32 ``.tflite`` + recipe ``static_wi8_ai8``

Usage (needs ``pip install ai-edge-quantizer``, not a dependency of edgecnn):
    python benchmarks/quantizer_compare.py RUN --data digits --work /tmp/aeq
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    hits = 0
    for image, label in zip(x, y):
        hits += int(np.argmax(model.run(image[None])[0])) == int(label)
    return hits / len(y)


def p50_us(model, x: np.ndarray, runs: int) -> float:
    tensor = model.quantize_input(x[:1])
    model.set_input(tensor)
    for _ in range(50):
        model.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model.invoke()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--work", default="/tmp/edgecnn-aeq")
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from ai_edge_quantizer import quantizer, recipe

    from converters import calibration as cal
    from converters import convert_model
    from edgecnn.data import load_classification
    from edgecnn.rundir import RunInfo
    from edgecnn.runtime import metadata as md
    from edgecnn.runtime.model import TFLiteModel

    info = RunInfo.load(args.run)
    spec = info.input_spec()
    f32 = convert_model(args.run, work / "float32.tflite", "float32", held_out=0)
    conv = convert_model(args.run, work / "converter_int8_iofloat.tflite", "int8", io="float",
                         calib_size=args.calib_size, held_out=0)
    images = cal.load_calibration_images(info, None, args.calib_size, 0)
    calib = cal.full_range_inputs(cal.to_model_inputs(images.calib, spec, images.color), spec)

    flat, _ = md.split_bundle(f32.path.read_bytes())
    input_name = "image"   # the signature input name convert exports
    qt = quantizer.Quantizer(flat)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    start = time.perf_counter()
    result = qt.calibrate({"serving_default": [{input_name: s[None]} for s in calib]})
    quantized = qt.quantize(result, enable_progress_report=False)
    aeq_seconds = time.perf_counter() - start
    aeq_bytes = bytes(quantized.quantized_model)
    aeq_path = work / "aeq_static_wi8_ai8.tflite"
    aeq_path.write_bytes(aeq_bytes)

    data = load_classification(args.data, data_dir=info.data_dir, imgsz=spec.height,
                               color=info.color, seed=info.seed)
    x = cal.to_model_inputs(list(data.x_test), spec, data.color)
    rows = []
    models = {"float32": flat, "converter int8 (float I/O)": conv.path.read_bytes(),
              "ai-edge-quantizer static_wi8_ai8": aeq_bytes}
    loaded = {name: {t: TFLiteModel(b, threads=t) for t in (1, 2)} for name, b in models.items()}
    for name, by_threads in loaded.items():
        rows.append({"model": name, "size_bytes": len(md.split_bundle(models[name])[0]),
                     "accuracy": accuracy(by_threads[1], x, data.y_test)})
    for _ in range(3):   # interleave the variants, keep each one's best round
        for row in rows:
            for t in (1, 2):
                p = p50_us(loaded[row["model"]][t], x, args.runs)
                row[f"p50_us_t{t}"] = min(row.get(f"p50_us_t{t}", p), p)
    doc = {"run": args.run, "data": args.data, "samples": int(len(data.y_test)),
           "aeq_quantize_seconds": round(aeq_seconds, 2), "rows": rows}
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
