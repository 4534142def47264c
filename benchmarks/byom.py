"""Issue 13's bring-your-own-model targets, measured end to end with the product's own commands.

1. **YOLO11n's ONNX through ``edgecnn convert`` (float32, int8) and ``edgecnn eval``**: mAP@0.5
   and mAP@0.5:0.95 against Ultralytics' own val of the same checkpoint (target: int8 within
   1.5 points, float32 within 0.5). Ultralytics' val predictions are also scored with
   pycocotools (the metric ``edgecnn eval`` uses), so metric and pipeline differences show
   apart from the conversion's.
2. **Ultralytics' own ``.tflite`` exports through ``edgecnn predict``, ``camera`` (on a video
   file) and ``eval``**, with Ultralytics' metadata read from the file and, separately,
   attached by ``edgecnn metadata set``: every box matched to Ultralytics' ``predict`` of the
   same file on the same pixels (target: matched IoU >= 0.95, same class, nothing extra).
3. EfficientNet-Lite0's ONNX int8 top-1 agreement is ``benchmarks/byom_routes.py product``'s
   (``effnet`` here runs its steps for that model only).

Ultralytics never runs in the product's environment: the ``ultralytics`` step runs under an
interpreter that has it (``YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0`` are set here) and writes JSON
under ``--work``; the other steps read it back. Steps, in order:

* ``frames`` (product env): the val images and a video made of them (``video.avi``, MJPG)
  plus its frames as decoded here (``frames/``), so Ultralytics sees the camera's pixels.
* ``ultralytics`` (Ultralytics env): ``val`` of the ``.pt`` (its defaults: rect batches) and of
  every ``--models`` file (square, batch 1, ``save_json``); ``predict`` of every ``.tflite`` on
  the val images and the frames (its defaults: conf 0.25, IoU 0.7, class-aware NMS).
* ``measure`` (product env, ``EDGECNN_ONNX2TF`` set): targets 1 and 2 -> ``byom.json``.

Example:
    python benchmarks/byom.py frames --work W --data KANGAROO_SPLIT
    ULTRA_PY benchmarks/byom.py ultralytics --work W --yolo-data data.yaml \\
        --weights last.pt --models last.onnx yolo11n_float32.tflite yolo11n_int8.tflite
    python benchmarks/byom.py measure --work W --data KANGAROO_SPLIT --onnx last.onnx \\
        --tflite yolo11n_float32.tflite yolo11n_int8.tflite
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
IMGSZ = 256
FRAME_SIZE = (640, 480)
MATCH_IOU = 0.95


# ---------------------------------------------------------------- frames (product env)

def step_frames(args) -> None:
    """The val split's images listed, and a video of them with its frames as decoded here."""
    import cv2

    from edgecnn.data.detection import load_detection_dataset

    val = load_detection_dataset(args.data).val
    images = [str(s.image_path) for s in val]
    video = args.work / "video.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, FRAME_SIZE)
    for path in images:
        writer.write(cv2.resize(cv2.imread(path), FRAME_SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    frames = args.work / "frames"
    frames.mkdir(exist_ok=True)
    cap, count = cv2.VideoCapture(str(video)), 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.imwrite(str(frames / f"{count:05d}.png"), frame)
        count += 1
    (args.work / "frames.json").write_text(json.dumps(
        {"images": images, "video": str(video), "frames": count}, indent=1))
    print(f"{len(images)} val images, {count} video frames")


# ---------------------------------------------------------------- ultralytics (its own env)

def step_ultralytics(args) -> None:
    from ultralytics import YOLO

    listing = json.loads((args.work / "frames.json").read_text())
    frames = sorted(str(p) for p in (args.work / "frames").glob("*.png"))
    out: dict = {"val": {}, "predict": {}, "predict_map": {}}
    runs = [(Path(w), {"batch": 16}) for w in args.weights]
    runs += [(Path(m), {"batch": 1, "save_json": True}) for m in args.models]
    for path, kw in runs:
        name = f"{path.stem}{path.suffix}"
        m = YOLO(str(path), task="detect").val(
            data=args.yolo_data, split="val", imgsz=IMGSZ, device="cpu", plots=False,
            project=str(args.work / "ultra_val"), name=name, exist_ok=True, verbose=False, **kw)
        preds = args.work / "ultra_val" / name / "predictions.json"
        out["val"][name] = {"map50": float(m.box.map50), "map": float(m.box.map),
                            "predictions": str(preds) if preds.exists() else None, **kw}
        print(name, out["val"][name], flush=True)
    for path in (Path(m) for m in args.models if m.endswith(".onnx")):
        # its predict pipeline (letterbox sides rounded; val's loader rounds them up) at val's
        # thresholds: the boxes edgecnn's float32 file should reproduce
        model = YOLO(str(path), task="detect")
        out["predict_map"][path.name] = [_ultra_boxes(model, f, conf=0.001, max_det=300)
                                         for f in listing["images"]]
    for path in (Path(m) for m in args.models if m.endswith(".tflite")):
        model = YOLO(str(path), task="detect")
        out["predict"][path.name] = {
            kind: [_ultra_boxes(model, f) for f in files]
            for kind, files in (("images", listing["images"]), ("frames", frames))}
    import ultralytics

    out["versions"] = {"ultralytics": ultralytics.__version__, "python": sys.version.split()[0]}
    (args.work / "ultralytics.json").write_text(json.dumps(out, indent=1))


def _ultra_boxes(model, image: str, **kw) -> dict:
    r = model.predict(image, imgsz=IMGSZ, device="cpu", verbose=False, **kw)[0]
    return {"image": image, "boxes": r.boxes.xyxy.numpy().tolist(),
            "scores": r.boxes.conf.numpy().tolist(),
            "classes": r.boxes.cls.numpy().astype(int).tolist()}


# ---------------------------------------------------------------- measure (product env)

def edgecnn(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn", *map(str, argv)],
                          capture_output=True, text=True)


def run_json(*argv: str) -> dict:
    proc = edgecnn(*argv, "--json")
    if proc.returncode != 0:
        raise RuntimeError(f"edgecnn {' '.join(map(str, argv))}: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def evaluate(model: Path, data: str, split: str | None = None) -> dict:
    """``edgecnn eval`` at Ultralytics' val NMS IoU (0.7)."""
    doc = run_json("eval", model, "--data", data, "--iou-threshold", "0.7",
                   *(("--split", split) if split else ()))
    return {"map50": doc["map50"], "map": doc["map"], "images": doc.get("images")}


def ultra_cocotools(predictions: str | list, data: str) -> dict:
    """Ultralytics' detections scored with pycocotools against the same ground truth
    ``edgecnn eval`` uses: its val's ``predictions.json`` (a path), or the ``predict_map``
    rows of the ``ultralytics`` step (a list, xyxy per image)."""
    from edgecnn.data.detection import load_detection_dataset
    from edgecnn.evaluate.detect import ImageDetections, coco_map, ground_truth_of

    ds = load_detection_dataset(data)
    if isinstance(predictions, list):
        by_name = {Path(r["image"]).name: r for r in predictions}
        dets = [ImageDetections(np.array(r["boxes"], np.float64).reshape(-1, 4),
                                np.array(r["scores"]), np.array(r["classes"]))
                for r in (by_name[s.image_path.name] for s in ds.val)]
    else:
        rows = json.loads(Path(predictions).read_text())
        dets = []
        for sample in ds.val:
            mine = [p for p in rows if p["file_name"] == sample.image_path.name]
            xywh = np.array([p["bbox"] for p in mine], np.float64).reshape(-1, 4)
            dets.append(ImageDetections(
                np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
                np.array([p["score"] for p in mine]),
                np.array([p["category_id"] - 1 for p in mine])))
    r = coco_map(ground_truth_of(ds.val), dets, ds.names)
    return {"map50": r["map50"], "map": r["map"]}


def target_yolo(args, ultra: dict) -> list[dict]:
    """Target 1: each ONNX converted float32 and int8, evaluated, beside Ultralytics' val."""
    rows = []
    for onnx in map(Path, args.onnx):
        ref = ultra["val"].get(onnx.name, {})
        pt = ultra["val"].get(onnx.with_suffix(".pt").name, {})
        row = {"source": onnx.name, "ultralytics_val_onnx": _pair(ref),
               "ultralytics_val_pt": _pair(pt),
               "ultralytics_onnx_pycocotools": (_pair(ultra_cocotools(ref["predictions"],
                                                                      args.data))
                                                if ref.get("predictions") else None),
               "ultralytics_predict_pycocotools": (
                   _pair(ultra_cocotools(ultra["predict_map"][onnx.name], args.data))
                   if onnx.name in ultra.get("predict_map", {}) else None)}
        for quant in ("float32", "int8"):
            out = args.work / "convert" / f"{onnx.stem}_{quant}.tflite"
            out.parent.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            saved = out.with_suffix(".json")
            if args.reuse and out.exists() and saved.exists():
                doc = json.loads(saved.read_text())
            else:
                doc = run_json("convert", onnx, "--quant", quant, "--calib", args.data,
                               "--held-out", "0", "-o", out, "--overwrite")
                saved.write_text(json.dumps(doc))
            got = evaluate(out, args.data)
            row[quant] = {**_pair(got), "convert_s": round(time.perf_counter() - t0, 1),
                          "normalized": doc["metadata"]["decoder"].get("normalized"),
                          "command": f"edgecnn convert {onnx.name} --quant {quant} --calib "
                                     "DATA --held-out 0; edgecnn eval --data DATA "
                                     "--iou-threshold 0.7",
                          "all_images": _pair(evaluate(out, args.data, "all"))}
            for key in ("ultralytics_val_onnx", "ultralytics_val_pt",
                        "ultralytics_predict_pycocotools"):
                if row[key]:
                    row[quant][f"delta_vs_{key}"] = {
                        k: round(100 * (row[quant][k] - row[key][k]), 2) for k in ("map50", "map")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _pair(doc: dict) -> dict:
    return {k: round(float(doc[k]), 4) for k in ("map50", "map")} if doc else {}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(ours: list[dict], theirs: dict) -> dict:
    """Greedy one-to-one matching (best IoU first, same class only) of one image's boxes."""
    mine = np.array([d["box"] for d in ours]).reshape(-1, 4)
    cls = np.array([d["index"] for d in ours], int)
    iou = iou_matrix(mine, theirs["boxes"]) if len(ours) and theirs["boxes"] else \
        np.zeros((len(ours), len(theirs["boxes"])))
    iou = np.where(cls[:, None] == np.array(theirs["classes"], int)[None, :], iou, -1.0)
    pairs = []
    while iou.size and iou.max() > 0:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        pairs.append((float(iou[i, j]), abs(ours[i]["score"] - theirs["scores"][j])))
        iou[i, :], iou[:, j] = -1.0, -1.0
    return {"ours": len(ours), "theirs": len(theirs["boxes"]), "matched": len(pairs),
            "ious": [p[0] for p in pairs], "score_diffs": [p[1] for p in pairs]}


def summarize(per_image: list[dict]) -> dict:
    ious = [v for m in per_image for v in m["ious"]]
    ok = [m for m in per_image if m["ours"] == m["theirs"] == m["matched"]
          and all(v >= MATCH_IOU for v in m["ious"])]
    return {"images": len(per_image), "images_all_matched": len(ok),
            "boxes_ours": sum(m["ours"] for m in per_image),
            "boxes_ultralytics": sum(m["theirs"] for m in per_image),
            "matched": len(ious), "min_iou": round(min(ious), 4) if ious else None,
            "matched_iou_ge_0.95": sum(v >= MATCH_IOU for v in ious),
            "max_score_diff": round(max((v for m in per_image for v in m["score_diffs"]),
                                        default=0.0), 4),
            "met": len(ok) == len(per_image)}


def target_tflite(args, ultra: dict) -> list[dict]:
    """Target 2: Ultralytics' ``.tflite`` files through predict (metadata read, and set),
    camera on the video, and eval, each against Ultralytics on the same pixels."""
    listing = json.loads((args.work / "frames.json").read_text())
    rows = []
    for model in map(Path, args.tflite):
        theirs = ultra["predict"][model.name]
        attached = args.work / "metadata_set" / model.name
        attached.parent.mkdir(exist_ok=True)
        run_json("metadata", "set", model, "-o", attached, "--overwrite")
        row: dict = {"model": model.name}
        for how, path in (("predict_metadata_read", model), ("predict_metadata_set", attached)):
            doc = run_json("predict", path, *listing["images"])
            row[how] = summarize([match(r["detections"], t)
                                  for r, t in zip(doc["results"], theirs["images"])])
        jsonl = args.work / f"camera_{model.stem}.jsonl"
        proc = edgecnn("camera", model, "--source", listing["video"], "--json", jsonl,
                       "--overwrite", "-q")
        lines = [json.loads(ln) for ln in jsonl.read_text().splitlines() if ln.strip()] \
            if proc.returncode == 0 else []
        frames = [ln for ln in lines if "frame" in ln]
        row["camera"] = summarize([match(f["detections"], theirs["frames"][f["frame"]])
                                   for f in frames if f["frame"] < len(theirs["frames"])])
        row["camera"]["frames"] = len(frames)
        if proc.returncode != 0:
            row["camera"]["error"] = proc.stderr.strip()[-300:]
        ref = ultra["val"].get(model.name, {})
        row["eval"] = {"edgecnn": _pair(evaluate(model, args.data)),
                       "ultralytics_val": _pair(ref),
                       "ultralytics_pycocotools": (_pair(ultra_cocotools(ref["predictions"],
                                                                         args.data))
                                                   if ref.get("predictions") else None)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def step_measure(args) -> None:
    ultra = json.loads((args.work / "ultralytics.json").read_text())
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_avg_start": os.getloadavg(), "ultralytics": ultra.get("versions"),
              "yolo_int8": target_yolo(args, ultra) if args.onnx else [],
              "ultralytics_tflite": target_tflite(args, ultra) if args.tflite else []}
    report["load_avg_end"] = os.getloadavg()
    (args.work / "byom.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.work / 'byom.json'}")


def step_effnet(args) -> None:
    """Target 3 is byom_routes.py's: its data, effnet and product steps for that model."""
    sys.path.insert(0, str(Path(__file__).parent))
    import byom_routes

    common = ["--work", str(args.work / "routes")]
    byom_routes.main(["data", *common, "--kangaroo", args.kangaroo, "--coco128", args.coco128,
                      "--yolo-data", args.yolo_data])
    byom_routes.main(["effnet", *common])
    byom_routes.main(["product", *common, "--sources",
                      str(args.work / "routes" / "sources" / "effnet_lite0.onnx"),
                      "--eff-calib", str(Path(args.coco128) / "images" / "train2017"),
                      "--runs", "1"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("frames", "ultralytics", "measure", "effnet"))
    ap.add_argument("--work", type=Path, required=True, help="folder outside the repository")
    ap.add_argument("--data", help="frames/measure: the kangaroo split for edgecnn (its SPEC)")
    ap.add_argument("--yolo-data", help="ultralytics/effnet: the same split as a YOLO data.yaml")
    ap.add_argument("--weights", nargs="*", default=[],
                    help="ultralytics: checkpoints (.pt) to val with its defaults")
    ap.add_argument("--models", nargs="*", default=[],
                    help="ultralytics: exported files to val (and .tflite ones to predict)")
    ap.add_argument("--onnx", nargs="*", default=[], help="measure: Ultralytics' ONNX exports")
    ap.add_argument("--tflite", nargs="*", default=[], help="measure: its .tflite exports")
    ap.add_argument("--reuse", action="store_true",
                    help="measure: keep converted files of an earlier run")
    ap.add_argument("--kangaroo", help="effnet: the kangaroo folder (byom_routes data)")
    ap.add_argument("--coco128", help="effnet: the COCO128 folder (calibration, comparison)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    {"frames": step_frames, "ultralytics": step_ultralytics, "measure": step_measure,
     "effnet": step_effnet}[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
