"""Per-layer quantization error report with ``tf.lite.experimental.QuantizationDebugger``.

The debugger runs the int8 model with every quantized op's output compared against its float
value on the calibration data. The key column is ``rmse/scale``: the error in units of the
tensor's quantization step. Uniform rounding alone gives about 0.29 (1/sqrt(12)); layers far
above that lose information (wide activation range, outliers, a layer that needs to stay
float), and the report lists them first.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from converters.keras_tflite import make_converter
from edgecnn.quiet import captured_output
from converters.recipes import Recipe
from edgecnn.errors import UsageError
from edgecnn.fsutil import record_output_file, write_atomic
from edgecnn.lazy import tensorflow

IDEAL_RMSE_OVER_SCALE = 1.0 / math.sqrt(12.0)


@dataclass(frozen=True)
class LayerError:
    op_name: str
    tensor_name: str
    num_elements: int
    rmse: float
    max_abs_error: float
    scale: float
    rmse_over_scale: float


@dataclass(frozen=True)
class DebugReport:
    csv_path: Path
    markdown_path: Path
    layers: tuple[LayerError, ...]

    def worst(self, n: int = 5) -> list[LayerError]:
        return sorted(self.layers, key=lambda l: -l.rmse_over_scale)[:n]


def run_quantization_debugger(saved_model: Path, recipe: Recipe,
                              representative_dataset: Callable[[], Iterator[list]],
                              verbose: bool = False) -> list[LayerError]:
    """Per-layer errors of the int8 model converted from ``saved_model`` with ``recipe``.

    Args:
        saved_model: the exported SavedModel the int8 model is converted from.
        recipe: an int8 recipe (the debugger only makes sense for full-integer models).
        representative_dataset: the calibration generator (also used as the debug data).
    """
    tf = tensorflow()
    if not recipe.needs_calibration:
        raise UsageError("--debug-quant needs --quant int8",
                         "per-layer errors exist only for fully quantized models")
    with captured_output(enabled=not verbose) as log:
        try:
            converter = make_converter(saved_model, recipe, representative_dataset)
            with warnings.catch_warnings():
                # The debugger runs tf.lite.Interpreter internally, which warns that it is
                # deprecated in favour of ai-edge-litert: not the user's concern.
                warnings.simplefilter("ignore", UserWarning)
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=representative_dataset)
                debugger.run()
            buf = io.StringIO()
            debugger.layer_statistics_dump(buf)
        except UsageError:
            raise
        except Exception as err:  # noqa: BLE001 - the debugger raises many types
            detail = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UsageError(f"quantization debugger failed: {detail or log.last_error_line()}",
                             "rerun with --verbose") from None
    return _parse(buf.getvalue())


def report_paths(output: Path) -> tuple[Path, Path]:
    """(csv, markdown) report paths for the model written to ``output``."""
    return (output.with_name(output.stem + ".quant_debug.csv"),
            output.with_name(output.stem + ".quant_debug.md"))


def write_debug_report(layers: list[LayerError], output: Path) -> DebugReport:
    """Write ``<output stem>.quant_debug.csv`` and ``.md`` beside ``output`` (atomically)."""
    csv_path, md_path = report_paths(output)
    write_atomic(csv_path, _to_csv(layers))
    write_atomic(md_path, _to_markdown(layers, output.name))
    record_output_file(csv_path, md_path)
    return DebugReport(csv_path, md_path, tuple(layers))


def _parse(text: str) -> list[LayerError]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            mse = float(row["mean_squared_error"])
            scale = float(row["scale"])
            rmse = math.sqrt(max(mse, 0.0))
            rows.append(LayerError(
                op_name=row["op_name"], tensor_name=row["tensor_name"],
                num_elements=int(float(row["num_elements"])), rmse=rmse,
                max_abs_error=float(row["max_abs_error"]), scale=scale,
                rmse_over_scale=rmse / scale if scale > 0 else float("nan")))
        except (KeyError, ValueError):
            continue
    return rows


def _to_csv(layers: list[LayerError]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["op_name", "tensor_name", "num_elements", "rmse", "max_abs_error", "scale",
                     "rmse_over_scale"])
    for l in layers:
        writer.writerow([l.op_name, l.tensor_name, l.num_elements, f"{l.rmse:.6g}",
                         f"{l.max_abs_error:.6g}", f"{l.scale:.6g}", f"{l.rmse_over_scale:.4f}"])
    return buf.getvalue()


def _to_markdown(layers: list[LayerError], model_name: str) -> str:
    lines = [f"# Quantization error per layer: {model_name}", "",
             f"`rmse/scale` is the error in quantization steps; rounding alone gives "
             f"{IDEAL_RMSE_OVER_SCALE:.2f}. Worst layers first.", "",
             "| op | tensor | rmse/scale | rmse | max abs error | scale |",
             "|---|---|---:|---:|---:|---:|"]
    for l in sorted(layers, key=lambda l: -l.rmse_over_scale):
        tensor = l.tensor_name if len(l.tensor_name) <= 60 else "..." + l.tensor_name[-57:]
        lines.append(f"| {l.op_name} | `{tensor}` | {l.rmse_over_scale:.3f} | {l.rmse:.4g} | "
                     f"{l.max_abs_error:.4g} | {l.scale:.4g} |")
    return "\n".join(lines) + "\n"
