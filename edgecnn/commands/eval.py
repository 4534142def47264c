"""``edgecnn eval``: accuracy (classify) or COCO mAP (detect) of a .tflite or Keras model."""

from __future__ import annotations

import json

import click

from edgecnn.commands import options as shared


@click.command("eval", short_help="Measure accuracy (classify) or COCO mAP (detect) of a model.")
@click.argument("model", type=click.Path())
@click.option("--data", default=None,
              help="Dataset SPEC (default for run directories: the training data).")
@click.option("--split", default=None,
              help="test, val, train or all. Default: the dataset's held-out split; a folder "
                   "that is not the model's training data counts whole (all).")
@click.option("--threads", type=int, default=None, help="Interpreter threads (.tflite).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder holding the fashion-mnist / mnist idx files.")
@click.option("--max-samples", type=int, default=None, help="Evaluate at most N samples.")
@click.option("--iou-threshold", type=float, default=None,
              help="Detectors: NMS IoU while measuring (default 0.6; Ultralytics' val: 0.7).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@shared.no_verify
@shared.describe_model
def eval_command(model, data, split, threads, data_dir, max_samples, iou_threshold, as_json,
                 no_verify, described) -> None:
    """Evaluate MODEL (.tflite with the device runtime, or a run directory / .keras with Keras).

    \b
    Example:
      edgecnn eval fm_int8.tflite --data fashion-mnist --json
    """
    from edgecnn.evaluate import evaluate_model

    result = evaluate_model(model, data, split=split, threads=threads, data_dir=data_dir,
                            max_samples=max_samples, verify=not no_verify,
                            described=described, iou_threshold=iou_threshold,
                            progress=lambda line: click.echo(f"  {line}", err=True))
    for warning in result.get("warnings", []) or []:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    if "accuracy" in result:
        click.echo(f"accuracy {result['accuracy'] * 100:.2f}% on {result['samples']} "
                   f"{result['split']} samples of {result['data']} ({result['backend']}, "
                   f"{result['seconds']:.1f} s)")
        rows = [(name, v) for name, v in result["per_class"].items() if v["samples"]]
        width = max((len(name) for name, _ in rows), default=5)
        for name, v in rows:
            click.echo(f"  {name:<{width}}  {v['accuracy'] * 100:6.2f}%  ({v['samples']})")
        return
    click.echo(f"mAP@0.5 {result['map50']:.4f}  mAP@0.5:0.95 {result['map']:.4f}")
    per_class = result.get("per_class") or {}
    width = max((len(str(n)) for n in per_class), default=5)
    for name, ap in per_class.items():
        click.echo(f"  {name:<{width}}  AP@0.5 {ap:.4f}" if isinstance(ap, (int, float))
                   else f"  {name:<{width}}  {ap}")
