"""What is inside a ``.tflite``: tensors, quantization, operators, weights, size and metadata.

Device side (no TensorFlow). Backs ``edgecnn inspect``; a model without edgecnn metadata, or
with a damaged metadata bundle, is still described (the summary says what is missing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.interpreter import make_interpreter, runtime_info
from edgecnn.runtime.model import TFLiteModel


@dataclass(frozen=True)
class ModelSummary:
    """A ``.tflite`` described for people (``text()``) and tools (``to_dict()``)."""

    path: str
    size_bytes: int
    flatbuffer_bytes: int
    metadata_bytes: int
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    ops: dict
    weights: dict                 # dtype -> {"tensors", "elements", "bytes"} of constant tensors
    metadata: dict | None
    metadata_note: str = ""
    runtime: dict = field(default_factory=dict)

    @property
    def op_total(self) -> int:
        return int(sum(self.ops.values()))

    def to_dict(self) -> dict:
        return {"path": self.path, "size_bytes": self.size_bytes,
                "flatbuffer_bytes": self.flatbuffer_bytes,
                "metadata_bytes": self.metadata_bytes, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "ops": self.ops, "op_total": self.op_total,
                "weights": self.weights, "metadata": self.metadata,
                "metadata_note": self.metadata_note, "runtime": self.runtime}

    def text(self) -> str:
        lines = [f"{self.path}: {self.size_bytes / 1024:.1f} KB "
                 f"(flatbuffer {self.flatbuffer_bytes / 1024:.1f} KB, metadata "
                 f"{self.metadata_bytes / 1024:.1f} KB)"]
        for kind, tensors in (("input", self.inputs), ("output", self.outputs)):
            for i, t in enumerate(tensors):
                q = (f"  scale {t['scale']:.6g} zero_point {t['zero_point']}" if t["scale"]
                     else "  (not quantized)")
                lines.append(f"  {kind} {i}: {t['name']}  {t['dtype']} {t['shape']}{q}")
        if self.weights:
            parts = [f"{d} {w['bytes'] / 1024:.1f} KB ({w['elements']} values)"
                     for d, w in self.weights.items()]
            lines.append("  weights: " + ", ".join(parts))
        ops = ", ".join(f"{name} x{n}" for name, n in self.ops.items())
        lines.append(f"  ops ({self.op_total}): {ops or 'unknown'}")
        if self.metadata is None:
            lines.append(f"  metadata: none ({self.metadata_note})")
        else:
            m = self.metadata
            inp = m["input"]
            lines.append(f"  metadata: task {m['task']}, {len(m['labels'])} labels "
                         f"({', '.join(m['labels'][:5])}{', ...' if len(m['labels']) > 5 else ''})"
                         f", quantization {m.get('quantization') or '?'}")
            lines.append(f"  input: {inp['height']}x{inp['width']}x{inp['channels']} "
                         f"{inp['color']}, {inp['resize']}, mean {inp['mean']} std {inp['std']}")
            if m.get("decoder"):
                d = m["decoder"]
                lines.append(f"  decoder: {d['type']} strides {d['strides']}, boxes = output "
                             f"{d['box_output']}, scores = output {d['score_output']}")
            if m.get("output"):
                lines.append(f"  output activation: {m['output']['activation']}")
        return "\n".join(lines)


def describe_model(path: str | os.PathLike) -> ModelSummary:
    """Describe a ``.tflite`` file.

    Raises:
        UsageError: the file is missing, not a TFLite model, or truncated/corrupt so that the
            interpreter cannot load it.
    """
    path = Path(path)
    data = md.read_model_file(path)
    flatbuffer, bundle = md.split_bundle(data)
    meta, note = None, ""
    try:
        meta = md.read(data)
        if meta is None:
            note = ("no edgecnn metadata: runtime.load/predict need it; "
                    "convert with 'edgecnn convert' to add it")
    except UsageError as err:
        note = f"metadata bundle is damaged: {err}"
    try:
        model = TFLiteModel(flatbuffer, threads=1, metadata=meta)
    except UsageError as err:
        raise UsageError(f"{path}: {err.message}", err.hint) from None
    return ModelSummary(
        path=str(path), size_bytes=len(data), flatbuffer_bytes=len(flatbuffer),
        metadata_bytes=len(bundle) if bundle else 0,
        inputs=tuple(t.to_dict() for t in model.inputs),
        outputs=tuple(t.to_dict() for t in model.outputs), ops=model.op_counts(),
        weights=_weights(flatbuffer), metadata=meta.to_dict() if meta else None,
        metadata_note=note, runtime=runtime_info())


def _weights(flatbuffer: bytes) -> dict:
    """Constant tensors (op inputs nobody produces, except model inputs) summed by dtype."""
    try:
        interp = make_interpreter(flatbuffer, 1, default_delegates=False)
        interp.allocate_tensors()
        ops = interp._get_ops_details()  # noqa: SLF001 - the only route to op tensor lists
        details = {d["index"]: d for d in interp.get_tensor_details()}
    except Exception:  # noqa: BLE001 - informational only
        return {}
    produced = {int(t) for op in ops for t in op.get("outputs", [])}
    graph_inputs = {int(d["index"]) for d in interp.get_input_details()}
    constants = {int(t) for op in ops for t in op.get("inputs", [])
                 if int(t) >= 0 and int(t) not in produced and int(t) not in graph_inputs}
    out: dict[str, dict] = {}
    for index in sorted(constants):
        d = details.get(index)
        if d is None:
            continue
        dtype = np.dtype(d["dtype"])
        elements = int(np.prod(d["shape"])) if len(d["shape"]) else 1
        row = out.setdefault(dtype.name, {"tensors": 0, "elements": 0, "bytes": 0})
        row["tensors"] += 1
        row["elements"] += elements
        row["bytes"] += elements * dtype.itemsize
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["bytes"]))
