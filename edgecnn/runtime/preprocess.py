"""Camera frame (uint8, any size, BGR or RGB) -> model input tensor, in as few passes as we can.

Resize (stretch or letterbox) runs on the uint8 frame; normalization and input quantization
are folded into one 256-entry lookup table per channel, applied with ``cv2.LUT``, so an int8
model's input costs one table look-up per pixel instead of float arithmetic.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.types import Letterbox


def build_lut(spec: InputSpec, info: TensorInfo) -> np.ndarray:
    """(256, C) table: pixel value -> model input value in the tensor's dtype."""
    pixels = np.arange(256, dtype=np.float64)[:, None]
    channels = spec.channels
    mean = np.broadcast_to(np.asarray(spec.mean, dtype=np.float64), (channels,))
    std = np.broadcast_to(np.asarray(spec.std, dtype=np.float64), (channels,))
    x = (pixels - mean) / std
    if info.quantized:
        limits = np.iinfo(info.dtype)
        x = np.clip(np.round(x / info.scale + info.zero_point), limits.min, limits.max)
    return x.astype(info.dtype)


class Preprocessor:
    """Callable turning a uint8 image into ``(input_tensor, Letterbox)``.

    Example:
        pre = Preprocessor(metadata.input, model.input)
        tensor, box = pre(frame_bgr)
    """

    def __init__(self, spec: InputSpec, info: TensorInfo):
        self.spec = spec
        self.info = info
        shape = info.shape
        if len(shape) != 4 or shape[0] != 1:
            raise UsageError(f"model input shape {shape} is not a single NHWC image")
        self.height, self.width, self.channels = int(shape[1]), int(shape[2]), int(shape[3])
        if self.channels != spec.channels:
            raise UsageError(f"metadata says {spec.channels} channels, model input has "
                             f"{self.channels}")
        self.lut = build_lut(spec, info)
        self._canvas = np.full((self.height, self.width, self.channels), spec.pad_value,
                               dtype=np.uint8)

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Resize (or letterbox) the uint8 image to the model's height and width."""
        h, w = image.shape[:2]
        if self.spec.resize == "stretch":
            resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
            return resized, Letterbox(self.width / w, self.height / h, 0.0, 0.0, w, h)
        r = min(self.width / w, self.height / h)
        nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
        px, py = (self.width - nw) // 2, (self.height - nh) // 2
        canvas = self._canvas.copy() if image.ndim == 3 else self._canvas[..., 0].copy()
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        canvas[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
        return canvas, Letterbox(nw / w, nh / h, float(px), float(py), w, h)

    def to_model_color(self, image: np.ndarray, color: str) -> tuple[np.ndarray, bool]:
        """Image in the model's channel count; True if channels must still be reversed.

        The RGB<->BGR swap is left for after resizing, where it touches fewer pixels.
        """
        if image.dtype != np.uint8:
            raise UsageError(f"images must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise UsageError(f"image shape {image.shape} is not HxW, HxWx1, HxWx3 or HxWx4")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        want, have = self.spec.color, ("GRAY" if image.shape[2] == 1 else color.upper())
        if want == "GRAY":
            if have == "GRAY":
                return image[:, :, 0], False
            code = cv2.COLOR_BGR2GRAY if have == "BGR" else cv2.COLOR_RGB2GRAY
            return cv2.cvtColor(image, code), False
        if have == "GRAY":
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), False
        return image, want != have

    def _apply_lut(self, fitted: np.ndarray, swap: bool) -> np.ndarray:
        if swap:
            fitted = cv2.cvtColor(fitted, cv2.COLOR_BGR2RGB)
        lut = self.lut
        if self.channels == 1:
            table = lut[:, 0]
            if table.dtype in (np.int8, np.uint8):
                return cv2.LUT(fitted.reshape(self.height, self.width), table.reshape(1, 256))
            return table[fitted]
        if lut.dtype in (np.int8, np.uint8):
            return cv2.LUT(fitted, np.ascontiguousarray(lut).reshape(1, 256, self.channels))
        return np.stack([lut[fitted[:, :, c], c] for c in range(self.channels)], axis=-1)

    def __call__(self, image: np.ndarray, color: str = "BGR") -> tuple[np.ndarray, Letterbox]:
        image, swap = self.to_model_color(image, color)
        fitted, box = self.fit(image)
        out = self._apply_lut(fitted, swap)
        return out.reshape(1, self.height, self.width, self.channels), box
