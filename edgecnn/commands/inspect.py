"""``edgecnn inspect``: a .tflite's tensors, quantization, ops, weights, size and metadata."""

from __future__ import annotations

import json

import click


@click.command("inspect", short_help="Show a .tflite model's tensors, ops, size and metadata.")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_command(model, as_json) -> None:
    """Describe MODEL.tflite: inputs/outputs (dtype, shape, scale, zero point), op counts,
    weight bytes by dtype, size and the edgecnn metadata (if any).

    \b
    Example:
      edgecnn inspect fm_int8.tflite --json
    """
    from edgecnn.runtime.summary import describe_model

    summary = describe_model(model)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.text())
