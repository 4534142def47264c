"""``Detector``: uint8 image in, typed detections in original-image pixels out.

Driven entirely by the model's metadata (docs/FORMAT.md): letterbox preprocessing, the output
layout's decoder (:mod:`edgecnn.runtime.decoders`, picked by ``decoder.type``), then the mapping
back through the letterbox.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import postprocess as pp
from edgecnn.runtime.decoders import decoder_class
from edgecnn.runtime.decoders.base import Decoder
from edgecnn.runtime.metadata import Metadata
from edgecnn.runtime.runner import ModelSource, TaskRunner, register_runner
from edgecnn.runtime.task import Task
from edgecnn.runtime.types import Category, Detection, Letterbox, Rect


@dataclass(frozen=True)
class DetectorOptions:
    """Overrides of the decoder metadata; ``None`` keeps the model's own value.

    Attributes:
        score_threshold: keep candidates whose best class scores ``>=`` this (0..1).
        iou_threshold: same-class boxes overlapping a better one by IoU ``>`` this are dropped.
        max_detections: at most this many detections per image, best first.
        threads: interpreter threads (used when the model is given as a path).
        classes: only these classes (ids or labels); a candidate's best class is taken among
            them.
    """

    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    threads: int | None = None
    classes: tuple[int | str, ...] | None = None


@register_runner(Task.DETECT)
class Detector(TaskRunner):
    """Object detector over a ``.tflite`` with edgecnn detection metadata (the :class:`Runner`
    protocol).

    ``infer`` returns the decoder's outputs raw (integers for an int8 model), so ``postprocess``
    can threshold scores in the quantized domain and dequantize only what survives.

    Example:
        det = Detector("detector_int8.tflite", DetectorOptions(score_threshold=0.4))
        for d in det(cv2.imread("street.jpg")):
            print(d.category.label, d.category.score, d.box)
    """

    task = Task.DETECT
    result_key = "detections"
    Options = DetectorOptions
    options: DetectorOptions

    def __init__(self, model: ModelSource, options: DetectorOptions = DetectorOptions(),
                 metadata: Metadata | None = None):
        super().__init__(model, options, metadata)
        spec = self.metadata.decoder
        if spec is None:
            raise UsageError("detection metadata has no 'decoder' section",
                             "re-run 'edgecnn convert' to rewrite the metadata")
        overrides = {k: getattr(options, k) for k in
                     ("score_threshold", "iou_threshold", "max_detections")
                     if getattr(options, k) is not None}
        cls = decoder_class(spec.type)
        self.decoder: Decoder = cls(spec.replace(**overrides), self.model.outputs,
                                    (self.preprocessor.height, self.preprocessor.width),
                                    self.labels, self._resolve_classes(options.classes))

    def _resolve_classes(self, classes) -> list[int] | None:
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
        return ids

    @classmethod
    def from_file(cls, path: str | os.PathLike, options: DetectorOptions = DetectorOptions()):
        """Same as ``Detector(path, options)``."""
        return cls(path, options)

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, ...]:
        """Invoke; the decoder's outputs in its order, raw (not dequantized)."""
        self.model.set_input(tensor)
        self.model.invoke()
        return tuple(self.model.get_output(i, dequantize=False) for i in self.decoder.positions)

    def postprocess_raw(self, raw: Sequence[np.ndarray]) -> pp.RawDetections:
        """Outputs of :meth:`infer` (raw or dequantized) -> detections in model-input pixels."""
        return self.decoder.decode(raw)

    def postprocess(self, raw: Sequence[np.ndarray], context: Letterbox) -> list[Detection]:
        """Outputs of :meth:`infer` -> detections in original-image pixels, best first.

        Args:
            raw: the decoder's outputs, raw quantized integers or dequantized floats (told
                apart by dtype).
            context: the :class:`Letterbox` from :meth:`preprocess`.
        """
        found = self.postprocess_raw(raw)
        lb = context
        xyxy = pp.to_image(found.boxes, lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y,
                           lb.src_width, lb.src_height)
        labels = self.labels
        return [Detection(Rect(*box), Category(c, labels[c], s))
                for box, c, s in zip(xyxy.tolist(), found.classes.tolist(),
                                     found.scores.tolist())]

    def detect(self, image: np.ndarray, color: str = "BGR") -> list[Detection]:
        """Same as calling the detector."""
        return self(image, color)
