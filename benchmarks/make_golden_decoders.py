"""Write the golden vectors of the foreign detection layouts, shared with the Kotlin core.

Output: ``tests/golden/decoders_golden.json`` (schema in docs/FORMAT.md, "Golden vectors of the
foreign layouts"): raw outputs of ``ultralytics_yolo`` (channels first and transposed, with and
without objectness, float and int8), ``ultralytics_end2end`` and ``ssd_postprocess`` heads,
their decoder sections and letterboxes, and the detections the Python runtime's registered
decoders produce from them; plus classifier outputs under ``activation = sigmoid``.

These decoders use no transcendental function, so a reimplementation in float32 reproduces
every score and model-input box bit for bit; the tolerances in the file are that tight.
Deterministic (seeded numpy, no TensorFlow): a test rebuilds the document in memory and
compares it with the committed file.

Usage:
    python benchmarks/make_golden_decoders.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from make_golden import _classify, _floats, dumps, letterbox_dict, letterbox_of  # noqa: E402

from edgecnn.runtime import postprocess as pp  # noqa: E402
from edgecnn.runtime.decoders import decoder_class  # noqa: E402
from edgecnn.runtime.decoders.spec import DecoderSpec  # noqa: E402
from edgecnn.runtime.model import TensorInfo  # noqa: E402

SCHEMA = "edgecnn.golden.decoders/1"
GOLDEN = ROOT / "tests" / "golden" / "decoders_golden.json"
LABELS = ("person", "car", "dog")
INPUT_HW = (48, 64)   # not square: width and height scalings must not be swapped
# Exact float32 arithmetic in both languages: scores and model-input boxes match to the last
# bit; image boxes are float64 from them. "classify_score": float32 exp differs by platform.
TOLERANCES = {"score": 1e-7, "box_model": 1e-5, "box": 1e-6, "classify_score": 1e-4,
              "exact": ["anchor", "index", "label", "letterbox"]}
# Cases must not sit on a decision edge where a different float rounding could flip them.
SCORE_MARGIN = 1e-5
IOU_MARGIN = 0.02
Q_UNIT = pp.Quant(1.0 / 256.0, -128)   # int8 values in 0..0.996: 0.25 is exactly -64


def quantize(values: np.ndarray, quant: pp.Quant, dtype: str) -> np.ndarray:
    """Float values -> the raw integers an int8 / uint8 output would hold."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, np.float64) / quant.scale + quant.zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def tensor_doc(values: np.ndarray, quant: pp.Quant = pp.FLOAT,
               dtype: str = "float32") -> tuple[dict, np.ndarray]:
    """One output in the file (``raw`` as the interpreter hands it over) and its raw array."""
    values = np.asarray(values, np.float32)
    raw = quantize(values, quant, dtype) if quant.quantized else values
    doc = {"shape": list(values.shape), "dtype": dtype, "scale": quant.scale,
           "zero_point": quant.zero_point,
           "raw": raw.ravel().tolist() if quant.quantized else _floats(raw),
           "dequantized": _floats(pp.as_float(raw, quant))}
    return doc, raw


def _decoder(doc: dict, tensors: list[tuple[dict, np.ndarray]], classes):
    spec = DecoderSpec.from_dict(doc)
    infos = [TensorInfo(i, f"out{i}", tuple(t["shape"]), np.dtype(t["dtype"]), t["scale"],
                        t["zero_point"]) for i, (t, _) in enumerate(tensors)]
    return decoder_class(spec.type)(spec, infos, INPUT_HW, LABELS, classes)


def _inputs(decoder, tensors) -> list[np.ndarray]:
    """The raw outputs a decoder reads, in the order of its ``*_output`` fields."""
    return [tensors[p][1] for p in decoder.positions]


def _check_margins(name: str, doc: dict, tensors, classes) -> None:
    """Refuse a case whose result hinges on rounding: every candidate's score away from the
    threshold (or exactly on it), and same-class IoUs away from the NMS threshold."""
    loose = _decoder({**doc, "score_threshold": 0.0, "iou_threshold": 1.0,
                      "max_detections": 100_000}, tensors, classes)
    found = loose.decode(_inputs(loose, tensors))
    gap = np.abs(found.scores.astype(np.float64) - doc["score_threshold"])
    if ((gap > 0) & (gap < SCORE_MARGIN)).any():
        raise ValueError(f"{name}: a score is within {SCORE_MARGIN} of the threshold")
    if doc["type"] != "ultralytics_yolo":
        return   # no NMS in the decoder
    keep = found.scores >= np.float32(doc["score_threshold"])
    boxes, cls = found.boxes[keep].astype(np.float64), found.classes[keep]
    for i in range(len(boxes)):
        iou = pp.box_iou(boxes[i], boxes)[cls == cls[i]]
        if (np.abs(iou - doc["iou_threshold"]) < IOU_MARGIN).any():
            raise ValueError(f"{name}: a same-class IoU is within {IOU_MARGIN} of "
                             f"{doc['iou_threshold']}")


def detect_case(name: str, description: str, decoder: dict,
                tensors: list[tuple[dict, np.ndarray]], image_wh: tuple[int, int],
                resize: str = "letterbox", classes: list[int] | None = None) -> dict:
    """Decode ``tensors`` (interpreter order) with the registered decoder of ``decoder``."""
    doc = DecoderSpec.from_dict(decoder).to_dict()   # defaults filled in, as a model carries
    _check_margins(name, doc, tensors, classes)
    dec = _decoder(doc, tensors, classes)
    raw = _inputs(dec, tensors)
    found = dec.decode(raw)
    if doc["type"] == "ultralytics_yolo":
        ref = dec.decode(raw, nms="reference")
        if not np.array_equal(found.anchors, ref.anchors):
            raise RuntimeError(f"{name}: OpenCV NMS and the reference NMS disagree")
    h, w = INPUT_HW
    box = letterbox_of(*image_wh, w, h, resize)
    img = pp.to_image(found.boxes, box.scale_x, box.scale_y, box.pad_x, box.pad_y, *image_wh)
    detections = [{"box": [float(v) for v in img[i]],
                   "box_model": _floats(found.boxes[i]),
                   "index": int(found.classes[i]), "label": LABELS[int(found.classes[i])],
                   "score": _floats(found.scores[i:i + 1])[0], "anchor": int(found.anchors[i])}
                  for i in range(len(found))]
    return {"name": name, "description": description, "labels": list(LABELS),
            "input": {"height": h, "width": w, "resize": resize},
            "image": {"width": image_wh[0], "height": image_wh[1]},
            "letterbox": letterbox_dict(box), "decoder": doc, "classes": classes,
            "outputs": [t for t, _ in tensors], "detections": detections}


# ---------------------------------------------------------------- ultralytics_yolo
class YoloHead:
    """``(N, K)`` rows of a YOLO head: ``cx, cy, w, h`` [objectness] then class scores."""

    def __init__(self, seed: int, anchors: int = 30, objectness: bool = False,
                 normalized: bool = True, background: float = 0.1):
        rng = np.random.default_rng(seed)
        self.objectness, self.normalized = objectness, normalized
        first = 5 if objectness else 4
        self.first = first
        self.rows = np.zeros((anchors, first + len(LABELS)), np.float32)
        self.rows[:, 0:2] = rng.uniform(0.1, 0.9, (anchors, 2))
        self.rows[:, 2:4] = rng.uniform(0.05, 0.3, (anchors, 2))
        self.rows[:, first:] = rng.uniform(0.0, background, (anchors, len(LABELS)))
        if objectness:
            self.rows[:, 4] = rng.uniform(0.2, 1.0, anchors)
        if not normalized:
            h, w = INPUT_HW
            self.rows[:, :4] *= np.array([w, h, w, h], np.float32)

    def put(self, anchor: int, cls: int, score: float, xyxy, objectness: float = 1.0) -> None:
        """Make ``anchor`` predict ``xyxy`` (model-input pixels) as ``cls`` with ``score``
        (the class probability; with objectness the decoded score is their product)."""
        x1, y1, x2, y2 = xyxy
        box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], np.float64)
        if self.normalized:
            h, w = INPUT_HW
            box /= (w, h, w, h)
        self.rows[anchor, :4] = box
        self.rows[anchor, self.first:] = 0.0
        self.rows[anchor, self.first + cls] = score
        if self.objectness:
            self.rows[anchor, 4] = objectness

    def output(self, channels_first: bool) -> np.ndarray:
        return (self.rows.T if channels_first else self.rows)[None]


def yolo_cases() -> list[dict]:
    cases = []
    q = Q_UNIT
    dec = {"type": "ultralytics_yolo"}

    head = YoloHead(21)
    head.put(3, 0, 0.9, (8, 8, 24, 30))
    head.put(4, 0, 0.7, (9, 8, 25, 31))      # IoU ~0.85 with anchor 3, same class: dropped
    head.put(5, 1, 0.6, (8, 8, 24, 30))      # the same box, other class: kept
    head.put(9, 2, 0.25, (40, 20, 60, 44))   # exactly at the threshold (int8 -64): kept
    head.put(11, 2, 0.246, (2, 30, 12, 46))  # one int8 step below: dropped
    head.put(17, 1, 0.8, (30, 2, 62, 20))
    cases.append(detect_case(
        "yolo_int8_channels_first_letterbox", "ultralytics_yolo [1, 7, N] int8 (one "
        "quantization for boxes and scores, normalized boxes); 640x480 frame letterboxed into "
        "64x48; same-class overlap suppressed, other class kept, a score exactly at the "
        "threshold kept", dec, [tensor_doc(head.output(True), q, "int8")], (640, 480)))

    head = YoloHead(22, normalized=False)
    head.put(0, 2, 0.8123, (10, 6, 30, 26))
    head.put(7, 0, 0.6677, (-4, 20, 14, 40))        # reaches left of the input: clipped
    head.put(8, 1, 0.9412, (50, 30, 70, 52))        # past the input's corner
    head.put(12, 2, 0.5518, (11, 7, 31, 27))        # IoU ~0.82 with anchor 0: dropped
    head.put(20, 0, 0.3333, (30, 10, 44, 22))
    head.put(21, 0, 0.3333, (34, 12, 46, 24))       # equal score, IoU ~0.5 < 0.6: kept
    cases.append(detect_case(
        "yolo_float_transposed_pixels_stretch", "ultralytics_yolo [1, N, 7] float32 "
        "(transposed), boxes in input pixels (normalized false), IoU threshold 0.6; 300x500 "
        "image stretched (two scales); boxes beyond the input clipped to the image",
        {**dec, "normalized": False, "iou_threshold": 0.6},
        [tensor_doc(head.output(False))], (300, 500), "stretch"))

    head = YoloHead(23, objectness=True)
    head.put(1, 1, 0.9, (4, 4, 20, 20), objectness=0.8)     # 0.72
    head.put(2, 1, 0.95, (5, 4, 21, 21), objectness=0.5)    # 0.475, overlaps anchor 1: dropped
    head.put(6, 0, 0.6, (30, 10, 50, 40), objectness=0.5)   # 0.3
    head.put(13, 2, 0.9, (40, 30, 60, 46), objectness=0.2)  # 0.18: below
    head.put(19, 0, 0.8, (2, 28, 18, 44), objectness=0.9)   # 0.72 ties anchor 1 (other class)
    cases.append(detect_case(
        "yolo_objectness_int8_transposed", "ultralytics_yolo with objectness (YOLOv5, K = 5 + "
        "C) int8 [1, N, 8]: a class scores objectness * probability in float32; 1280x720 "
        "frame letterboxed", {**dec, "objectness": True},
        [tensor_doc(head.output(False), q, "int8")], (1280, 720)))

    head = YoloHead(24)
    for k, (x, y) in enumerate([(4, 4), (20, 4), (36, 4), (52, 4), (4, 30), (20, 30),
                                (36, 30), (52, 30)]):
        head.put(k * 3, k % 3, 0.4 + 0.07 * k, (x, y, x + 10, y + 12))
    cases.append(detect_case(
        "yolo_float_max_detections_class_filter", "ultralytics_yolo float32 [1, 7, N]; 8 "
        "separate objects, classes filter [0, 2], max_detections 3 keeps the 3 best allowed",
        {**dec, "max_detections": 3}, [tensor_doc(head.output(True))], (64, 48),
        classes=[0, 2]))

    head = YoloHead(25, anchors=7)   # N == K: the channels-first reading wins
    head.put(2, 1, 0.75, (10, 10, 40, 30))
    head.put(5, 1, 0.75, (11, 11, 41, 31))           # equal score, overlaps: lower anchor kept
    cases.append(detect_case(
        "yolo_square_output_ties", "ultralytics_yolo [1, 7, 7]: when N == K the output is read "
        "channels first; equal scores, same class, overlapping: the lower anchor wins",
        dec, [tensor_doc(head.output(True))], (64, 48)))

    head = YoloHead(26, background=0.2)
    cases.append(detect_case(
        "yolo_int8_empty", "ultralytics_yolo int8, background only: no detections",
        {**dec, "score_threshold": 0.3}, [tensor_doc(head.output(True), q, "int8")],
        (640, 480)))
    return cases


# ---------------------------------------------------------------- end-to-end and SSD
def end2end_cases() -> list[dict]:
    rows = np.array([
        [4, 8, 20, 40, 0.30, 2],      # kept
        [10, 10, 30, 30, 0.80, 1],    # kept, best
        [0, 0, 64, 48, 0.10, 0],      # below the threshold
        [1, 1, 2, 2, 0.90, 3],        # class 3 is not a label: dropped
        [5, 5, 9, 9, 0.95, -1],       # negative class (padding row): dropped
        [30, 4, 60, 40, 0.30, 1.6],   # class rounds to 2; ties row 0 (later row after it)
        [-6, 20, 12, 52, 0.55, 0.5],  # class 0.5 rounds half to even: 0; beyond the input
        [40, 30, 50, 40, 0.25, 1],    # exactly at the threshold: kept
    ], np.float32)
    dec = {"type": "ultralytics_end2end"}
    cases = [detect_case(
        "end2end_float_letterbox", "ultralytics_end2end [1, 8, 6] float32 in input pixels: "
        "rows below the threshold or with a class outside the labels dropped, classes rounded "
        "half to even, equal scores in row order; 640x480 frame letterboxed", dec,
        [tensor_doc(rows[None])], (640, 480))]
    norm = rows.copy()
    norm[:, :4] /= np.array([64, 48, 64, 48], np.float32)
    # int8 with scale 1/64, zero point -64: -1..2.98 holds the classes, -1 and 3 included.
    q = pp.Quant(1.0 / 64.0, -64)
    cases.append(detect_case(
        "end2end_int8_normalized_cap", "ultralytics_end2end int8 (scale 1/64), corners in "
        "0..1 (normalized true), max_detections 2; stretch of a 200x100 image",
        {**dec, "normalized": True, "max_detections": 2},
        [tensor_doc(norm[None], q, "int8")], (200, 100), "stretch"))
    cases.append(detect_case(
        "end2end_uint8_empty", "ultralytics_end2end uint8 (scale 1/4), every score below "
        "0.5: no detections", {**dec, "score_threshold": 0.5},
        [tensor_doc(rows[None] * np.array([1, 1, 1, 1, 0.3, 1], np.float32),
                    pp.Quant(0.25, 0), "uint8")], (64, 48)))
    return cases


def ssd_cases() -> list[dict]:
    boxes = np.array([[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.5, 0.5], [0.1, 0.1, 0.9, 0.9],
                      [0.2, 0.3, 0.4, 0.6], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 1.0, 1.0]],
                     np.float32)[None]
    classes = np.array([[3, 1, 2, 1, 0, 2]], np.float32)
    scores = np.array([[0.95, 0.7, 0.7, 0.2, 0.6, 0.99]], np.float32)
    dec = {"type": "ssd_postprocess"}
    # Interpreter order scores, boxes, count, classes (exporters differ): positions say so.
    order = {"box_output": 1, "class_output": 3, "score_output": 0, "count_output": 2}
    cases = [detect_case(
        "ssd_float_reordered_offset", "ssd_postprocess float32, outputs in the order scores, "
        "boxes, count, classes; count 5 of 6 rows; class_offset -1 (labels without the model's "
        "background class): class 3 -> 2, class 0 -> -1 dropped; 640x480 letterboxed",
        {**dec, **order, "class_offset": -1},
        [tensor_doc(scores), tensor_doc(boxes), tensor_doc(np.array([5], np.float32)),
         tensor_doc(classes)], (640, 480))]
    q = pp.Quant(1.0 / 255.0, 0)
    cases.append(detect_case(
        "ssd_uint8_stretch", "ssd_postprocess with uint8 boxes and scores (scale 1/255): all 6 "
        "rows, score threshold 0.5, max_detections 3; 100x300 image stretched", {
            **dec, "score_threshold": 0.5, "max_detections": 3},
        [tensor_doc(boxes, q, "uint8"), tensor_doc(classes), tensor_doc(scores, q, "uint8"),
         tensor_doc(np.array([6], np.float32))], (100, 300), "stretch"))
    cases.append(detect_case(
        "ssd_count_zero", "ssd_postprocess with count 0: no detections even above the "
        "threshold", dec, [tensor_doc(boxes), tensor_doc(classes), tensor_doc(scores),
                           tensor_doc(np.array([0], np.float32))], (640, 480)))
    return cases


def classify_cases() -> list[dict]:
    """``activation = sigmoid``: logits get the sigmoid, values already in 0..1 do not."""
    labels = tuple(f"class{i}" for i in range(6))
    specs = [("sigmoid_logits_int8", "int8 logits (outside 0..1): sigmoid applied",
              pp.Quant(0.05, 10), [-3.0, 2.5, 0.25, 4.0, -0.5, 2.5], 3),
             ("sigmoid_probabilities_float", "float32 values within 0..1: taken as they are",
              pp.FLOAT, [0.1, 0.93, 0.5, 0.07, 0.93, 0.2], 4)]
    cases = []
    for name, desc, quant, values, k in specs:
        doc, raw = tensor_doc(np.asarray(values, np.float32)[None], quant,
                              "int8" if quant.quantized else "float32")
        cases.append({"name": name, "description": desc, "labels": list(labels),
                      "activation": "sigmoid", "top_k": k, "output": doc,
                      "top": _classify(raw, quant, "sigmoid", k, labels)})
    return cases


def build_golden() -> dict:
    """The whole document (deterministic)."""
    return {"schema": SCHEMA, "generator": "benchmarks/make_golden_decoders.py",
            "tolerances": TOLERANCES,
            "detect": [*yolo_cases(), *end2end_cases(), *ssd_cases()],
            "classify": classify_cases()}


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    from edgecnn.fsutil import write_atomic

    text = dumps(build_golden())
    write_atomic(GOLDEN, text.encode())
    print(f"wrote {GOLDEN.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
