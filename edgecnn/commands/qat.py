"""``edgecnn qat``: options -> ``QatOptions`` -> ``edgecnn.qat.api.qat_finetune``."""

from __future__ import annotations

import json
import sys

import click


@click.command(short_help="Fine-tune a trained model through simulated int8 (QAT).")
@click.argument("model", type=click.Path())
@click.option("--data", default=None,
              help="Dataset SPEC for fine-tuning (default: the one in run.json).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder holding the fashion-mnist / mnist idx files.")
@click.option("--epochs", type=int, default=8, show_default=True, help="Fine-tuning epochs.")
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--lr", type=float, default=None,
              help="Peak learning rate (default 2e-3 detect, 1e-4 classify).")
@click.option("--ema", "ema_decay", type=float, default=None,
              help="detect: keep an exponential moving average of the weights (0: off).  "
                   "[default: 0.999]")
@click.option("--keep-last", is_flag=True,
              help="detect: keep the last epoch's weights instead of the best by simulated-int8 "
                   "val mAP@0.5.")
@click.option("--max-train", type=int, default=None, help="Use at most N training samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (only same-named "
                   "entries are replaced; nothing else is deleted).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def qat(model, data, data_dir, epochs, batch, lr, ema_decay, keep_last, max_train, seed, out,
        overwrite, as_json, quiet) -> None:
    """Quantization-aware fine-tuning of MODEL (a run directory), written to --out.

    Trains MODEL for a few epochs through a simulation of its full-int8 .tflite (per-channel
    int8 weights, calibrated 8-bit activations, BatchNorm folded), so that the int8 model
    loses less accuracy. The output is a normal run directory: convert it with
    'edgecnn convert OUT --quant int8' as usual. The report gives the float and the simulated
    int8 metric before and after.

    \b
    Examples:
      edgecnn qat runs/det --epochs 8 --out runs/det_qat
      edgecnn convert runs/det_qat --quant int8 -o det_int8.tflite
    """
    from edgecnn.qat.api import qat_finetune
    from edgecnn.qat.options import QatOptions

    options = QatOptions(data=data, data_dir=data_dir, epochs=epochs, batch=batch, lr=lr,
                         ema_decay=ema_decay, keep_best=False if keep_last else None,
                         max_train=max_train, seed=seed, verbose=0 if (quiet or as_json) else 1,
                         overwrite=overwrite)
    result = qat_finetune(model, out, options,
                          stream=sys.stderr if as_json else None)
    if as_json:
        click.echo(json.dumps({"out": str(result.out), **result.report}, indent=2))
    else:
        r = result.report
        for key in ("float_before", "sim_before", "float_after", "sim_after"):
            click.echo(f"  {key:<13} " + "  ".join(f"{k} {v:.4f}" for k, v in r[key].items()))
        click.echo(f"wrote {result.out}")
