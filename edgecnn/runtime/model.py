"""``TFLiteModel``: one ``.tflite`` file, its tensors, I/O quantization and metadata."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.runtime import metadata as md
from edgecnn.runtime.interpreter import allocate, make_interpreter
from edgecnn.runtime.modelcheck import ModelCheckError, Probe, check_model, probe_model


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor; ``scale == 0`` means not quantized."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": np.dtype(self.dtype).name,
                "scale": self.scale, "zero_point": self.zero_point}


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(index=int(detail["index"]), name=str(detail["name"]),
                      shape=tuple(int(d) for d in detail["shape"]), dtype=np.dtype(detail["dtype"]),
                      scale=float(scale), zero_point=int(zero_point))


class TFLiteModel:
    """A loaded ``.tflite`` model with an interpreter on a fixed number of threads.

    Example:
        model = TFLiteModel("model.tflite", threads=2)
        outputs = model.run(x)          # list of numpy arrays, dequantized if asked
    """

    def __init__(self, path: str | os.PathLike | bytes, threads: int | None = None,
                 metadata: md.Metadata | None = None, *, verify: bool = True,
                 probe: Probe = Probe.AUTO):
        """Check and load a model.

        Args:
            path: a ``.tflite`` file, or its bytes.
            threads: interpreter threads (None: the runtime's default).
            metadata: use this instead of the metadata in the file.
            verify: compare the flatbuffer with the SHA-256 in its metadata and refuse a
                mismatch (``--no-verify`` turns it off; the probe then runs).
            probe: when to load the model in a child process first (see
                :mod:`edgecnn.runtime.modelcheck`); AUTO probes unless the checksum verified.

        Raises:
            UsageError: the file is missing, damaged (checksum, model check, probe), or its
                metadata is invalid.
        """
        if threads is not None and int(threads) < 1:
            raise UsageError(f"threads must be >= 1, got {threads}", "use --threads 1 or more")
        if isinstance(path, (bytes, bytearray)):
            self.path = None
            data = bytes(path)
        else:
            self.path = Path(path)
            data = md.read_model_file(self.path)
        self.size_bytes = len(data)
        flatbuffer, bundle = md.split_bundle(data)
        self.flatbuffer = self._data = flatbuffer  # the interpreter keeps these alive anyway
        # The trailing zip: edgecnn's metadata, or another tool's (Ultralytics' metadata.json).
        self.bundle = bundle
        self.threads = threads
        where = f"{self.path}: " if self.path is not None else ""
        try:
            self.metadata = metadata if metadata is not None else md.read(data)
            self.checksum = (md.checksum_status(self.metadata, flatbuffer) if verify
                             else md.Checksum.SKIPPED)
            if self.checksum is md.Checksum.MISMATCH:
                raise UsageError("the model does not match the SHA-256 in its metadata: the file "
                                 "changed after 'edgecnn convert' wrote it",
                                 "re-copy it or re-run 'edgecnn convert'; --no-verify loads it "
                                 "anyway")
            self.check = check_model(flatbuffer)
            self.probed = probe is Probe.ALWAYS or (
                probe is Probe.AUTO and self.checksum is not md.Checksum.VERIFIED)
            if self.probed:
                probe_model(flatbuffer, threads, self.check)
            start = time.perf_counter()  # init_ms: the interpreter's own start-up
            self.interpreter = make_interpreter(flatbuffer, threads)
            allocate(self.interpreter)
            self.inputs = [_tensor_info(d) for d in self.interpreter.get_input_details()]
            self.outputs = [_tensor_info(d) for d in self.interpreter.get_output_details()]
        except ModelCheckError as err:
            raise ModelCheckError(where + err.message, err.hint) from None
        except UsageError as err:
            raise UsageError(where + err.message, err.hint) from None
        except (RuntimeError, ValueError) as err:
            raise UsageError(f"{where}the model cannot be prepared: "
                             f"{(str(err).splitlines() or [type(err).__name__])[0]}",
                             "the file may be truncated or damaged; re-copy it or re-run "
                             "'edgecnn convert'") from None
        self.init_ms = (time.perf_counter() - start) * 1000.0

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    def quantize_input(self, x: np.ndarray, i: int = 0) -> np.ndarray:
        """Float model-space input -> the input tensor's dtype (rounded and clipped if int)."""
        info = self.inputs[i]
        if not info.quantized:
            return x.astype(info.dtype, copy=False)
        limits = np.iinfo(info.dtype)
        q = np.round(x / info.scale + info.zero_point)
        return np.clip(q, limits.min, limits.max).astype(info.dtype)

    def dequantize(self, y: np.ndarray, info: TensorInfo) -> np.ndarray:
        if not info.quantized:
            return y.astype(np.float32, copy=False)
        return (y.astype(np.float32) - info.zero_point) * np.float32(info.scale)

    def set_input(self, x: np.ndarray, i: int = 0) -> None:
        """Set an input already in the tensor's dtype (see :meth:`quantize_input`)."""
        info = self.inputs[i]
        if x.dtype != info.dtype:
            raise UsageError(f"input {i} wants {np.dtype(info.dtype).name}, got {x.dtype.name}")
        if tuple(x.shape) != info.shape:
            raise UsageError(f"input {i} wants shape {info.shape}, got {tuple(x.shape)}")
        self.interpreter.set_tensor(info.index, x)

    def invoke(self) -> None:
        self.interpreter.invoke()

    def get_output(self, i: int, dequantize: bool = True) -> np.ndarray:
        info = self.outputs[i]
        y = self.interpreter.get_tensor(info.index)
        return self.dequantize(y, info) if dequantize else y

    def run(self, *inputs: np.ndarray, quantized: bool = False,
            dequantize: bool = True) -> list[np.ndarray]:
        """Run on float inputs (or tensor-dtype inputs with ``quantized=True``)."""
        if len(inputs) != len(self.inputs):
            raise UsageError(f"model has {len(self.inputs)} inputs, got {len(inputs)}")
        for i, x in enumerate(inputs):
            self.set_input(x if quantized else self.quantize_input(np.asarray(x), i), i)
        self.invoke()
        return [self.get_output(i, dequantize) for i in range(len(self.outputs))]

    def op_counts(self) -> dict[str, int]:
        """Operator name -> count in the main subgraph (empty if the runtime cannot tell).

        Counted on a second interpreter without the default XNNPACK delegate: on the delegated
        one, everything XNNPACK took over shows as a single ``DELEGATE`` op.
        """
        counts: dict[str, int] = {}
        try:
            plain = make_interpreter(self._data, 1, default_delegates=False)
            ops = plain._get_ops_details()  # noqa: SLF001 - the only route to the op list
        except Exception:  # noqa: BLE001 - op counts are informational
            return counts
        for op in ops:
            name = op.get("op_name", "?")
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def require_metadata(self) -> md.Metadata:
        if self.metadata is None:
            where = self.path or "the model"
            raise UsageError(f"{where} carries no edgecnn metadata",
                             "convert it with 'edgecnn convert' or pass the task, labels and "
                             "input options explicitly")
        return self.metadata
