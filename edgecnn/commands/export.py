"""``edgecnn export``: package a .tflite model for a target app."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="export")
def export() -> None:
    """Package a .tflite model for a target app."""


@export.command("android")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--app", "app_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The Android project (default: android_demo of this checkout, "
                   "else ./android_demo).")
@click.option("--name", default="model.tflite", show_default=True,
              help="File name in app/src/main/assets (the app loads model.tflite first).")
@click.option("--overwrite", is_flag=True,
              help="Replace an asset of that name that edgecnn did not write.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def android(model: Path, app_dir: Path | None, name: str, overwrite: bool,
            as_json: bool) -> None:
    """Check MODEL.tflite the way the Android app will and copy it into the app's assets.

    The model must carry edgecnn metadata (written by 'edgecnn convert') with a task the app
    runs (classify, detect), and load in the interpreter with a 1xHxWx{1,3} input. Nothing is
    written when a check fails.
    """
    from edgecnn.export.android import export_android

    result = export_android(model, app_dir, name, overwrite)
    if as_json:
        import json

        click.echo(json.dumps(result.to_dict(), indent=1))
        return
    shape = "x".join(str(d) for d in result.input_shape)
    click.echo(f"exported {result.model} -> {result.destination}")
    click.echo(f"  {result.task}, {result.labels} labels, input {shape} {result.input_dtype}, "
               f"{result.quantization or 'unknown'} quantization, {result.size_bytes} bytes")
    click.echo("  build and install: open the app folder in Android Studio, or run "
               "'./gradlew installDebug' there")
