"""``edgecnn predict``: run a .tflite on images; top-k classes or boxes, JSON, drawn copies."""

from __future__ import annotations

import json

import click

from edgecnn.commands import options as shared


@click.command(short_help="Run a .tflite model on images.")
@click.argument("model", type=click.Path())
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=int, default=None,
              help="Classes per image (classify models only; default 5).")
@shared.score_threshold("Minimum score (default: 0 for classify, the model's own for "
                        "detect).")
@click.option("--iou-threshold", type=float, default=None,
              help="NMS IoU threshold (detect models only; default: the model's own).")
@click.option("--threads", type=int, default=None, help="Interpreter threads.")
@click.option("--save", "save_dir", type=click.Path(), default=None,
              help="Folder to write each image with its results drawn on it.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--overwrite", is_flag=True,
              help="Replace files in --save that edgecnn did not write.")
@shared.no_verify
@shared.describe_model
def predict(model, images, top_k, score_threshold, iou_threshold, threads, save_dir,
            as_json, overwrite, no_verify, described) -> None:
    """Run MODEL.tflite on IMAGE files (or folders of images).

    A model without edgecnn metadata runs with the metadata Ultralytics writes into its
    exports, or with --task, --labels, --mean/--std, ... given here.

    \b
    Example:
      edgecnn predict fm_int8.tflite shirt.png boot.jpg --top-k 3
      edgecnn predict yolo11n_float32.tflite street.jpg
      edgecnn predict mobilenet.tflite cat.jpg --labels labels.txt --mean 127.5 --std 127.5
    """
    from edgecnn.predict import predict_images
    from edgecnn.runtime.task import Task

    def warn(path: str, reason: str) -> None:
        click.echo(f"warning: skipped {path}: {reason}", err=True)

    report = predict_images(model, images, top_k=top_k, score_threshold=score_threshold,
                            iou_threshold=iou_threshold, threads=threads, save_dir=save_dir,
                            on_skip=warn, verify=not no_verify, described=described,
                            overwrite=overwrite)
    if report.skipped:
        click.echo(f"warning: {len(report.skipped)} image(s) could not be read", err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for r in report.results:
        if report.task == Task.DETECT:
            click.echo(f"{r.image}: {len(r.results)} detection(s) ({r.ms:.1f} ms)")
            for d in r.results:
                b = d.box
                click.echo(f"  {d.category.label:<12} {d.category.score:.3f}  "
                           f"[{b.left:.0f}, {b.top:.0f}, {b.right:.0f}, {b.bottom:.0f}]")
        else:
            tops = ", ".join(f"{c.label} ({c.score:.3f})" for c in r.results)
            click.echo(f"{r.image}: {tops}  ({r.ms:.1f} ms)")
        if r.saved:
            click.echo(f"  saved {r.saved}")
