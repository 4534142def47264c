"""``edgecnn inspect``: a .tflite's tensors, quantization, ops, weights, size and metadata."""

from __future__ import annotations

import json

import click

from edgecnn.commands import options as shared


@click.command("inspect", short_help="Show a .tflite model's tensors, ops, size and metadata.")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@shared.no_verify
def inspect_command(model, as_json, no_verify) -> None:
    """Describe MODEL.tflite: inputs/outputs (dtype, shape, scale, zero point), op counts,
    weight bytes by dtype, size, checksum status and the edgecnn metadata (if any).

    A damaged file is described as far as it can be read, with the checks it failed; the
    command then exits with code 2.

    \b
    Example:
      edgecnn inspect fm_int8.tflite --json
    """
    from edgecnn.errors import UsageError
    from edgecnn.runtime.summary import describe_model

    summary = describe_model(model, verify=not no_verify)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else summary.text())
    if summary.damaged:
        raise UsageError(f"{model} is damaged: {summary.problems[0]}",
                         "the file is truncated or damaged; re-copy it or re-run "
                         "'edgecnn convert'")
