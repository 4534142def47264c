"""What is inside a ``.tflite``: tensors, quantization, operators, weights, size and metadata.

Device side (no TensorFlow). Backs ``edgecnn inspect``, which is meant for damaged files too:
a model without edgecnn metadata, with damaged metadata, a checksum that does not match, or a
flatbuffer that fails the model check or the probe is still described (``problems`` says what
failed; what could be read is shown). Only a file that is missing or not a TFLite model at all
raises. A file is never handed to the in-process interpreter before the model check and, unless
its checksum verified, the probe have passed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.decoders.spec import describe_decoder
from edgecnn.runtime.interpreter import make_interpreter, runtime_info
from edgecnn.runtime.model import TFLiteModel
from edgecnn.runtime.modelcheck import Probe, check_model, probe_model, read_io


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
    checksum: str = "absent"                  # md.Checksum value
    model_check: dict | None = None           # ModelReport.to_dict() when the check passed
    problems: tuple[str, ...] = ()            # what failed, in the order checked
    loadable: bool = True

    @property
    def damaged(self) -> bool:
        return not self.loadable or self.checksum == md.Checksum.MISMATCH.value

    @property
    def op_total(self) -> int:
        return int(sum(self.ops.values()))

    def to_dict(self) -> dict:
        return {"path": self.path, "size_bytes": self.size_bytes,
                "flatbuffer_bytes": self.flatbuffer_bytes,
                "metadata_bytes": self.metadata_bytes, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "ops": self.ops, "op_total": self.op_total,
                "weights": self.weights, "metadata": self.metadata,
                "metadata_note": self.metadata_note, "runtime": self.runtime,
                "checksum": self.checksum, "model_check": self.model_check,
                "problems": list(self.problems), "loadable": self.loadable}

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
        lines.append(f"  checksum: {_CHECKSUM_TEXT.get(self.checksum, self.checksum)}")
        if self.model_check:
            c = self.model_check
            lines.append(f"  model check: passed ({c['tensors']} tensors, {c['operators']} "
                         f"operators; tensors need {c['tensor_bytes'] / 1024:.1f} KB)")
        for problem in self.problems:
            lines.append(f"  problem: {problem}")
        if self.metadata is None:
            lines.append(f"  metadata: none ({self.metadata_note})")
        elif self.metadata_note:   # damaged: shown as read, not interpreted
            lines.append(f"  metadata: {self.metadata_note}")
            shown = json.dumps(self.metadata, ensure_ascii=False)
            lines.append(f"  metadata as read: {shown[:400]}{'...' if len(shown) > 400 else ''}")
        else:
            m = self.metadata
            inp = m["input"]
            lines.append(f"  metadata: task {m['task']}, {len(m['labels'])} labels "
                         f"({', '.join(m['labels'][:5])}{', ...' if len(m['labels']) > 5 else ''})"
                         f", quantization {m.get('quantization') or '?'}")
            lines.append(f"  input: {inp['height']}x{inp['width']}x{inp['channels']} "
                         f"{inp['color']}, {inp['resize']}, mean {inp['mean']} std {inp['std']}")
            if m.get("decoder"):
                lines.append(f"  decoder: {describe_decoder(m['decoder'])}")
            if m.get("output"):
                lines.append(f"  output activation: {m['output']['activation']}")
        return "\n".join(lines)


_CHECKSUM_TEXT = {
    "verified": "verified (SHA-256 of the flatbuffer matches the metadata)",
    "mismatch": "MISMATCH (the flatbuffer changed after 'edgecnn convert' wrote it)",
    "absent": "none (written before edgecnn recorded checksums, or not by edgecnn: it loads, "
              "but damage cannot be detected)",
    "skipped": "not checked",
}


def describe_model(path: str | os.PathLike, verify: bool = True) -> ModelSummary:
    """Describe a ``.tflite`` file, damaged or not (see ``problems`` and ``damaged``).

    Raises:
        UsageError: the file is missing or not a TFLite model at all.
    """
    path = Path(path)
    data = md.read_model_file(path)
    flatbuffer, bundle = md.split_bundle(data)
    meta, note, raw_doc, problems = None, "", None, []
    try:
        meta = md.read(data)
        if meta is None:
            note = ("no edgecnn metadata: runtime.load/predict need it; "
                    "convert with 'edgecnn convert' to add it")
    except UsageError as err:
        note = f"metadata bundle is damaged: {err}"
        problems.append(note)
        raw_doc = _readable_document(data)
    checksum = md.checksum_status(meta, flatbuffer) if verify else md.Checksum.SKIPPED
    if checksum is md.Checksum.MISMATCH:
        problems.append("the flatbuffer does not match the SHA-256 in its metadata")
    model, report = None, None
    try:
        report = check_model(flatbuffer)
        if checksum is not md.Checksum.VERIFIED:
            probe_model(flatbuffer, 1, report)
        model = TFLiteModel(flatbuffer, threads=1, metadata=meta, verify=False,
                            probe=Probe.NEVER)
    except UsageError as err:
        problems.append(err.message)
    io = ((tuple(t.to_dict() for t in model.inputs), tuple(t.to_dict() for t in model.outputs))
          if model is not None else read_io(flatbuffer))
    return ModelSummary(
        path=str(path), size_bytes=len(data), flatbuffer_bytes=len(flatbuffer),
        metadata_bytes=len(bundle) if bundle else 0, inputs=io[0], outputs=io[1],
        ops=model.op_counts() if model is not None else {},
        weights=_weights(flatbuffer) if model is not None else {},
        metadata=meta.to_dict() if meta else raw_doc, metadata_note=note,
        runtime=runtime_info(), checksum=checksum.value,
        model_check=report.to_dict() if report else None, problems=tuple(problems),
        loadable=model is not None)


def _readable_document(data: bytes) -> dict | None:
    """The raw ``edgecnn.json`` when it parses but fails the schema (shown as read)."""
    try:
        doc = md.read_document(data)
    except UsageError:
        return None
    return doc if isinstance(doc, dict) else None


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
