"""The parity report of a foreign conversion: the source framework against the ``.tflite``.

Both get the device's preprocessing of the same held-out images (the source in its own layout,
float). Classifiers: top-1 agreement and the largest probability difference. Detectors: the
raw outputs' difference, then both decoded by the runtime's own decoder: the mean IoU of
matched boxes (each source box at the model's score threshold paired with the best
same-class converted box, 0 when none is left) and, when the held-out images come with boxes
(a detection dataset), COCO mAP of both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from converters import calibration as cal
from converters.agreement import Agreement, classification_agreement, output_agreement
from converters.sources.base import Layout, SourceModel
from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.postprocess import box_iou

# How both detectors are decoded before matching: what 'edgecnn eval' uses for mAP
# (edgecnn.evaluate.detect MAP_*, a higher layer than converters).
SCORE_FLOOR = 0.001
NMS_IOU = 0.6
# (ground truth per image, detections per image as (boxes xyxy, scores, classes), labels)
# -> (mAP@0.5, mAP@0.5:0.95)
MapScorer = Callable[[Sequence, list, Sequence[str]], tuple[float, float]]


@dataclass(frozen=True)
class DetectionAgreement:
    """A converted detector against its source on the same images.

    Attributes:
        samples: images compared.
        mean_abs_diff, max_abs_diff: of the raw outputs (normalized boxes and scores).
        source_boxes, converted_boxes: detections at the model's score threshold.
        mean_iou: mean IoU of each source box with its matched converted box (0 if none).
        matched: fraction of source boxes matched at IoU >= 0.5.
        map50_source, map_source, map50_converted, map_converted: COCO mAP of both against
            the held-out boxes (None without ground truth).
    """

    samples: int
    mean_abs_diff: float
    max_abs_diff: float
    source_boxes: int
    converted_boxes: int
    mean_iou: float
    matched: float
    map50_source: float | None = None
    map_source: float | None = None
    map50_converted: float | None = None
    map_converted: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        text = (f"matched-box IoU {self.mean_iou:.3f} ({self.matched * 100:.0f}% of "
                f"{self.source_boxes} boxes matched, converted {self.converted_boxes}) on "
                f"{self.samples} held-out images")
        if self.map50_source is not None:
            text += (f"; mAP@0.5 {self.map50_source:.3f} -> {self.map50_converted:.3f}, "
                     f"mAP@0.5:0.95 {self.map_source:.3f} -> {self.map_converted:.3f}")
        return text


def parity(model: SourceModel, converted: TFLiteModel, meta: md.Metadata,
           images: list[np.ndarray], color: str, boxes: tuple[int, int] | None = None,
           ground_truth: Sequence | None = None, map_scorer: MapScorer | None = None
           ) -> Agreement | DetectionAgreement:
    """The source framework against the ``.tflite`` on the same uint8 images.

    ``boxes = (h, w)``: the converted YOLO head's boxes are normalized; so is the reference.
    ``ground_truth``: per image ``(boxes, classes, width, height)`` for the detectors' mAP,
    scored by ``map_scorer``.
    """
    from edgecnn.runtime.preprocess import Preprocessor

    reference = model.reference
    if reference is None:
        raise UsageError(f"{model.name}: its framework cannot run it here, so there is nothing "
                         "to compare the .tflite with", "pass --held-out 0")
    x = cal.to_model_inputs(images, meta.input, color)            # NHWC float
    ref_in = x.transpose(0, 3, 1, 2) if model.input.layout is Layout.NCHW else x
    ref = [np.concatenate(parts) for parts in
           zip(*[reference(ref_in[i:i + 1]) for i in range(len(x))])]
    if boxes is not None:
        h, w = boxes
        ref[0] = ref[0].copy()
        ref[0][:, :4] /= np.array([w, h, w, h], np.float32).reshape(1, 4, 1)
    pre = Preprocessor(meta.input, converted.input)
    got: list[list[np.ndarray]] = [[] for _ in converted.outputs]
    for im in images:
        converted.set_input(pre(im, color)[0])
        converted.invoke()
        for i in range(len(converted.outputs)):
            got[i].append(converted.get_output(i))
    cand = align_outputs([r.shape for r in ref], [np.concatenate(g) for g in got])
    if meta.task == "classify":
        return classification_agreement(probabilities(ref[0], meta),
                                        probabilities(cand[0], meta))
    raw = output_agreement(ref, cand)
    if len(ref) != 1 or len(converted.outputs) != 1:
        return raw   # several outputs: their decoder positions need the converted order
    return detection_agreement(raw, ref[0], converted, meta, images, color, ground_truth,
                               map_scorer)


def detection_agreement(raw: Agreement, reference: np.ndarray, converted: TFLiteModel,
                        meta: md.Metadata, images: list[np.ndarray], color: str,
                        ground_truth: Sequence | None, map_scorer: MapScorer | None = None
                        ) -> DetectionAgreement:
    """Decode the source's outputs and the converted model's with the same runtime decoder."""
    from edgecnn.runtime.detector import Detector, DetectorOptions

    shape = converted.outputs[0].shape
    measure = Detector(converted, DetectorOptions(score_threshold=SCORE_FLOOR,
                                                  iou_threshold=NMS_IOU),
                       metadata=meta)
    threshold = meta.decoder.score_threshold if meta.decoder is not None else SCORE_FLOOR
    src_dets, conv_dets = [], []
    for i, im in enumerate(images):
        tensor, box = measure.preprocess(im, color)
        ref_out = reference[i:i + 1]
        if ref_out.shape != shape:
            ref_out = ref_out.transpose(0, 2, 1)
        src_dets.append(measure.postprocess((ref_out,), box))
        conv_dets.append(measure.postprocess(measure.infer(tensor), box))
    ious, matched, n_src, n_conv = [], 0, 0, 0
    for s, c in zip(src_dets, conv_dets):
        s = [d for d in s if d.category.score >= threshold]
        c = [d for d in c if d.category.score >= threshold]
        n_src, n_conv = n_src + len(s), n_conv + len(c)
        for iou in match_ious(s, c):
            ious.append(iou)
            matched += iou >= 0.5
    maps: dict = {}
    if map_scorer is not None and ground_truth is not None and len(ground_truth) == len(images):
        for key, dets in (("source", src_dets), ("converted", conv_dets)):
            maps[f"map50_{key}"], maps[f"map_{key}"] = map_scorer(
                ground_truth, [_arrays(d) for d in dets], meta.labels)
    return DetectionAgreement(raw.samples, raw.mean_abs_diff, raw.max_abs_diff, n_src, n_conv,
                              float(np.mean(ious)) if ious else 1.0,
                              matched / len(ious) if ious else 1.0, **maps)


def match_ious(source, converted) -> list[float]:
    """Greedy, best source box first: each takes the unmatched same-class converted box it
    overlaps most. Returns the IoU of each source box with its match (0.0 for none)."""
    left = list(converted)
    out = []
    for d in sorted(source, key=lambda d: -d.category.score):
        cands = [c for c in left if c.category.index == d.category.index]
        if not cands:
            out.append(0.0)
            continue
        ious = box_iou(_xyxy(d), np.array([_xyxy(c) for c in cands]))
        j = int(np.argmax(ious))
        out.append(float(ious[j]))
        left.remove(cands[j])
    return out


def _xyxy(d) -> np.ndarray:
    return np.array([d.box.left, d.box.top, d.box.right, d.box.bottom], np.float64)


def _arrays(dets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([_xyxy(d) for d in dets], np.float64).reshape(-1, 4),
            np.array([d.category.score for d in dets], np.float32),
            np.array([d.category.index for d in dets], np.int32))


def probabilities(y: np.ndarray, meta: md.Metadata) -> np.ndarray:
    y = y.reshape(len(y), -1).astype(np.float64)
    if meta.output_activation == "softmax":
        return y
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def align_outputs(ref_shapes: list[tuple], outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Converted outputs in the source's order and shapes (routes may reorder or transpose)."""
    left = list(range(len(outputs)))
    aligned = []
    for shape in ref_shapes:
        for j in left:
            y = outputs[j]
            if y.shape == tuple(shape):
                pick = y
            elif y.ndim == 3 and y.shape == (shape[0], shape[2], shape[1]):
                pick = y.transpose(0, 2, 1)
            elif y.size == int(np.prod(shape)) and y.ndim == 2:
                pick = y.reshape(shape)
            else:
                continue
            aligned.append(pick)
            left.remove(j)
            break
        else:
            raise UsageError(f"no converted output matches the source's output of shape "
                             f"{list(shape)} (got {[list(o.shape) for o in outputs]})")
    return aligned
