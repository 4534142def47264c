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


def checked_image(image) -> np.ndarray:
    """A usable HxWxC uint8 array (C = 1, 3 or 4), or UsageError naming what is wrong.

    16-bit images keep their top 8 bits (what ``cv2.imread`` does to 16-bit files); strided
    views are copied to contiguous memory, which OpenCV needs.
    """
    if not isinstance(image, np.ndarray):
        raise UsageError(f"an image must be a numpy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UsageError(f"images must be uint8 (or uint16), got {image.dtype}",
                         "convert it, e.g. np.clip(x, 0, 255).astype(np.uint8)")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise UsageError(f"image shape {image.shape} is not HxW, HxWx1, HxWx3 or HxWx4")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise UsageError(f"the image is empty ({image.shape[1]}x{image.shape[0]} pixels)")
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int
                       ) -> tuple[int, int, int, int]:
    """``(nw, nh, pad_x, pad_y)``: content size and offset of a centred letterbox.

    Rounding is half-to-even (Python ``round``), as docs/FORMAT.md specifies for every runtime.
    """
    r = min(dst_w / src_w, dst_h / src_h)
    nw, nh = max(1, int(round(src_w * r))), max(1, int(round(src_h * r)))
    return nw, nh, (dst_w - nw) // 2, (dst_h - nh) // 2


def resize_down(image: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None
                ) -> np.ndarray:
    """Resize to ``size = (w, h)``: area averaging when shrinking, bilinear when growing.

    ``cv2.INTER_AREA`` is ~10x slower for non-integer factors (640x480 -> 256x192: ~1 ms vs
    ~0.1 ms here), so a shrink by ``f >= 2`` is split into an exact integer-factor area step
    (OpenCV's fast path) and a bilinear step by less than 2x. Both steps keep OpenCV's
    half-pixel-centre geometry, so the letterbox mapping is unchanged; pixels differ from a
    single INTER_AREA by ~2.5 grey levels on average on a natural photo.
    """
    h, w = image.shape[:2]
    nw, nh = size
    f = min(w / nw, h / nh)
    if f <= 1.0:
        return cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_LINEAR)
    k = int(f)
    while k >= 2 and (w % k or h % k) and f / (k - 1) < 2.0:
        k -= 1
    if k < 2 or w % k or h % k:
        return cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_AREA)
    small = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    if small.shape[1] == nw and small.shape[0] == nh:
        if dst is None:
            return small
        dst[...] = small.reshape(dst.shape)
        return dst
    return cv2.resize(small, size, dst=dst, interpolation=cv2.INTER_LINEAR)


def input_hwc(spec: InputSpec, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a model input read in the metadata's layout.

    A channel count that does not fit says whether the other layout would (an NCHW
    ``[1, 3, 256, 256]`` described as NHWC), so the error carries the fix.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4 or shape[0] != 1:
        raise UsageError(f"model input shape {list(shape)} is not a single image (batch 1, "
                         "4 dimensions)")
    nchw = spec.layout == "NCHW"
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else shape[1:]
    if c == spec.channels:
        return h, w, c
    other, oc = ("NHWC", shape[3]) if nchw else ("NCHW", shape[1])
    fix = (f"the input is {other}: pass --layout {other} (or 'edgecnn metadata set MODEL "
           f"--layout {other}')" if oc == spec.channels
           else "re-run 'edgecnn convert' or 'edgecnn metadata set' to describe this input")
    raise UsageError(f"metadata says {spec.channels} channels, but the model input "
                     f"{list(shape)} read as {spec.layout} has {c}", fix)


def resize_linear(image: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None
                  ) -> np.ndarray:
    """Resize to ``size = (w, h)`` with one bilinear step (``input.interpolation = linear``)."""
    return cv2.resize(image, size, dst=dst, interpolation=cv2.INTER_LINEAR)


class Preprocessor:
    """Callable turning a uint8 image into ``(input_tensor, Letterbox)``.

    Example:
        pre = Preprocessor(metadata.input, model.input)
        tensor, box = pre(frame_bgr)
    """

    def __init__(self, spec: InputSpec, info: TensorInfo):
        self.spec = spec
        self.info = info
        self.nchw = spec.layout == "NCHW"
        self._shrink = resize_down if spec.interpolation == "area" else resize_linear
        self.height, self.width, self.channels = input_hwc(spec, info.shape)
        self.lut = build_lut(spec, info)
        self._canvas = np.full((self.height, self.width, self.channels), spec.pad_value,
                               dtype=np.uint8)
        fast = (spec.resize == "letterbox" and self.channels == 3
                and self.lut.dtype in (np.int8, np.uint8))
        self._lut3 = np.ascontiguousarray(self.lut).reshape(1, 256, 3) if fast else None
        # int8 input quantized with scale 1/255, zero point -128 over pixel/255 (the usual
        # full-int8 recipe) makes the table exactly p - 128.
        self._shift128 = fast and self.lut.dtype == np.int8 and bool(np.all(
            self.lut.astype(np.int16) == np.arange(256, dtype=np.int16)[:, None] - 128))
        self._pad_plane = np.broadcast_to(self.lut[spec.pad_value],
                                          (self.height, self.width, self.channels)).copy()
        self._buffers: dict = {}

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Resize (or letterbox) the uint8 image to the model's height and width."""
        h, w = image.shape[:2]
        if self.spec.resize == "stretch":
            resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
            return resized, Letterbox(self.width / w, self.height / h, 0.0, 0.0, w, h)
        nw, nh, px, py = letterbox_geometry(w, h, self.width, self.height)
        canvas = self._canvas.copy() if image.ndim == 3 else self._canvas[..., 0].copy()
        self._shrink(image, (nw, nh), dst=canvas[py:py + nh, px:px + nw])
        return canvas, Letterbox(nw / w, nh / h, float(px), float(py), w, h)

    def to_model_color(self, image: np.ndarray, color: str) -> tuple[np.ndarray, bool]:
        """Image in the model's channel count; True if channels must still be reversed.

        The RGB<->BGR swap is left for after resizing, where it touches fewer pixels.
        """
        image = checked_image(image)
        if image.shape[2] == 4:
            image = np.ascontiguousarray(image[:, :, :3])
        if image.shape[2] == 1:
            have = "GRAY"
        elif isinstance(color, str) and color.upper() in ("BGR", "RGB"):
            have = color.upper()
        else:
            raise UsageError(f"a {image.shape[2]}-channel image's color must be BGR or RGB, "
                             f"got {color!r}")
        want = self.spec.color
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

    def _letterbox_int(self, image: np.ndarray, swap: bool, lut3: np.ndarray
                       ) -> tuple[np.ndarray, Letterbox]:
        """Fast path for int8/uint8 colour models: only the content region is resized, swapped
        and looked up (straight into a fresh output tensor); the padding is one fill."""
        h, w = image.shape[:2]
        nw, nh, px, py = letterbox_geometry(w, h, self.width, self.height)
        key = (nw, nh)
        if self._buffers.get("key") != key:  # reused while the frame size stays the same
            self._buffers = {"key": key, "content": np.empty((nh, nw, 3), np.uint8),
                             "swapped": np.empty((nh, nw, 3), np.uint8)}
        content = self._shrink(image, (nw, nh), dst=self._buffers["content"])
        out = np.empty((1, self.height, self.width, 3), self.lut.dtype)
        plane, pad = out[0], self._pad_plane  # slice copies: a broadcast fill is 10x slower
        if py:
            plane[:py] = pad[:py]
            plane[py + nh:] = pad[py + nh:]
        if px:
            plane[py:py + nh, :px] = pad[py:py + nh, :px]
            plane[py:py + nh, px + nw:] = pad[py:py + nh, px + nw:]
        region = plane[py:py + nh, px:px + nw]
        if self._shift128:
            # The table is ``p - 128``: an XOR of the sign bit, ~20x faster than cv2.LUT.
            raw = region.view(np.uint8)
            if swap:
                cv2.cvtColor(content, cv2.COLOR_BGR2RGB, dst=raw)
                np.bitwise_xor(raw, np.uint8(0x80), out=raw)
            else:
                np.bitwise_xor(content, np.uint8(0x80), out=raw)
        else:
            if swap:
                content = cv2.cvtColor(content, cv2.COLOR_BGR2RGB, dst=self._buffers["swapped"])
            cv2.LUT(content, lut3, dst=region)
        return out, Letterbox(nw / w, nh / h, float(px), float(py), w, h)

    def __call__(self, image: np.ndarray, color: str = "BGR") -> tuple[np.ndarray, Letterbox]:
        """``(input tensor, Letterbox)``: the tensor in the model's layout (NHWC or NCHW)."""
        image, swap = self.to_model_color(image, color)
        if self._lut3 is not None:
            out, box = self._letterbox_int(image, swap, self._lut3)
        else:
            fitted, box = self.fit(image)
            out = self._apply_lut(fitted, swap).reshape(1, self.height, self.width,
                                                         self.channels)
        if self.nchw:   # models exported from PyTorch as they are (Ultralytics' LiteRT files)
            out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return out, box
