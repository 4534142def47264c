"""ONNX source: read the graph and its metadata, run it with onnxruntime, convert with onnx2tf.

The route (docs/DECISIONS.md, "Foreign models"): onnx2tf's ``flatbuffer_direct`` backend
(onnx2tf >= 2.4) rewrites the NCHW graph as an NHWC TFLite flatbuffer without TensorFlow; the
recipe is then applied by ai-edge-quantizer (:mod:`converters.quantize`). onnx2tf pins exact
versions of numpy, onnx, onnxruntime, opencv-python and ai-edge-litert and needs Python >= 3.12,
so it is not an edgecnn dependency: it runs as its own command (``pipx install onnx2tf``, or
``EDGECNN_ONNX2TF=/path/to/onnx2tf``) in a child process, whose pins never touch edgecnn's
environment. The older TensorFlow backend (onnx2tf 1.x) failed on EfficientNet-Lite0 and on
YOLO11n's int8 conversion, so it is not used.

An op the route leaves as a custom op (``ONNX_<OP>``, which no interpreter resolves) is named
in a one-line error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from converters.sources.base import SourceModel, image_input, parse_props
from edgecnn.errors import UsageError
from edgecnn.lazy import require

ONNX2TF_ENV = "EDGECNN_ONNX2TF"
ONNX2TF_HINT = ("install onnx2tf >= 2.4 as its own command: 'pipx install onnx2tf' (Python >= "
                "3.12), or point EDGECNN_ONNX2TF at an onnx2tf executable")
MIN_ONNX2TF = (2, 4)


def _onnx():
    return require("onnx", extra="convert", purpose="reading ONNX models")


def load(path: Path, layout: str | None = None) -> SourceModel:
    """Read ``path`` (no code runs: ONNX is a protobuf), check its input, read its metadata."""
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as err:  # noqa: BLE001 - protobuf/onnx raise many types for bad bytes
        raise UsageError(f"{path} is not a readable ONNX model: {str(err).splitlines()[0][:200]}",
                         "re-export it (torch.onnx.export or 'yolo export format=onnx')") \
            from None
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UsageError(f"{path.name} has {len(inputs)} inputs "
                         f"({', '.join(i.name for i in inputs)}); edgecnn converts single-image "
                         "models", "export the model with one image input")
    inp = image_input(inputs[0].name, _dims(inputs[0]), layout)
    outputs = tuple((o.name, tuple(d or 0 for d in _dims(o))) for o in graph.output)
    meta = parse_props({p.key: p.value for p in model.metadata_props})
    return SourceModel(format="onnx", name=path.stem, input=inp, outputs=outputs, metadata=meta,
                       reference=_reference(path))


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value_info.type.tensor_type.shape.dim]


def _reference(path: Path):
    """onnxruntime on the source model, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][-240:]
        raise UsageError(f"onnxruntime cannot load {path.name}: {first}",
                         "check the model with onnx.checker.check_model") from None
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(y) for y in session.run(None, {name: x.astype(np.float32)})]

    return run


def onnx2tf_command() -> str:
    """The onnx2tf executable (>= 2.4), or a one-line error saying how to install it."""
    exe = os.environ.get(ONNX2TF_ENV) or shutil.which("onnx2tf")
    if not exe:
        raise UsageError("onnx2tf is not installed (the ONNX route)", ONNX2TF_HINT)
    try:
        out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"cannot run onnx2tf ({exe}): {err}", ONNX2TF_HINT) from None
    found = re.findall(r"(\d+)\.(\d+)\.\d+", out.stdout + out.stderr)
    if not found or tuple(int(v) for v in found[-1]) < MIN_ONNX2TF:
        raise UsageError(f"onnx2tf at {exe} is not version >= 2.4 "
                         f"({(out.stdout + out.stderr).strip()[-40:] or 'no version'})",
                         ONNX2TF_HINT)
    return exe


def float_tflite(path: Path, verbose: bool = False) -> bytes:
    """``path`` -> float32 flatbuffer with an NHWC input, by onnx2tf's direct backend."""
    exe = onnx2tf_command()
    with tempfile.TemporaryDirectory(prefix="edgecnn-onnx2tf-") as work:
        out = Path(work) / "out"
        cmd = [exe, "-i", str(path.resolve()), "-o", str(out), "-tb", "flatbuffer_direct",
               "-coion"] + ([] if verbose else ["-n"])
        # onnx2tf runs the ``onnxsim`` command of its own environment; without it on PATH it
        # skips simplification, and EfficientNet-Lite0 then fails to run under XNNPACK.
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(exe).parent),
                                                     os.environ.get("PATH", "")]))
        proc = subprocess.run(cmd, cwd=work, text=True, capture_output=not verbose,
                              check=False, env=env)
        produced = sorted(out.glob("*_float32.tflite"))
        if proc.returncode != 0 or not produced:
            raise UsageError(f"onnx2tf could not convert {path.name}: "
                             f"{_last_error(proc.stdout or '', proc.stderr or '')}",
                             "rerun with --verbose for onnx2tf's log")
        return produced[0].read_bytes()


def normalize_yolo_boxes(path: Path, out: Path, height: int, width: int) -> bool:
    """Write ``path`` with its YOLO box channels divided by the input size; False if no match.

    A YOLO head concatenates boxes in input pixels (0..640) with class probabilities (0..1)
    in one tensor, and full int8 quantization gives that tensor one scale: every score falls
    into a handful of levels and mAP drops to 0 (measured, docs/DECISIONS.md). Dividing the
    four box channels by the input size (what Ultralytics' own LiteRT export does) puts both
    in 0..1. The graph is edited only where the output is ``Concat(boxes[1, 4, N], scores)``.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper, shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    if len(graph.output) != 1:
        return False
    producer = next((n for n in graph.node if graph.output[0].name in n.output), None)
    if producer is None or producer.op_type != "Concat" or len(producer.input) != 2:
        return False
    axis = next((a.i for a in producer.attribute if a.name == "axis"), None)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in shape_inference.infer_shapes(model).graph.value_info}
    box_shape = shapes.get(producer.input[0], [])
    if axis != 1 or len(box_shape) != 3 or box_shape[1] != 4:
        return False
    scale = np.array([1.0 / width, 1.0 / height, 1.0 / width, 1.0 / height], np.float32)
    graph.initializer.append(numpy_helper.from_array(scale.reshape(1, 4, 1), "edgecnn_box_scale"))
    graph.node.insert(list(graph.node).index(producer), helper.make_node(
        "Mul", [producer.input[0], "edgecnn_box_scale"], ["edgecnn_boxes_normalized"]))
    producer.input[0] = "edgecnn_boxes_normalized"
    onnx.save(model, str(out))
    return True


def unresolved_op_error(path: Path, message: str) -> UsageError | None:
    """A one-line error naming the ONNX op onnx2tf left as a custom op, if that is the cause."""
    match = re.search(r"custom op: ?(ONNX_[A-Z0-9_]+)", message)
    if not match:
        return None
    wanted = match.group(1)[len("ONNX_"):].replace("_", "").lower()
    ops = [op for op in op_types(path) if op.lower() == wanted] or [match.group(1)]
    return UsageError(f"{path.name} uses ONNX op {ops[0]}, which the ONNX route (onnx2tf) "
                      "cannot convert to a TFLite op", "re-export the model without it (a "
                      "different opset, or with that part of the model left out)")


def op_types(path: Path) -> set[str]:
    """Op types of the default (ai.onnx) domain used in the main graph."""
    model = _onnx().load(str(path), load_external_data=False)
    return {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}


def _last_error(stdout: str, stderr: str) -> str:
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "error" in ln:
            return ln[-300:]
    return lines[-1][-300:] if lines else "no output"
