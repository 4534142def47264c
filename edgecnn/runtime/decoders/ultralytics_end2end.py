"""``ultralytics_end2end``: detections already selected by the model (YOLOv10, YOLO26).

One output ``[1, N, 6]``: per row ``x1, y1, x2, y2, score, class`` after the model's own
selection (no NMS is needed or applied). Ultralytics' exports write the corners in input pixels
(end-to-end models are left un-normalized, even for LiteRT); ``normalized`` says they are in
0..1 of the input instead. The class is a number: it is rounded to the nearest integer, and
rows whose class is not one of the labels are dropped.

Decoding: dequantize, keep ``score >= score_threshold`` (and the class filter), order by
score (ties: lower row first), at most ``max_detections``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.decoders import register_decoder
from edgecnn.runtime.decoders.base import Decoder, DecoderParams
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import RawDetections, as_float, select_rows

TYPE = "ultralytics_end2end"


@dataclass(frozen=True)
class UltralyticsEnd2endParams(DecoderParams):
    """The ``decoder`` fields of this layout (docs/FORMAT.md)."""

    output: int = 0
    normalized: bool = False


@register_decoder
class UltralyticsEnd2end(Decoder):
    """Decoder of end-to-end YOLO outputs ``[1, N, 6]`` (see the module docstring)."""

    type = TYPE
    Params = UltralyticsEnd2endParams
    params: UltralyticsEnd2endParams

    def check(self, outputs: Sequence[TensorInfo], input_hw: tuple[int, int],
              labels: Sequence[str]) -> None:
        shape = tuple(outputs[0].shape)
        if len(shape) != 3 or shape[0] != 1 or shape[2] != 6:
            raise UsageError(f"output {self.params.output} has shape {list(shape)}, expected "
                             f"[1, N, 6] (x1, y1, x2, y2, score, class per row: end-to-end "
                             f"YOLO, {TYPE})", "use decoder ultralytics_yolo for a [1, 4+C, N] "
                             "output")

    def decode(self, raw: Sequence[np.ndarray]) -> RawDetections:
        rows = as_float(np.asarray(raw[0]).reshape(-1, 6), self.quant[0])
        boxes = rows[:, :4]
        if self.params.normalized:
            h, w = self.input_hw
            boxes = boxes * np.array([w, h, w, h], np.float32)
        return select_rows(boxes, rows[:, 4], rows[:, 5], len(self.labels),
                           self.score_threshold, self.max_detections, self.classes)
