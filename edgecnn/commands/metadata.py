"""``edgecnn metadata show|set``: the metadata of any .tflite, read or attached without
re-converting."""

from __future__ import annotations

import json

import click

from edgecnn.commands import options as shared


@click.group("metadata", short_help="Show, attach or edit the metadata of a .tflite.")
def metadata() -> None:
    """Show, attach or edit the metadata of a .tflite (any: edgecnn's, Ultralytics', another
    tool's), without converting the model again.

    \b
    Example:
      edgecnn metadata show yolo11n_float32.tflite
      edgecnn metadata set mobilenet.tflite -o mobilenet_meta.tflite --task classify \\
          --labels labels.txt --mean 127.5 --std 127.5
    """


@metadata.command("show")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@shared.no_verify
def show(model, as_json, no_verify) -> None:
    """Print the metadata MODEL carries, or the one edgecnn derives from another tool's
    (Ultralytics' metadata.json), and its tensors."""
    from edgecnn.modelmeta import show_metadata
    from edgecnn.runtime.decoders.spec import describe_decoder

    report = show_metadata(model, verify=not no_verify)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{report.model}: metadata from {report.source}")
    for t in report.inputs:
        click.echo(f"  input  {t['dtype']} {t['shape']}")
    for t in report.outputs:
        click.echo(f"  output {t['dtype']} {t['shape']}")
    meta = report.metadata
    if meta is None:
        click.echo(f"  no metadata: {report.problem}")
        return
    inp = meta["input"]
    labels = meta["labels"]
    click.echo(f"  task {meta['task']}, {len(labels)} labels: "
               f"{', '.join(labels[:8])}{' ...' if len(labels) > 8 else ''}")
    click.echo(f"  input {inp['height']}x{inp['width']}x{inp['channels']} {inp['layout']} "
               f"{inp['color']}, {inp['resize']}"
               + (" (one bilinear resize)" if inp.get("interpolation") == "linear" else "")
               + f", (pixel - {inp['mean']}) / {inp['std']}")
    if meta.get("decoder"):
        click.echo(f"  decoder {describe_decoder(meta['decoder'])}")
    if meta.get("output"):
        click.echo(f"  output activation {meta['output']['activation']}")


@metadata.command("set")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the model with its new metadata here.")
@click.option("--in-place", is_flag=True, help="Rewrite MODEL itself (atomically).")
@click.option("--overwrite", is_flag=True, help="Replace an existing -o file.")
@click.option("--score-threshold", type=float, default=None, help="Detectors: default score.")
@click.option("--iou-threshold", type=float, default=None, help="Detectors: default NMS IoU.")
@click.option("--max-detections", type=int, default=None,
              help="Detectors: default maximum detections per image.")
@click.option("--name", default=None, help="The model's name in the metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@shared.no_verify
@shared.describe_model
def set_command(model, output, in_place, overwrite, score_threshold, iou_threshold,
                max_detections, name, as_json, no_verify, described) -> None:
    """Attach metadata to MODEL, or change fields of the metadata it has.

    Fields not given are kept (edgecnn metadata) or read from the file (Ultralytics'
    metadata.json) and its tensors. The model itself is not changed; the new metadata is
    checked against it before anything is written.
    """
    from edgecnn.modelmeta import set_metadata
    from edgecnn.runtime.describe import MetadataOptions

    result = set_metadata(model, output, described or MetadataOptions(), in_place=in_place,
                          overwrite=overwrite, score_threshold=score_threshold,
                          iou_threshold=iou_threshold, max_detections=max_detections,
                          name=name, verify=not no_verify)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    meta = result.metadata
    decoder = (meta.get("decoder") or {}).get("type")
    click.echo(f"wrote {result.path}: task {meta['task']}, {len(meta['labels'])} labels, "
               f"input {meta['input']['layout']}" + (f", decoder {decoder}" if decoder else ""))
