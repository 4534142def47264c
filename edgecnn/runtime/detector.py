"""``Detector``: uint8 image in, typed detections in original-image pixels out.

Driven entirely by the model's metadata (docs/FORMAT.md): letterbox preprocessing, the
anchor-free ltrb head, best-class thresholding, class-aware NMS and the mapping back through
the letterbox. The numeric work lives in :mod:`edgecnn.runtime.postprocess`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import postprocess as pp
from edgecnn.runtime.metadata import Metadata
from edgecnn.runtime.model import TensorInfo, TFLiteModel
from edgecnn.runtime.preprocess import Preprocessor
from edgecnn.runtime.types import Category, Detection, Letterbox, Rect

SUPPORTED_DECODERS = ("anchor_free_ltrb",)


@dataclass(frozen=True)
class DetectorOptions:
    """Overrides of the decoder metadata; ``None`` keeps the model's own value.

    Attributes:
        score_threshold: keep anchors whose best class scores ``>=`` this (0..1).
        iou_threshold: same-class boxes overlapping a better one by IoU ``>`` this are dropped.
        max_detections: at most this many detections per image, best first.
        threads: interpreter threads (used by :meth:`Detector.from_file`).
        classes: only these classes (ids or labels); an anchor's best class is taken among them.
    """

    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    threads: int | None = None
    classes: tuple[int | str, ...] | None = None


def _quant(info: TensorInfo) -> pp.Quant:
    return pp.Quant(info.scale, info.zero_point) if info.quantized else pp.FLOAT


class Detector:
    """Object detector over a ``.tflite`` with edgecnn detection metadata.

    ``detect()`` is ``preprocess`` + ``infer`` + ``postprocess``; the three are public so the
    camera loop and the benchmark can time each stage.

    Example:
        det = Detector.from_file("detector_int8.tflite", DetectorOptions(score_threshold=0.4))
        for d in det.detect(cv2.imread("street.jpg")):
            print(d.category.label, d.category.score, d.box)
    """

    def __init__(self, model: TFLiteModel, options: DetectorOptions = DetectorOptions(),
                 metadata: Metadata | None = None):
        self.model = model
        self.options = options
        self.metadata = meta = metadata or model.require_metadata()
        if meta.task != "detect":
            raise UsageError(f"model task is {meta.task!r}, not 'detect'",
                             "use Classifier (or 'edgecnn predict', which picks the right one)")
        dec = meta.decoder
        if dec is None or dec.type not in SUPPORTED_DECODERS:
            raise UsageError(f"unsupported decoder {getattr(dec, 'type', None)!r}",
                             f"this edgecnn decodes {', '.join(SUPPORTED_DECODERS)}")
        self.decoder = dec
        self.labels = meta.labels
        self.preprocessor = Preprocessor(meta.input, model.input)
        self.imgsz = (self.preprocessor.height, self.preprocessor.width)
        self.strides = tuple(int(s) for s in dec.strides)
        self._check_outputs()
        self.box_info = model.outputs[dec.box_output]
        self.score_info = model.outputs[dec.score_output]
        self.box_quant, self.score_quant = _quant(self.box_info), _quant(self.score_info)
        self.score_threshold = _pick(options.score_threshold, dec.score_threshold)
        self.iou_threshold = _pick(options.iou_threshold, dec.iou_threshold)
        self.max_detections = int(_pick(options.max_detections, dec.max_detections))
        if not 0.0 <= self.score_threshold <= 1.0 or not 0.0 <= self.iou_threshold <= 1.0:
            raise UsageError(f"thresholds must be within 0..1 (score {self.score_threshold}, "
                             f"iou {self.iou_threshold})")
        if self.max_detections < 1:
            raise UsageError(f"max_detections must be >= 1, got {self.max_detections}")
        self.class_filter = self._resolve_classes(options.classes)

    def _check_outputs(self) -> None:
        dec, outs = self.decoder, self.model.outputs
        for name, pos in (("box_output", dec.box_output), ("score_output", dec.score_output)):
            if not 0 <= pos < len(outs):
                raise UsageError(f"decoder.{name} = {pos} but the model has {len(outs)} outputs",
                                 "re-run 'edgecnn convert' to rewrite the metadata")
        n = pp.num_anchors(self.imgsz, self.strides)
        want = {"boxes": (1, n, 4), "scores": (1, n, len(self.labels))}
        got = {"boxes": outs[dec.box_output].shape, "scores": outs[dec.score_output].shape}
        for key in want:
            if tuple(got[key]) != want[key]:
                raise UsageError(
                    f"{key} output has shape {list(got[key])}, expected {list(want[key])} for "
                    f"input {self.imgsz[0]}x{self.imgsz[1]}, strides {list(self.strides)} and "
                    f"{len(self.labels)} labels", "the metadata does not describe this model")

    def _resolve_classes(self, classes) -> np.ndarray | None:
        if classes is None:
            return None
        if isinstance(classes, (str, int)):
            classes = (classes,)
        ids = []
        for c in classes:
            if isinstance(c, str) and not c.isdigit():
                if c not in self.labels:
                    raise UsageError(f"unknown class {c!r}",
                                     f"the model's labels are: {', '.join(self.labels)}")
                ids.append(self.labels.index(c))
            else:
                i = int(c)
                if not 0 <= i < len(self.labels):
                    raise UsageError(f"class id {i} out of range",
                                     f"use 0..{len(self.labels) - 1}")
                ids.append(i)
        if not ids:
            raise UsageError("the classes filter is empty", "leave it unset to keep all classes")
        return np.asarray(sorted(set(ids)), dtype=np.int64)

    @classmethod
    def from_file(cls, path: str | os.PathLike, options: DetectorOptions = DetectorOptions()):
        return cls(TFLiteModel(path, threads=options.threads), options)

    def preprocess(self, image: np.ndarray, color: str = "BGR") -> tuple[np.ndarray, Letterbox]:
        """uint8 image (BGR, RGB or gray) -> ``(input tensor, Letterbox)``."""
        return self.preprocessor(image, color)

    def infer(self, tensor: np.ndarray, dequantize: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
        """Run the model; ``(boxes [1,N,4], scores [1,N,C])``, dequantized unless told not to.

        ``detect()`` passes ``dequantize=False``: :meth:`postprocess` thresholds int8 scores in
        the quantized domain and dequantizes only the surviving anchors.
        """
        self.model.set_input(tensor)
        self.model.invoke()
        return (self.model.get_output(self.decoder.box_output, dequantize),
                self.model.get_output(self.decoder.score_output, dequantize))

    def postprocess_raw(self, boxes: np.ndarray, scores: np.ndarray) -> pp.RawDetections:
        """Head outputs -> detections in model-input pixels (integer arrays = quantized)."""
        return pp.decode_head(boxes, scores, self.imgsz, self.strides, self.score_threshold,
                              self.iou_threshold, self.max_detections, self.box_quant,
                              self.score_quant, self.class_filter)

    def postprocess(self, boxes: np.ndarray, scores: np.ndarray,
                    letterbox: Letterbox) -> list[Detection]:
        """Head outputs -> detections in original-image pixels, best first.

        Args:
            boxes, scores: outputs of :meth:`infer`, dequantized floats or raw quantized
                integers (told apart by dtype).
            letterbox: from :meth:`preprocess`; maps model-input pixels back to the image.
        """
        raw = self.postprocess_raw(boxes, scores)
        xyxy = pp.to_image(raw.boxes, letterbox.scale_x, letterbox.scale_y, letterbox.pad_x,
                           letterbox.pad_y, letterbox.src_width, letterbox.src_height)
        labels = self.labels
        return [Detection(Rect(*(float(v) for v in box)),
                          Category(int(c), labels[int(c)], float(s)))
                for box, c, s in zip(xyxy.tolist(), raw.classes.tolist(), raw.scores.tolist())]

    def detect(self, image: np.ndarray, color: str = "BGR") -> list[Detection]:
        tensor, letterbox = self.preprocess(image, color)
        boxes, scores = self.infer(tensor, dequantize=False)
        return self.postprocess(boxes, scores, letterbox)


def _pick(override, default):
    return default if override is None else override
