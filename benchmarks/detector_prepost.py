"""Time the Detector's preprocess (640x480 BGR frame -> 256x256 int8) and postprocess.

Target (issue 3): preprocess + postprocess <= 0.5 ms p50 together. Invoke is not timed here
(see `edgecnn bench`); the model is a tiny int8 detector with the real input/output tensors of
a 256x256 detector (1344 anchors), and the head outputs are synthetic with a realistic score
distribution: almost every anchor near 0, a few objects each lighting up a handful of anchors.

Every iteration is what the camera loop does: preprocess, invoke, postprocess, so the pre- and
postprocessing run with the caches the interpreter left behind (timing postprocess in a tight
loop alone reads ~2x faster than it is in a pipeline). Variants alternate inside one process
(period 6, so every pre variant meets every post variant), for 1 and 2 threads (OpenCV and the
interpreter):
- ``pre``: Detector.preprocess (fast letterbox path)
- ``pre_old``: the previous letterbox path (single INTER_AREA resize into a canvas copy, then a
  LUT over the whole canvas) for the ratio
- ``post``: Detector.postprocess on raw int8 outputs (quantized-domain threshold, cv2 NMS)
- ``post_float``: dequantize everything first, then the same postprocess
- ``post_refnms``: int8 path with the plain numpy reference NMS
``pre+post`` is the sum over the iterations that ran ``pre`` and ``post``.

Usage:
    python benchmarks/detector_prepost.py [--runs 3000] [--classes 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.runtime import Detector, DetectorOptions, TFLiteModel  # noqa: E402
from edgecnn.runtime import postprocess as pp  # noqa: E402
from edgecnn.runtime.decoders import anchor_free_ltrb as afl  # noqa: E402

IMGSZ = 256


def build_model(classes: int, threads: int = 1) -> TFLiteModel:
    cache = Path("/tmp") / f"edgecnn_prepost_{IMGSZ}_{classes}_unit.tflite"
    if not cache.exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from make_golden import build_tiny_tflite

        data, _ = build_tiny_tflite(IMGSZ, tuple(f"class{i}" for i in range(classes)),
                                    unit_range=True)
        cache.write_bytes(data)
    return TFLiteModel(cache, threads=threads)


def make_detector(classes: int, threads: int) -> Detector:
    det = Detector(build_model(classes, threads), DetectorOptions(score_threshold=0.25))
    # The random-weight model's output ranges are arbitrary; use those of a trained head
    # (sigmoid scores in 1/256 steps, ltrb up to 16 strides) so the synthetic outputs survive
    # quantization.
    det.decoder.quant = (pp.Quant(1 / 16, -128), pp.Quant(1 / 256, -128))  # boxes, scores
    return det


def synthetic_head(det: Detector, rng: np.random.Generator, objects: int = 5):
    """Raw int8 outputs: background ~sigmoid(N(-6, 1.5)); each of ``objects`` objects lights
    up a 3x3 block of stride-8 anchors and 1 stride-16 anchor, all predicting its box with a
    little jitter (as a trained head does), so NMS has real work."""
    dec = det.decoder
    centers, strides = afl.anchor_points(dec.input_hw, dec.params.strides)
    n, c = centers.shape[0], len(det.labels)
    scores = 1 / (1 + np.exp(-rng.normal(-6, 1.5, (n, c))))
    ltrb = rng.uniform(0.5, 3, (n, 4))
    g = IMGSZ // 8
    for _ in range(objects):
        col, row, cls = rng.integers(2, g - 2), rng.integers(2, g - 2), rng.integers(0, c)
        cx, cy = (col + 0.5) * 8, (row + 0.5) * 8
        half = rng.uniform(10, 30, 2)
        box = np.array([cx - half[0], cy - half[1], cx + half[0], cy + half[1]])
        near = [(row + dy) * g + col + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        near.append(g * g + (row // 2) * (g // 2) + col // 2)
        for a in near:
            (ax, ay), s = centers[a], strides[a]
            jitter = box + rng.normal(0, 1.0, 4)
            ltrb[a] = np.clip([ax - jitter[0], ay - jitter[1], jitter[2] - ax, jitter[3] - ay],
                              0, None) / s
            scores[a, cls] = rng.uniform(0.3, 0.9)
    bq, sq = dec.quant
    q_scores = np.clip(np.round(scores / sq.scale + sq.zero_point), -128, 127).astype(np.int8)
    q_boxes = np.clip(np.round(ltrb / bq.scale + bq.zero_point), -128, 127).astype(np.int8)
    return q_boxes[None], q_scores[None]


def old_preprocess(pre, image):
    """The letterbox path before this benchmark's optimization, for the ratio."""
    image, swap = pre.to_model_color(image, "BGR")
    h, w = image.shape[:2]
    r = min(pre.width / w, pre.height / h)
    nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
    px, py = (pre.width - nw) // 2, (pre.height - nh) // 2
    canvas = pre._canvas.copy()
    canvas[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return pre._apply_lut(canvas, swap).reshape(1, pre.height, pre.width, 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=6000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    det = make_detector(args.classes, 1)
    rng = np.random.default_rng(0)
    from sklearn.datasets import load_sample_image

    frame = cv2.resize(np.ascontiguousarray(load_sample_image("china.jpg")[:, :, ::-1]),
                       (640, 480), interpolation=cv2.INTER_AREA)
    boxes, scores = synthetic_head(det, rng)
    _, letterbox = det.preprocess(frame)
    n_det = len(det.postprocess((boxes, scores), letterbox))
    n_cand = len(pp.best_class_candidates(scores[0], det.decoder.score_threshold,
                                          det.decoder.quant[1])[0])

    results = {}
    for threads in (1, 2):
        cv2.setNumThreads(threads)
        det = make_detector(args.classes, threads)

        def post_refnms():
            raw = det.decoder.decode((boxes, scores), nms="reference")
            pp.to_image(raw.boxes, letterbox.scale_x, letterbox.scale_y, letterbox.pad_x,
                        letterbox.pad_y, letterbox.src_width, letterbox.src_height)

        pres = {"pre": lambda: det.preprocess(frame)[0],
                "pre_old": lambda: old_preprocess(det.preprocessor, frame)}
        bq, sq = det.decoder.quant
        posts = {"post": lambda: det.postprocess((boxes, scores), letterbox),
                 "post_float": lambda: det.postprocess(
                     (pp.dequantize(boxes, bq), pp.dequantize(scores, sq)), letterbox),
                 "post_refnms": post_refnms}
        times = {k: [] for k in [*pres, *posts]}
        totals = []
        pre_names, post_names = list(pres), list(posts)
        for i in range(args.warmup + args.runs):
            pre_name, post_name = pre_names[i % 2], post_names[(i // 2) % 3]
            t0 = time.perf_counter()
            tensor = pres[pre_name]()
            t1 = time.perf_counter()
            det.model.set_input(tensor)
            det.model.invoke()
            t2 = time.perf_counter()
            posts[post_name]()
            t3 = time.perf_counter()
            if i >= args.warmup:
                times[pre_name].append((t1 - t0) * 1e3)
                times[post_name].append((t3 - t2) * 1e3)
                if (pre_name, post_name) == ("pre", "post"):
                    totals.append((t3 - t2 + t1 - t0) * 1e3)
        times["pre+post"] = totals
        results[f"threads_{threads}"] = {
            k: {"p50_ms": float(np.percentile(v, 50)), "p90_ms": float(np.percentile(v, 90)),
                "n": len(v)} for k, v in times.items()}
    doc = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
           "python": platform.python_version(), "opencv": cv2.__version__,
           "numpy": np.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "frame": "640x480 BGR", "input": f"{IMGSZ}x{IMGSZ}x3 int8",
           "anchors": int(afl.num_anchors(det.decoder.input_hw, det.decoder.params.strides)),
           "classes": args.classes,
           "candidates": n_cand, "detections": n_det, "runs": args.runs, "results": results}
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{doc['frame']} -> {doc['input']}, {doc['anchors']} anchors x {args.classes} "
              f"classes, {n_cand} candidates -> {n_det} detections, {args.runs} runs")
        for key, stats in results.items():
            print(key)
            for name, s in stats.items():
                print(f"  {name:12s} p50 {s['p50_ms']:.3f} ms   p90 {s['p90_ms']:.3f} ms"
                      f"   (n={s['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
