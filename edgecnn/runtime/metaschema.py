"""The schema of ``edgecnn.json``: the type, range and length of every field, checked on read.

:func:`validate` turns a parsed document into plain, checked values (or raises UsageError
naming the field and what it must be), so no malformed value reaches the runtime as a
``TypeError`` or a silent garbage input (``std: [0]``). docs/FORMAT.md lists the same rules.
Unknown top-level keys are ignored (newer writers may add some); unknown keys inside
``input``, ``decoder`` and ``output`` are refused, as they always were.
"""

from __future__ import annotations

import math
import re

from edgecnn.errors import UsageError

MAX_LABELS = 65536
MAX_LABEL_CHARS = 256
MAX_TEXT_CHARS = 256
MAX_SIDE = 8192
MAX_STRIDES = 8
MAX_OUTPUT_INDEX = 15
MAX_DETECTIONS = 100000
MAX_IO_DEPTH = 8
MAX_IO_ITEMS = 10000
TASKS = ("classify", "detect")
COLORS = ("RGB", "BGR", "GRAY")
RESIZES = ("stretch", "letterbox")
INTERPOLATIONS = ("area", "linear")
ACTIVATIONS = ("softmax", "sigmoid", "none")
_IDENT = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
HINT = "re-run 'edgecnn convert' to rewrite the metadata"


def fail(message: str) -> UsageError:
    return UsageError(f"metadata {message}", HINT)


def integer(value, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise fail(f"'{key}' must be an integer in {lo}..{hi}, got {show(value)}")
    return value


def number(value, key: str, lo: float, hi: float, open_low: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (lo < value if open_low else lo <= value) and value <= hi)
    if not ok:
        low = f"above {lo}" if open_low else f"{lo}"
        raise fail(f"'{key}' must be a finite number {low}..{hi}, got {show(value)}")
    return float(value)


def text(value, key: str, max_chars: int = MAX_TEXT_CHARS, choices: tuple = ()) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise fail(f"'{key}' must be text of at most {max_chars} characters, got {show(value)}")
    if choices and value not in choices:
        raise fail(f"'{key}' must be one of {', '.join(choices)}, got {show(value)}")
    return value


def section(doc: dict, key: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise fail(f"'{key}' must be an object, got {show(value)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise fail(f"'{key}' has unknown field(s) {', '.join(map(repr, unknown[:3]))}")
    missing = [k for k in required if k not in value]
    if missing:
        raise fail(f"'{key}' lacks {', '.join(map(repr, missing))}")
    return value


def number_list(value, key: str, lengths: tuple[int, ...], lo: float, hi: float,
                open_low: bool = False) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) not in lengths:
        raise fail(f"'{key}' must be a list of {' or '.join(map(str, lengths))} numbers, "
                   f"got {show(value)}")
    return tuple(number(v, f"{key}[{i}]", lo, hi, open_low) for i, v in enumerate(value))


def labels(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LABELS:
        raise fail(f"'labels' must be a list of 1..{MAX_LABELS} strings, got {show(value)}")
    for i, label in enumerate(value):
        if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS \
                or "\n" in label or "\r" in label:
            raise fail(f"'labels[{i}]' must be one line of at most {MAX_LABEL_CHARS} "
                       f"characters, got {show(label)}")
    return tuple(value)


def input_fields(doc: dict) -> dict:
    """The checked ``input`` section as keyword arguments of ``InputSpec``."""
    keys = ("height", "width", "channels", "layout", "color", "resize", "mean", "std",
            "pad_value", "interpolation")
    raw = section(doc, "input", keys, ("height", "width"))
    out: dict = {"height": integer(raw["height"], "input.height", 1, MAX_SIDE),
                 "width": integer(raw["width"], "input.width", 1, MAX_SIDE)}
    channels = out["channels"] = integer(raw.get("channels", 3), "input.channels", 1, 3)
    if channels == 2:
        raise fail("'input.channels' must be 1 or 3, got 2")
    # NCHW: a foreign model kept as it is (edgecnn's own routes always give NHWC inputs)
    out["layout"] = text(raw.get("layout", "NHWC"), "input.layout", choices=("NHWC", "NCHW"))
    color = out["color"] = text(raw.get("color", "RGB" if channels == 3 else "GRAY"),
                                "input.color", choices=COLORS)
    if (color == "GRAY") != (channels == 1):
        raise fail(f"'input.color' {color} does not fit {channels} channel(s)")
    out["resize"] = text(raw.get("resize", "stretch"), "input.resize", choices=RESIZES)
    lengths = (1,) if channels == 1 else (1, 3)
    out["mean"] = number_list(raw.get("mean", [0.0]), "input.mean", lengths, -1e6, 1e6)
    out["std"] = number_list(raw.get("std", [255.0]), "input.std", lengths, 1e-6, 1e6)
    out["pad_value"] = integer(raw.get("pad_value", 114), "input.pad_value", 0, 255)
    out["interpolation"] = text(raw.get("interpolation", "area"), "input.interpolation",
                                choices=INTERPOLATIONS)
    return out


def decoder_fields(doc: dict) -> dict:
    """The ``decoder`` section as keyword arguments of ``DecoderSpec``, its common fields checked
    here. The layout's own fields pass through: ``DecoderSpec`` has the decoder named by
    ``type`` (``edgecnn/runtime/decoders``) check them, with the helpers of this module."""
    raw = doc.get("decoder")
    if not isinstance(raw, dict):
        raise fail(f"'decoder' must be an object, got {show(raw)}")
    out: dict = dict(raw)
    out["type"] = text(raw.get("type", "anchor_free_ltrb"), "decoder.type", 64)
    if not _IDENT.fullmatch(out["type"]):
        raise fail(f"'decoder.type' must be a lower-case identifier, got {show(out['type'])}")
    for key, default in (("score_threshold", 0.25), ("iou_threshold", 0.45)):
        out[key] = number(raw.get(key, default), f"decoder.{key}", 0.0, 1.0)
    out["max_detections"] = integer(raw.get("max_detections", 100), "decoder.max_detections",
                                    1, MAX_DETECTIONS)
    return out


def io_section(value) -> dict:
    """The informational ``io`` copy: any JSON object, bounded in depth and size."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(f"'io' must be an object, got {show(value)}")
    stack: list[tuple[dict | list, int]] = [(value, 1)]
    items = 0
    while stack:  # iterative: a deep document must not become a RecursionError here
        node, depth = stack.pop()
        if depth > MAX_IO_DEPTH:
            raise fail(f"'io' is nested deeper than {MAX_IO_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            items += 1
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
        if items > MAX_IO_ITEMS:
            raise fail(f"'io' holds more than {MAX_IO_ITEMS} values")
    return value


def checksum(value) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise fail(f"'flatbuffer_sha256' must be 64 lower-case hex digits, got {show(value)}")
    return value


def show(value) -> str:
    text_ = repr(value)
    return f"{type(value).__name__} {text_[:40] + '...' if len(text_) > 40 else text_}"
