"""``edgecnn quickstart``: the whole pipeline on the embedded datasets, offline."""

from __future__ import annotations

import click


@click.command(short_help="Run the whole pipeline on the embedded default dataset.")
@click.option("--out", type=click.Path(), default="quickstart", show_default=True,
              help="Folder for the runs, the .tflite files, the videos and report.md.")
@click.option("--fast", is_flag=True,
              help="Tiny models and few epochs: a smoke test in seconds per step (its numbers "
                   "say nothing about accuracy).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted quickstart in --out: its finished steps are kept.")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (they stay; only "
                   "same-named entries are replaced), or start an unfinished quickstart over.")
def quickstart(out: str, fast: bool, resume: bool, overwrite: bool) -> None:
    """Train a classifier on scikit-learn's digits and a detector on generated shapes, convert
    both to int8 TFLite, measure accuracy and mAP, prune, run the detector through the camera
    loop on a generated video, time everything with bench, and write report.md into --out.

    Works offline. Ctrl-C keeps the finished steps; --resume continues after them.
    """
    from edgecnn.quickstart import run_quickstart

    run_quickstart(out, fast=fast, resume=resume, overwrite=overwrite)
