"""``edgecnn convert``: options -> converters.convert_model -> a summary (or JSON)."""

from __future__ import annotations

import json

import click

from edgecnn.commands import options as shared


@click.command(short_help="Convert a model to .tflite with post-training quantization.")
@click.argument("model", type=click.Path())
@click.option("--quant", default="int8", show_default=True,
              help="Recipe: float32, dynamic, float16 or int8 (full integer); keep: a .tflite "
                   "source as it is, with metadata attached.")
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
@click.option("--float-layers", default=None, metavar="NAME,...",
              help="int8: Keras layers to leave in float (e.g. stem_conv,block0_dw): more "
                   "accurate, a little slower.")
@click.option("--float-worst", type=int, default=0, show_default=True,
              help="int8: also leave the N ops with the largest int8 error (the --debug-quant "
                   "ranking) in float.")
@click.option("--keep-names", is_flag=True,
              help="Keep the converter's long tensor names (default: shortened, smaller file).")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output .tflite (or a folder). Default: <run>/<name>_<recipe>.tflite.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing -o file that edgecnn did not write.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@shared.describe_model
@click.pass_context
def convert(ctx, model, quant, io_type, calib, calib_size, held_out, data_dir, debug_quant,
            float_layers, float_worst, keep_names, output, overwrite, as_json, described) -> None:
    """Convert MODEL to a .tflite with edgecnn metadata.

    MODEL is an edgecnn run directory or .keras file, or a model from elsewhere: ONNX (.onnx),
    a PyTorch ExportedProgram (.pt2), a Keras 3 .keras file, a SavedModel folder, or a
    .tflite. Pickled PyTorch checkpoints (.pt/.pth) are refused: loading them runs code.
    For models from elsewhere, --task, --labels, --decoder, --mean/--std, --layout, --resize,
    --activation and --interpolation say what the file does not.

    \b
    Example:
      edgecnn convert runs/fashion --quant int8 -o fashion_int8.tflite
      edgecnn convert yolo11n.onnx --calib data.yaml -o yolo11n_int8.tflite
    """
    from converters import formats

    verbose = bool((ctx.find_root().obj or {}).get("verbose"))
    fmt = formats.detect(model)
    if fmt.name not in ("edgecnn", "keras"):   # any .keras: convert_model handles bare ones
        _convert_foreign(model, output, quant, io_type, calib, calib_size, held_out, described,
                         verbose, overwrite, as_json)
        return
    if described is not None and fmt.name == "edgecnn":
        from edgecnn.errors import UsageError

        raise UsageError("--task, --labels, --decoder, ... describe models from elsewhere; "
                         f"{model} is an edgecnn run and carries all of it",
                         "drop those options")
    from converters import convert_model
    from converters.selective import parse_float_layers

    result = convert_model(model, output, quant, io=io_type, calib=calib, calib_size=calib_size,
                           held_out=held_out, data_dir=data_dir, debug_quant=debug_quant,
                           keep_names=keep_names, float_layers=parse_float_layers(float_layers),
                           float_worst=float_worst, verbose=verbose, overwrite=overwrite)
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


def _convert_foreign(model, output, quant, io_type, calib, calib_size, held_out, described,
                     verbose, overwrite, as_json) -> None:
    from converters.foreign import convert_foreign
    from edgecnn.runtime.describe import MetadataOptions

    result = convert_foreign(model, output, None if quant == "keep" else quant, io=io_type,
                             options=described or MetadataOptions(), calib=calib,
                             calib_size=calib_size, held_out=held_out, verbose=verbose,
                             map_scorer=_coco_map, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"wrote {result.path} ({result.source_format} -> {result.recipe}, "
               f"{result.size_bytes / 1024:.1f} KB) in {result.seconds:.1f} s")
    for inp in result.inputs:
        click.echo(f"  input  {inp['dtype']} {inp['shape']} ({result.layout})" + _quant_text(inp))
    for o in result.outputs:
        click.echo(f"  output {o['dtype']} {o['shape']}" + _quant_text(o))
    meta = result.metadata
    decoder = (meta.get("decoder") or {}).get("type")
    click.echo(f"  metadata: task {meta['task']}, {len(meta['labels'])} labels"
               + (f", decoder {decoder}" if decoder else ""))
    if result.calib_samples:
        click.echo(f"  calibrated on {result.calib_samples} images")
    if result.agreement is not None:
        click.echo(f"  vs {result.source_format}: {result.agreement.summary()} "
                   f"({result.agreement_source})")
    for note in result.notes:
        click.echo(f"  note: {note}")


def _coco_map(ground_truth, detections, labels) -> tuple[float, float]:
    """The parity report's mAP: 'edgecnn eval''s COCO mAP (converters may not import it)."""
    from edgecnn.evaluate.detect import ImageDetections, coco_map

    result = coco_map(ground_truth, [ImageDetections(*d) for d in detections], labels)
    return result["map50"], result["map"]


def _quant_text(t: dict) -> str:
    return f" scale {t['scale']:.6g} zero point {t['zero_point']}" if t["scale"] else ""
