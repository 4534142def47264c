"""``edgecnn quickstart``: train, convert, evaluate and predict on the embedded dataset."""

from __future__ import annotations

import click


@click.command(short_help="Run the whole pipeline on the embedded default dataset.")
@click.option("--out", type=click.Path(), default="quickstart", show_default=True,
              help="Folder for the run, the .tflite files and report.md (replaced at the end).")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (only same-named "
                   "entries are replaced; nothing else is deleted).")
@click.option("--fast", is_flag=True, help="Tiny model and few epochs: a smoke test in seconds.")
def quickstart(out: str, fast: bool, overwrite: bool) -> None:
    """Train a classifier on scikit-learn's digits, convert it to int8 TFLite, compare float
    and int8 accuracy, classify a few images, and write a markdown report into --out.
    Works offline.
    """
    from edgecnn.quickstart import run_quickstart

    run_quickstart(out, fast=fast, overwrite=overwrite)
