"""``ssd_postprocess``: the four outputs of TFLite's ``TFLite_Detection_PostProcess`` op.

SSD models of the TF Object Detection API and MediaPipe / Model Maker's EfficientDet-Lite end in
this op, which decodes the anchors and runs NMS inside the model. Its outputs, at the positions
the four ``*_output`` fields name (exporters differ in their order):

- boxes ``[1, N, 4]``: ``ymin, xmin, ymax, xmax`` in 0..1 of the input;
- classes ``[1, N]``: class numbers as floats (``class_offset`` is added: -1 when the labels
  file lists a background class the model does not count, ...);
- scores ``[1, N]``;
- count ``[1]``: how many rows are valid.

Decoding: the first ``count`` rows, ``score >= score_threshold`` (and the class filter), classes
within the labels, order by score (ties: lower row first), at most ``max_detections``; no NMS
(the op did it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.decoders import register_decoder
from edgecnn.runtime.decoders.base import Decoder, DecoderParams, bounds
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.postprocess import RawDetections, as_float, select_rows

TYPE = "ssd_postprocess"


@dataclass(frozen=True)
class SsdPostprocessParams(DecoderParams):
    """The ``decoder`` fields of this layout (docs/FORMAT.md)."""

    box_output: int = 0
    class_output: int = 1
    score_output: int = 2
    count_output: int = 3
    class_offset: int = field(default=0, metadata=bounds(-1000, 1000))


@register_decoder
class SsdPostprocess(Decoder):
    """Decoder of the ``TFLite_Detection_PostProcess`` outputs (see the module docstring)."""

    type = TYPE
    Params = SsdPostprocessParams
    params: SsdPostprocessParams

    def check(self, outputs: Sequence[TensorInfo], input_hw: tuple[int, int],
              labels: Sequence[str]) -> None:
        shapes = [tuple(int(d) for d in o.shape) for o in outputs]
        n = shapes[0][1] if len(shapes[0]) == 3 else None
        fits = (n is not None and shapes[0] == (1, n, 4) and shapes[1] == (1, n)
                and shapes[2] == (1, n) and shapes[3] in ((1,), ()))
        if not fits:
            p = self.params
            got = ", ".join(f"{role} (output {pos}) {list(s)}" for role, pos, s in zip(
                ("boxes", "classes", "scores", "count"),
                (p.box_output, p.class_output, p.score_output, p.count_output), shapes))
            raise UsageError(f"the TFLite_Detection_PostProcess outputs do not fit: {got}; "
                             f"expected boxes [1, N, 4], classes [1, N], scores [1, N], count "
                             f"[1] ({TYPE})", "set box_output, class_output, score_output and "
                             "count_output to the positions of those outputs")

    def decode(self, raw: Sequence[np.ndarray]) -> RawDetections:
        boxes, classes, scores, count = (as_float(np.asarray(r), q)
                                         for r, q in zip(raw, self.quant))
        n = int(np.clip(np.rint(count.reshape(-1)[0]), 0, scores.size)) if count.size else 0
        h, w = self.input_hw
        yx = boxes.reshape(-1, 4)[:n]
        # ymin, xmin, ymax, xmax in 0..1 -> x1, y1, x2, y2 in model-input pixels
        xyxy = yx[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
        cls = classes.reshape(-1)[:n] + np.float32(self.params.class_offset)
        return select_rows(xyxy, scores.reshape(-1)[:n], cls, len(self.labels),
                           self.score_threshold, self.max_detections, self.classes)
