"""``edgecnn convert``: options -> converters.convert_model -> a summary (or JSON)."""

from __future__ import annotations

import json

import click


@click.command(short_help="Convert a model to .tflite with post-training quantization.")
@click.argument("model", type=click.Path())
@click.option("--quant", default="int8", show_default=True,
              help="Recipe: float32, dynamic, float16 or int8 (full integer).")
@click.option("--io", "io_type", default=None,
              help="int8 recipe only: int8 (default) or float input/output tensors.")
@click.option("--calib", default=None,
              help="Calibration data SPEC (dataset or folder of images); default: the run's "
                   "training data.")
@click.option("--calib-size", type=int, default=200, show_default=True,
              help="Number of calibration images.")
@click.option("--held-out", type=int, default=200, show_default=True,
              help="Held-out images for the float-vs-converted agreement check (0: skip).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder holding the fashion-mnist / mnist idx files.")
@click.option("--debug-quant", is_flag=True,
              help="Also write the per-layer quantization error report (.quant_debug.csv/.md).")
@click.option("--keep-names", is_flag=True,
              help="Keep the converter's long tensor names (default: shortened, smaller file).")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output .tflite (or a folder). Default: <run>/<name>_<recipe>.tflite.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def convert(ctx, model, quant, io_type, calib, calib_size, held_out, data_dir, debug_quant,
            keep_names, output, as_json) -> None:
    """Convert MODEL (a run directory or .keras file) to a .tflite with edgecnn metadata.

    \b
    Example:
      edgecnn convert runs/fm --quant int8 -o fm_int8.tflite
    """
    from converters import convert_model

    verbose = bool((ctx.find_root().obj or {}).get("verbose"))
    result = convert_model(model, output, quant, io=io_type, calib=calib, calib_size=calib_size,
                           held_out=held_out, data_dir=data_dir, debug_quant=debug_quant,
                           keep_names=keep_names, verbose=verbose)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    inp, out = result.inputs[0], result.outputs
    click.echo(f"wrote {result.path} ({result.recipe}, {result.size_bytes / 1024:.1f} KB) "
               f"in {result.seconds:.1f} s")
    click.echo(f"  input  {inp['dtype']} {inp['shape']}" + _quant_text(inp))
    for o in out:
        click.echo(f"  output {o['dtype']} {o['shape']}" + _quant_text(o))
    if result.calib_samples:
        click.echo(f"  calibrated on {result.calib_samples} images of {result.calib_source}")
    if result.agreement is not None:
        click.echo(f"  vs Keras: {result.agreement.summary()} ({result.agreement_source})")
    for note in result.notes:
        click.echo(f"  note: {note}")
    if result.debug_markdown is not None:
        click.echo(f"  per-layer error report: {result.debug_markdown} (+ .csv)")


def _quant_text(t: dict) -> str:
    return f" scale {t['scale']:.6g} zero point {t['zero_point']}" if t["scale"] else ""
