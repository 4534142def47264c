"""Metadata for a ``.tflite`` edgecnn did not write: read from its file, completed by options.

``edgecnn predict``, ``camera``, ``eval`` and ``metadata set`` take the same options as
``convert`` (``--task``, ``--labels``, ``--decoder``, ``--mean``/``--std``, ``--layout``,
``--resize``) for models without edgecnn metadata. :func:`resolve_metadata` builds the
:class:`Metadata` the runners need, in this order: edgecnn's own metadata (options override
fields of it); else the ``metadata.json`` Ultralytics appends to its exports (names, task,
image size, end-to-end flag); else, when options are given, the options and what the tensors
show. The rest is read from the tensors: the input layout (the axis holding 1 or 3 channels),
the task (one 2-d output: classify) and the decoder (:func:`guess_decoder`). A model that says
nothing about itself and gets no options is refused: guessing its normalization silently
would give wrong answers that look right.

Example:
    meta = resolve_metadata(TFLiteModel("yolo11n_float32.tflite"))   # Ultralytics' export
    meta = resolve_metadata(model, MetadataOptions(task="classify", labels=("cat", "dog"),
                                                   mean=(127.5,), std=(127.5,)))
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.decoders import DecoderSpec, decoder_class
from edgecnn.runtime.model import TensorInfo, TFLiteModel
from edgecnn.runtime.task import Task
from edgecnn.runtime.sourcemeta import (
    Layout,
    SourceMetadata,
    image_input,
    parse_props,
    ultralytics_props,
)

OPTIONS_HINT = ("pass what the model needs: --task classify|detect, --labels FILE|a,b,c, "
                "--mean/--std, --layout, --resize (or attach them once with 'edgecnn metadata "
                "set')")
# Ultralytics' predict defaults, so its models draw the same boxes here as there.
ULTRALYTICS_THRESHOLDS = {"score_threshold": 0.25, "iou_threshold": 0.7, "max_detections": 300}


@dataclass(frozen=True)
class MetadataOptions:
    """What the user says about a model (``None``: read from the file or the tensors).

    Attributes:
        task: ``classify`` or ``detect``.
        labels: class names, index = class id.
        decoder: a decoder section (type and fields) for detectors.
        mean, std: input normalization in pixel units (one value or one per channel).
        layout: ``NCHW`` or ``NHWC``.
        resize: ``letterbox`` or ``stretch``.
        color: ``RGB`` or ``BGR`` channel order the model expects.
        activation: classifier output: ``softmax`` (probabilities), ``sigmoid`` or ``none``
            (logits).
        interpolation: ``area`` (edgecnn's shrink) or ``linear`` (one bilinear resize, what
            Ultralytics feeds its models; the default for files it wrote).
    """

    task: str | None = None
    labels: tuple[str, ...] | None = None
    decoder: dict | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None
    resize: str | None = None
    color: str | None = None
    activation: str | None = None
    interpolation: str | None = None

    def given(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    @classmethod
    def parse(cls, task: str | None = None, labels: str | None = None,
              decoder: str | None = None, mean: str | None = None, std: str | None = None,
              layout: str | None = None, resize: str | None = None, color: str | None = None,
              activation: str | None = None, interpolation: str | None = None
              ) -> MetadataOptions:
        """The options from their command-line text (each checked, one-line errors)."""
        return cls(task=task, labels=parse_labels(labels), decoder=parse_decoder(decoder),
                   mean=parse_floats(mean, "--mean"), std=parse_floats(std, "--std"),
                   layout=Layout.parse(layout).value if layout else None,
                   resize=resize, color=color.upper() if color else None,
                   activation=activation, interpolation=interpolation)


def parse_labels(value: str | None) -> tuple[str, ...] | None:
    """``--labels``: a file with one name per line, or ``a,b,c``."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        if path.stat().st_size > 16 << 20:
            raise UsageError(f"--labels {value} is larger than 16 MB", "pass a labels file")
        names = [ln.strip() for ln in path.read_text(encoding="utf-8",
                                                     errors="replace").splitlines()]
    else:
        names = [n.strip() for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UsageError(f"--labels {value!r} names no class", "pass a file or a,b,c")
    return tuple(names)


def parse_floats(value: str | None, option: str) -> tuple[float, ...] | None:
    """``--mean``/``--std``: one number or one per channel (``r,g,b``)."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a number or r,g,b numbers",
                         f"e.g. {option} 127.5 or {option} 123.7,116.3,103.5") from None
    if len(numbers) not in (1, 3) or not all(np.isfinite(numbers)) or (
            option == "--std" and min(numbers) <= 0):
        raise UsageError(f"{option} {value!r} needs 1 or 3 finite values"
                         + (" above 0" if option == "--std" else ""))
    return numbers


def parse_decoder(value: str | None) -> dict | None:
    """``--decoder TYPE[:key=value,...]`` -> a decoder section, its fields checked by the decoder.

    Values are JSON (``true``, ``3``, ``[8, 16]``) or else text.

    Example:
        parse_decoder("ultralytics_yolo:objectness=true,normalized=false")
        parse_decoder("ssd_postprocess:box_output=1,class_output=3,score_output=0,count_output=2")
    """
    if value is None:
        return None
    name, _, rest = value.partition(":")
    name = name.strip()
    decoder_class(name)   # unknown type: one line naming the known ones
    section: dict[str, Any] = {"type": name}
    for item in filter(None, (p.strip() for p in _split_top(rest))):
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--decoder field {item!r} is not key=value",
                             "e.g. --decoder ultralytics_yolo:objectness=true")
        try:
            section[key.strip()] = json.loads(text)
        except ValueError:
            section[key.strip()] = text.strip()
    DecoderSpec.from_dict(section)   # fields checked now, with the schema's messages
    return section


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets (``strides=[8,16],output=0``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def source_metadata(model: TFLiteModel) -> SourceMetadata:
    """What another tool wrote into the file (Ultralytics' ``metadata.json``), else nothing."""
    props = ultralytics_props(model.bundle) if model.metadata is None else None
    return parse_props(props) if props else SourceMetadata()


def resolve_metadata(model: TFLiteModel, options: MetadataOptions | None = None) -> md.Metadata:
    """The metadata the runners use for ``model`` (see the module docstring).

    Raises:
        UsageError: nothing is known about the model and no option was given; an option that
            does not fit the model (a layout whose channel axis is not 1 or 3, an unknown
            decoder); what cannot be read from the tensors (the task of a model with several
            outputs, the labels of an SSD model).
    """
    options = options or MetadataOptions()
    base = model.metadata
    if base is not None and not options.given():
        return base
    source = source_metadata(model) if base is None else SourceMetadata()
    if base is None and source.producer != "ultralytics" and not source.labels \
            and not options.given():
        where = model.path or "the model"
        raise UsageError(f"{where} carries no edgecnn metadata (nor Ultralytics')", OPTIONS_HINT)
    return _build(model, options, base, source)


def _build(model: TFLiteModel, options: MetadataOptions, base: md.Metadata | None,
           source: SourceMetadata) -> md.Metadata:
    if len(model.inputs) != 1:
        raise UsageError(f"the model has {len(model.inputs)} inputs; edgecnn runs single-image "
                         "models")
    layout = options.layout or (base.input.layout if base is not None else None)
    if layout is None and source.producer == "ultralytics" and model.input.shape[1:2] == (3,):
        layout = Layout.NCHW.value   # Ultralytics' LiteRT files keep PyTorch's NCHW input
    inp = image_input(model.input.name, model.input.shape, layout)
    h, w, c = inp.hwc
    outputs = [tuple(o.shape) for o in model.outputs]
    task = options.task or (base.task.value if base is not None else None) or source.task \
        or guess_task(outputs, source, options)
    labels = options.labels or (base.labels if base is not None else None) or source.labels \
        or default_labels(task, outputs, options.decoder, source)
    spec = _input_spec(model.input, inp.layout.value, (h, w, c), task, options, base,
                       source)
    decoder = None
    if task == "detect":
        decoder = _decoder_spec(options, base, source, outputs, labels, spec)
    activation = options.activation or (base.output_activation if base is not None
                                        else probe_activation(model) if task == "classify"
                                        else "softmax")
    return md.Metadata(
        task=Task(task), labels=tuple(labels), input=spec,
        name=base.name if base is not None else (Path(model.path).stem if model.path
                                                  else "model"),
        arch=base.arch if base is not None else (source.producer or "foreign"),
        output_activation=activation if task == "classify" else "softmax", decoder=decoder,
        quantization=base.quantization if base is not None else "",
        io={"inputs": [t.to_dict() for t in model.inputs],
            "outputs": [t.to_dict() for t in model.outputs]})


def _input_spec(info: TensorInfo, layout: str, hwc: tuple[int, int, int], task: str,
                options: MetadataOptions, base: md.Metadata | None,
                source: SourceMetadata) -> md.InputSpec:
    h, w, c = hwc
    if c not in (1, 3):
        raise UsageError(f"the model input has {c} channels; edgecnn feeds 1 (GRAY) or 3")
    old = base.input if base is not None else None
    mean, std = options.mean, options.std
    if mean is None and std is None and old is None and info.dtype == np.uint8 \
            and info.quantized:
        # A uint8 input takes the pixels themselves: (p - zero_point) * scale is the real value.
        mean, std = (float(info.zero_point),), (1.0 / info.scale,)
    color = "GRAY" if c == 1 else (options.color or (old.color if old else "RGB"))
    return md.InputSpec(
        height=h, width=w, channels=c, layout=layout, color=color,
        resize=options.resize or (old.resize if old else
                                  "letterbox" if task == "detect" else "stretch"),
        mean=tuple(mean or (old.mean if old else (0.0,))),
        std=tuple(std or (old.std if old else (255.0,))),
        pad_value=old.pad_value if old else 114,
        interpolation=options.interpolation or (old.interpolation if old else
                                                "linear" if source.producer else "area"))


def probe_activation(model: TFLiteModel) -> str:
    """``softmax`` when the classifier's output on a grey image is a probability vector
    (non-negative, sums to 1), else ``none`` (logits: the runtime applies softmax)."""
    x = np.zeros(model.input.shape, model.input.dtype)
    if model.input.quantized:   # grey: the middle of the input's range
        x[...] = model.input.zero_point
    y = np.asarray(model.run(x, quantized=True)[0], np.float64).reshape(-1)
    return "softmax" if y.min() >= 0 and abs(y.sum() - 1.0) < 0.02 else "none"


def guess_task(outputs: Sequence[tuple[int, ...]], source: SourceMetadata,
               options: MetadataOptions | None = None) -> str:
    """``detect`` when a decoder is given; ``classify`` for one output of one row of scores;
    ``detect`` for a known detection layout (read with the labels, when given); otherwise a
    UsageError asking for ``--task``."""
    if options is not None and options.decoder is not None:
        return "detect"
    if len(outputs) == 1 and (len(outputs[0]) == 2 or (
            len(outputs[0]) == 4 and outputs[0][1:3] == (1, 1))):
        return "classify"
    labels = options.labels if options is not None else None
    if guess_decoder(outputs, labels, source) is not None:
        return "detect"
    raise UsageError(f"cannot tell the task of a model with outputs "
                     f"{[list(s) for s in outputs]}", "pass --task classify or --task detect")


def guess_decoder(outputs: Sequence[tuple[int, ...]], labels: Sequence[str] | None,
                  source: SourceMetadata) -> dict | None:
    """The decoder section the output shapes point to, or None.

    Four outputs ``[1, N, 4], [1, N], [1, N], [1]`` (in any order): the SSD post-process op;
    one ``[1, N, 6]`` (or an end-to-end source): end-to-end YOLO; one ``[1, K, N]`` /
    ``[1, N, K]``: Ultralytics YOLO, with objectness when ``K == 5 + len(labels)``.
    """
    if len(outputs) == 4:
        return _ssd_section(outputs)
    if len(outputs) != 1 or len(outputs[0]) != 3 or outputs[0][0] != 1:
        return None
    _, a, b = outputs[0]
    # [1, N, 6] is also a transposed YOLO head of 2 classes: the labels or the source decide.
    if source.end2end or (source.end2end is None and b == 6 and (
            labels is None or len(labels) != 2)):
        return {"type": "ultralytics_end2end", "output": 0}
    if labels is not None:
        n = len(labels)
        if 4 + n in (a, b):
            return {"type": "ultralytics_yolo", "output": 0}
        if 5 + n in (a, b):
            return {"type": "ultralytics_yolo", "output": 0, "objectness": True}
        return None
    return {"type": "ultralytics_yolo", "output": 0} if min(a, b) > 4 else None


def _ssd_section(outputs: Sequence[tuple[int, ...]]) -> dict | None:
    boxes = [i for i, s in enumerate(outputs) if len(s) == 3 and s[0] == 1 and s[2] == 4]
    count = [i for i, s in enumerate(outputs) if tuple(s) in ((1,), ())]
    if len(boxes) != 1 or len(count) != 1:
        return None
    n = outputs[boxes[0]][1]
    rows = [i for i, s in enumerate(outputs) if tuple(s) == (1, n)]
    if len(rows) != 2:
        return None
    # TFLite_Detection_PostProcess writes classes before scores; exporters keep that order.
    return {"type": "ssd_postprocess", "box_output": boxes[0], "class_output": rows[0],
            "score_output": rows[1], "count_output": count[0]}


def default_labels(task: str, outputs: Sequence[tuple[int, ...]], decoder: dict | None,
                   source: SourceMetadata) -> tuple[str, ...]:
    """``"0", "1", ...`` for as many classes as the output shows; UsageError when it does not."""
    count = None
    if task == "classify" and len(outputs) == 1:
        count = int(np.prod(outputs[0][1:]))
    elif task == "detect" and len(outputs) == 1 and len(outputs[0]) == 3:
        kind = (decoder or guess_decoder(outputs, None, source) or {})
        if kind.get("type") == "ultralytics_yolo":
            count = min(outputs[0][1:]) - 4 - int(bool(kind.get("objectness")))
    if not count or count < 1:
        raise UsageError(f"cannot tell the number of classes from outputs "
                         f"{[list(s) for s in outputs]}", "pass --labels FILE or --labels a,b,c")
    return tuple(str(i) for i in range(count))


def _decoder_spec(options: MetadataOptions, base: md.Metadata | None, source: SourceMetadata,
                  outputs, labels, spec: md.InputSpec) -> DecoderSpec:
    if options.decoder is not None:
        section = dict(options.decoder)
    elif base is not None and base.decoder is not None:
        return base.decoder
    else:
        guessed = guess_decoder(outputs, labels, source)
        if guessed is None:
            raise UsageError(f"no known detection layout for outputs "
                             f"{[list(s) for s in outputs]} with {len(labels)} labels: "
                             f"expected [1, 4+{len(labels)}, N] (Ultralytics YOLO), [1, N, 6] "
                             "(end-to-end YOLO) or the 4 outputs of TFLite_Detection_PostProcess",
                             "pass --decoder TYPE[:key=value,...] or --task classify")
        section = guessed
        if section["type"].startswith("ultralytics"):
            section.update(ULTRALYTICS_THRESHOLDS)
    return DecoderSpec.from_dict(section)
