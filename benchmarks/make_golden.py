"""Write the golden vectors shared by the Python runtime tests and the Kotlin core.

Outputs (schema in docs/FORMAT.md, section "Golden vectors"):

- ``tests/golden/detect_golden.json``: hand-made raw head outputs (int8 and float), their
  letterbox and quantization parameters and the detections the Python runtime produces from
  them; classification outputs and their top-k; letterbox geometries; input look-up tables.
- ``tests/golden/tiny_detect.tflite`` + ``tests/golden/tiny_detect.json``: a tiny real int8
  detector with the edgecnn metadata bundle appended, and what a reader must find in it
  (needs TensorFlow; skipped with ``--no-tflite``).

The JSON part is deterministic (seeded numpy, no TensorFlow), so a test rebuilds it in memory
and compares it with the committed file.

Usage:
    python benchmarks/make_golden.py              # both
    python benchmarks/make_golden.py --no-tflite  # JSON only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.runtime import postprocess as pp  # noqa: E402
from edgecnn.runtime.classifier import class_probabilities, top_k as classifier_top_k  # noqa: E402
from edgecnn.runtime.decoders import anchor_free_ltrb as afl  # noqa: E402
from edgecnn.runtime.metadata import DecoderSpec, InputSpec, Metadata  # noqa: E402
from edgecnn.runtime.model import TensorInfo  # noqa: E402
from edgecnn.runtime.preprocess import Preprocessor, build_lut  # noqa: E402

SCHEMA = "edgecnn.golden/1"
GOLDEN_DIR = ROOT / "tests" / "golden"
GOLDEN_JSON = GOLDEN_DIR / "detect_golden.json"
TINY_TFLITE = GOLDEN_DIR / "tiny_detect.tflite"
TINY_JSON = GOLDEN_DIR / "tiny_detect.json"

IMGSZ = 64
STRIDES = (8, 16, 32)
LABELS = ("circle", "square", "triangle")
# Typical int8 quantization of a sigmoid output and of non-negative ltrb distances.
SCORE_Q = pp.Quant(1.0 / 256.0, -128)
SCORE_Q_ODD = pp.Quant(1.0 / 255.0, -128)
BOX_Q = pp.Quant(0.0625, -128)
# What a reimplementation must reproduce: the fields named in "exact" bit for bit (which
# detections survive, in which order, and the letterbox and input tables); scores within
# "score" and boxes within IoU "box_iou" (float32 exp and float-vs-double arithmetic differ
# between platforms: numpy's softmax scores differ in the last bits on aarch64 and x86_64).
TOLERANCES = {"box_iou": 0.99, "score": 1e-4,
              "exact": ["anchor", "index", "label", "letterbox", "lut"]}
# Golden boxes must not sit on a decision edge where float32 rounding could flip a result.
IOU_MARGIN = 0.02
SCORE_MARGIN = 1e-5


# ---------------------------------------------------------------- letterbox
def letterbox_of(src_w: int, src_h: int, dst_w: int, dst_h: int, resize: str = "letterbox"):
    """The runtime's own letterbox for an image size (runs the real Preprocessor)."""
    spec = InputSpec(height=dst_h, width=dst_w, channels=3, resize=resize)
    info = TensorInfo(0, "input", (1, dst_h, dst_w, 3), np.dtype(np.int8), 1.0 / 255.0, -128)
    _, box = Preprocessor(spec, info).fit(np.zeros((src_h, src_w, 3), np.uint8))
    return box


def letterbox_dict(box) -> dict:
    return {"scale_x": box.scale_x, "scale_y": box.scale_y, "pad_x": box.pad_x,
            "pad_y": box.pad_y}


# ---------------------------------------------------------------- detection cases
class Scene:
    """Float head outputs of one image: low background, then objects placed on anchors."""

    def __init__(self, rng: np.random.Generator, background: float = 0.12):
        self.centers, self.strides = afl.anchor_points((IMGSZ, IMGSZ), STRIDES)
        n = self.centers.shape[0]
        self.scores = rng.uniform(0.0, background, (n, len(LABELS))).astype(np.float32)
        self.ltrb = rng.uniform(0.2, 1.5, (n, 4)).astype(np.float32)

    def anchor(self, stride: int, col: int, row: int) -> int:
        offset = sum(afl.grid_size(IMGSZ, s) ** 2 for s in STRIDES if s < stride)
        return offset + row * afl.grid_size(IMGSZ, stride) + col

    def put(self, anchor: int, cls: int, score: float, box_xyxy, others: float = 0.0) -> None:
        """Make ``anchor`` predict ``box_xyxy`` (model pixels) as ``cls`` with ``score``."""
        cx, cy = self.centers[anchor]
        s = self.strides[anchor]
        x1, y1, x2, y2 = box_xyxy
        ltrb = np.array([cx - x1, cy - y1, x2 - cx, y2 - cy], np.float32) / s
        if (ltrb < 0).any():
            raise ValueError(f"anchor {anchor} centre is outside box {box_xyxy}")
        self.ltrb[anchor] = ltrb
        self.scores[anchor] = others
        self.scores[anchor, cls] = score


def _tensor(values: np.ndarray, quant: pp.Quant) -> tuple[dict, np.ndarray]:
    """Serialize one head output: raw values (quantized if asked) and their dequantization."""
    if quant.quantized:
        q = np.clip(np.round(values / quant.scale + quant.zero_point), -128, 127).astype(np.int8)
        raw, deq, dtype = q, pp.dequantize(q, quant), "int8"
    else:
        raw = deq = values.astype(np.float32)
        dtype = "float32"
    doc = {"shape": [1, *values.shape], "dtype": dtype, "scale": quant.scale,
           "zero_point": quant.zero_point,
           "raw": raw.ravel().tolist() if quant.quantized else _floats(raw),
           "dequantized": _floats(deq)}
    return doc, raw


def _floats(a: np.ndarray) -> list[float]:
    """float32 values as the shortest decimal that parses back to the same float32."""
    return [float(np.format_float_positional(v, unique=True, trim="-"))
            for v in np.asarray(a, np.float32).ravel()]


def _check_margins(raw_boxes, raw_scores, box_q, score_q, score_thr, iou_thr, name) -> None:
    """Refuse a case whose result would hinge on float rounding (a Kotlin float may differ)."""
    idx, cls, sc = pp.best_class_candidates(raw_scores.reshape(-1, len(LABELS)), 0.0, score_q)
    gap = np.abs(sc.astype(np.float64) - score_thr)
    if ((gap > 0) & (gap < SCORE_MARGIN)).any():
        raise ValueError(f"{name}: a score is within {SCORE_MARGIN} of the threshold")
    keep = sc >= score_thr
    centers, strides = afl.anchor_points((IMGSZ, IMGSZ), STRIDES)
    b = raw_boxes.reshape(-1, 4)[idx[keep]]
    ltrb = pp.dequantize(b, box_q) if box_q.quantized else b
    xyxy = afl.decode_boxes(ltrb, centers[idx[keep]], strides[idx[keep]])
    for i in range(len(xyxy)):
        same = cls[keep] == cls[keep][i]
        iou = pp.box_iou(xyxy[i].astype(np.float64), xyxy.astype(np.float64))[same]
        if (np.abs(iou - iou_thr) < IOU_MARGIN).any():
            raise ValueError(f"{name}: a same-class IoU is within {IOU_MARGIN} of {iou_thr}")


def detect_case(name: str, description: str, scene: Scene, src_wh: tuple[int, int],
                box_q: pp.Quant, score_q: pp.Quant, score_thr: float = 0.25,
                iou_thr: float = 0.45, max_det: int = 100) -> dict:
    boxes_doc, raw_boxes = _tensor(scene.ltrb, box_q)
    scores_doc, raw_scores = _tensor(scene.scores, score_q)
    _check_margins(raw_boxes, raw_scores, box_q, score_q, score_thr, iou_thr, name)
    box = letterbox_of(*src_wh, IMGSZ, IMGSZ)
    # Exactly what Detector.postprocess does, from the raw (possibly int8) outputs.
    det = afl.decode_head(raw_boxes[None], raw_scores[None], (IMGSZ, IMGSZ), STRIDES, score_thr,
                         iou_thr, max_det, box_q, score_q)
    img = pp.to_image(det.boxes, box.scale_x, box.scale_y, box.pad_x, box.pad_y, *src_wh)
    ref = afl.decode_head(raw_boxes[None], raw_scores[None], (IMGSZ, IMGSZ), STRIDES, score_thr,
                         iou_thr, max_det, box_q, score_q, nms="reference")
    if not np.array_equal(det.anchors, ref.anchors):
        raise RuntimeError(f"{name}: OpenCV NMS and the reference NMS disagree")
    detections = [{"box": [float(v) for v in img[i]],
                   "box_model": [float(v) for v in det.boxes[i]],
                   "index": int(det.classes[i]), "label": LABELS[int(det.classes[i])],
                   "score": float(det.scores[i]), "anchor": int(det.anchors[i])}
                  for i in range(len(det))]
    return {"name": name, "description": description, "labels": list(LABELS),
            "input": {"height": IMGSZ, "width": IMGSZ}, "strides": list(STRIDES),
            "num_anchors": int(scene.centers.shape[0]), "num_classes": len(LABELS),
            "score_threshold": score_thr, "iou_threshold": iou_thr, "max_detections": max_det,
            "image": {"width": src_wh[0], "height": src_wh[1]},
            "letterbox": letterbox_dict(box), "boxes": boxes_doc, "scores": scores_doc,
            "detections": detections}


def detect_cases() -> list[dict]:
    cases = []

    # 1. int8, 640x480 frame -> vertical padding (pad_y 8). Overlapping same-class boxes
    # (suppressed), an identical box of another class (kept), a box near the edge.
    s = Scene(np.random.default_rng(1))
    s.put(s.anchor(8, 2, 3), 0, 0.90, (8, 16, 30, 38))
    s.put(s.anchor(8, 3, 3), 0, 0.70, (10, 17, 32, 39))        # IoU ~0.7 with above: dropped
    s.put(s.anchor(8, 2, 2), 1, 0.60, (8, 16, 30, 38))          # same box, other class: kept
    s.put(s.anchor(16, 2, 2), 2, 0.80, (30, 30, 62, 54))
    s.put(s.anchor(8, 6, 1), 1, 0.25, (44, 9, 54, 17))          # exactly at threshold: kept
    s.put(s.anchor(8, 7, 6), 1, 0.2421875, (56, 50, 63, 55))     # one step below: dropped
    cases.append(detect_case(
        "int8_vertical_pad", "int8 outputs; 640x480 image (pad top/bottom); same-class overlap "
        "suppressed, other class kept; a score exactly at the threshold is kept",
        s, (640, 480), BOX_Q, SCORE_Q))

    # 2. float outputs, tall 300x500 image -> horizontal padding; boxes reaching into the
    # padding and beyond the input are clipped to the image.
    s = Scene(np.random.default_rng(2))
    s.put(s.anchor(8, 3, 3), 2, 0.8123, (20, 10, 45, 40))
    s.put(s.anchor(16, 0, 1), 0, 0.6677, (-6, 12, 22, 34))       # left of the image content
    s.put(s.anchor(32, 1, 1), 1, 0.9412, (40, 44, 75, 70))       # beyond the input's corner
    s.put(s.anchor(8, 4, 4), 2, 0.5518, (24, 12, 46, 42))        # IoU ~0.8 with first: dropped
    s.put(s.anchor(8, 1, 6), 0, 0.3333, (2, 44, 18, 60))
    cases.append(detect_case(
        "float_horizontal_pad_clipping", "float32 outputs; 300x500 image (pad left/right); "
        "boxes in the padding and past the input edge are clipped to the image", s, (300, 500),
        pp.FLOAT, pp.FLOAT))

    # 3. max_detections cap: 7 separate objects, keep the best 4.
    s = Scene(np.random.default_rng(3))
    for k, (col, row) in enumerate([(0, 0), (3, 0), (6, 0), (0, 4), (3, 4), (6, 4), (3, 7)]):
        x, y = col * 8 + 4, row * 8 + 4
        s.put(s.anchor(8, col, row), k % 3, 0.35 + 0.08 * k, (x - 3, y - 3, x + 4, y + 3))
    cases.append(detect_case(
        "int8_max_detections", "int8 outputs; 7 objects, max_detections 4 keeps the 4 best",
        s, (64, 64), BOX_Q, SCORE_Q, max_det=4))

    # 4. ties: equal int8 scores. Same class and overlapping -> the lower anchor index wins;
    # equal class scores within one anchor -> the lower class id wins.
    s = Scene(np.random.default_rng(4))
    s.put(s.anchor(8, 5, 2), 1, 0.75, (34, 12, 50, 28))
    s.put(s.anchor(8, 4, 2), 1, 0.75, (33, 13, 49, 29))          # lower anchor, same score: kept
    s.put(s.anchor(16, 1, 2), 2, 0.5, (12, 34, 30, 52), others=0.0)
    s.scores[s.anchor(16, 1, 2), 0] = 0.5                        # class 0 ties class 2
    cases.append(detect_case(
        "int8_score_ties", "int8 outputs with equal scores: NMS visits equal scores in anchor "
        "order (lower index first); equal class scores of one anchor go to the lower class id",
        s, (64, 64), BOX_Q, SCORE_Q))

    # 5. int8 with a non-power-of-two scale and custom thresholds, 1280x720 frame.
    s = Scene(np.random.default_rng(5), background=0.2)
    s.put(s.anchor(8, 3, 3), 0, 0.66, (16, 20, 40, 44))
    s.put(s.anchor(8, 4, 3), 0, 0.62, (22, 22, 44, 46))          # IoU ~0.56 < 0.6: kept
    s.put(s.anchor(32, 1, 0), 1, 0.9, (34, 4, 62, 30))
    cases.append(detect_case(
        "int8_odd_scale_custom_thresholds", "int8 scores with scale 1/255; score_threshold "
        "0.3, iou_threshold 0.6 (the 0.56-IoU same-class pair is kept); 1280x720 image",
        s, (1280, 720), BOX_Q, SCORE_Q_ODD, score_thr=0.3, iou_thr=0.6))

    # 6. nothing above threshold.
    s = Scene(np.random.default_rng(6))
    cases.append(detect_case("float_empty", "float32 outputs, only background: no detections",
                             s, (640, 480), pp.FLOAT, pp.FLOAT))
    return cases


# ---------------------------------------------------------------- classification cases
def _classify(raw: np.ndarray, quant: pp.Quant, activation: str, top_k: int,
              labels: tuple[str, ...]) -> list[dict]:
    """Top-k exactly as the runtime's Classifier computes it."""
    probs = class_probabilities(pp.dequantize(raw, quant), activation)
    return [c.to_dict() for c in classifier_top_k(probs, labels, top_k)]


def classify_cases() -> list[dict]:
    labels = tuple(f"class{i}" for i in range(10))
    rng = np.random.default_rng(10)
    specs = [
        ("int8_softmax", "int8 softmax probabilities, scale 1/256", "softmax",
         pp.Quant(1.0 / 256.0, -128), rng.dirichlet(np.ones(10) * 0.5), 3),
        ("int8_softmax_ties", "int8 probabilities with ties at the top-k boundary: equal scores "
         "are ordered by class index", "softmax", pp.Quant(1.0 / 256.0, -128),
         np.array([0.05, 0.2, 0.05, 0.2, 0.1, 0.2, 0.05, 0.05, 0.05, 0.05]), 2),
        ("int8_logits_none", "int8 logits (activation none): softmax over dequantized values",
         "none", pp.Quant(0.08, 3), rng.normal(0, 2.5, 10), 5),
        ("float_logits_none_ties", "float32 logits with tied top values", "none", pp.FLOAT,
         np.array([1.5, -0.25, 3.0, 3.0, 0.5, 3.0, -2.0, 0.0, 1.0, 2.75]), 4),
    ]
    cases = []
    for name, desc, act, quant, values, k in specs:
        doc, raw = _tensor(np.asarray(values, np.float32).reshape(1, -1)[0], quant)
        doc["shape"] = [1, len(labels)]
        cases.append({"name": name, "description": desc, "labels": list(labels),
                      "activation": act, "top_k": k, "output": doc,
                      "top": _classify(raw, quant, act, k, labels)})
    return cases


# ---------------------------------------------------------------- letterbox and LUT cases
def letterbox_cases() -> list[dict]:
    sizes = [(640, 480, 256, 256), (480, 640, 256, 256), (1280, 720, 320, 320),
             (300, 500, 64, 64), (64, 64, 64, 64), (33, 17, 160, 160), (1920, 1080, 416, 416),
             (128, 5, 64, 64)]  # last: 5 * 0.5 = 2.5 rounds half to even -> 2 rows
    return [{"src_width": sw, "src_height": sh, "dst_width": dw, "dst_height": dh,
             **letterbox_dict(letterbox_of(sw, sh, dw, dh))} for sw, sh, dw, dh in sizes]


def lut_cases() -> list[dict]:
    specs = [([0.0], [255.0], 1.0 / 255.0, -128), ([127.5], [127.5], 0.0078125, 0),
             ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375], 0.018658, -14)]
    out = []
    for mean, std, scale, zp in specs:
        spec = InputSpec(height=1, width=1, channels=3, mean=tuple(mean), std=tuple(std))
        info = TensorInfo(0, "input", (1, 1, 1, 3), np.dtype(np.int8), scale, zp)
        lut = build_lut(spec, info)
        out.append({"mean": mean, "std": std, "scale": scale, "zero_point": zp,
                    "dtype": "int8", "lut": lut.T.tolist()})
    return out


def build_golden() -> dict:
    """The whole golden document (deterministic: seeded numpy only)."""
    return {
        "schema": SCHEMA,
        "generator": "benchmarks/make_golden.py",
        "tolerances": TOLERANCES,
        "detect": detect_cases(),
        "classify": classify_cases(),
        "letterbox": letterbox_cases(),
        "input_lut": lut_cases(),
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":")) + "\n"


# ---------------------------------------------------------------- tiny real .tflite
def build_tiny_tflite(imgsz: int = IMGSZ, labels: tuple[str, ...] = LABELS,
                      unit_range: bool = False) -> tuple[bytes, dict]:
    """A ~20 KB int8 detector (random weights) with the FORMAT.md outputs and metadata.

    The benchmarks reuse it at other sizes (``imgsz``, ``labels``) where only shapes matter.
    ``unit_range=True`` uses edgecnn's own input recipe (pixel / 255, calibrated on exactly
    [0, 1], so the input quantization is 1/255 with zero point -128); the default (pixel - 127.5)
    / 127.5 gives the golden fixture an input table that is not a plain shift.
    """
    mean, std, lo = ((0.0,), (255.0,), 0.0) if unit_range else ((127.5,), (127.5,), -1.0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tempfile

    import tensorflow as tf
    from tensorflow import keras

    from edgecnn.runtime import metadata as md
    from edgecnn.runtime.model import TFLiteModel

    keras.utils.set_random_seed(0)
    inp = keras.Input((imgsz, imgsz, 3), name="image")
    x, feats = inp, []
    for i, ch in enumerate((8, 8, 12, 12, 12)):
        x = keras.layers.Conv2D(ch, 3, strides=2, padding="same", activation="relu",
                                name=f"down{i}")(x)
        if i >= 2:
            feats.append(x)
    boxes, scores = [], []
    for s, f in zip(STRIDES, feats):
        n = afl.grid_size(imgsz, s) ** 2
        b = keras.layers.Conv2D(4, 1, activation="softplus", name=f"box_s{s}")(f)
        c = keras.layers.Conv2D(len(labels), 1, activation="sigmoid",
                                bias_initializer=keras.initializers.Constant(-1.5),
                                name=f"cls_s{s}")(f)
        boxes.append(keras.layers.Reshape((n, 4))(b))
        scores.append(keras.layers.Reshape((n, len(labels)))(c))
    model = keras.Model(inp, [keras.layers.Concatenate(axis=1, name="boxes")(boxes),
                              keras.layers.Concatenate(axis=1, name="scores")(scores)])
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            x = rng.uniform(lo, 1, (1, imgsz, imgsz, 3)).astype(np.float32)
            x[0, 0, 0], x[0, 0, 1] = lo, 1.0  # pin the calibrated input range
            yield [x]

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        flat = conv.convert()

    probe = TFLiteModel(flat)
    box_out = next(i for i, o in enumerate(probe.outputs) if o.shape[-1] == 4)
    meta = Metadata(
        task="detect", labels=tuple(labels), name="tiny_detect", arch="golden_tiny",
        input=InputSpec(height=imgsz, width=imgsz, channels=3, color="RGB",
                        resize="letterbox", mean=mean, std=std),
        decoder=DecoderSpec(strides=STRIDES, box_output=box_out, score_output=1 - box_out,
                            score_threshold=0.1, iou_threshold=0.45, max_detections=20),
        quantization="int8", edgecnn_version="0.1.0",
        io={"inputs": [t.to_dict() for t in probe.inputs],
            "outputs": [t.to_dict() for t in probe.outputs]})
    data = md.attach(flat, meta)
    fb, bundle = md.split_bundle(data)
    info = {
        "file": TINY_TFLITE.name, "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bundle_offset": len(fb), "bundle_size": len(bundle),
        "entries": [md.JSON_NAME, md.LABELS_NAME],
        "metadata": json.loads(json.dumps(meta.to_dict())),
        "labels_txt": "\n".join(labels) + "\n",
        "tensors": {"inputs": [t.to_dict() for t in probe.inputs],
                    "outputs": [t.to_dict() for t in probe.outputs]},
    }
    return data, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-tflite", action="store_true", help="write only the JSON vectors")
    args = ap.parse_args(argv)
    from edgecnn.fsutil import write_atomic

    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    text = dumps(build_golden())
    write_atomic(GOLDEN_JSON, text.encode())
    print(f"wrote {GOLDEN_JSON.relative_to(ROOT)} ({len(text)} bytes)")
    if not args.no_tflite:
        data, info = build_tiny_tflite()
        write_atomic(TINY_TFLITE, data)
        write_atomic(TINY_JSON, (json.dumps(info, indent=1) + "\n").encode())
        print(f"wrote {TINY_TFLITE.relative_to(ROOT)} ({len(data)} bytes) and {TINY_JSON.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
