"""``edgecnn prune``: options -> ``PruneOptions`` -> ``edgecnn.prune.api.prune_model``."""

from __future__ import annotations

import json
import sys

import click


@click.command(short_help="Prune a trained model (magnitude or channel) and fine-tune it.")
@click.argument("model", type=click.Path())
@click.option("--method", type=click.Choice(["magnitude", "channel"]), required=True,
              help="magnitude: zero the smallest weights (smaller when compressed); channel: "
                   "remove whole channels (fewer MACs, faster).")
@click.option("--sparsity", type=float, default=None,
              help="Fraction to remove: of each pruned kernel's weights (magnitude) or of each "
                   "layer's channels (channel).")
@click.option("--target-macs", type=float, default=None,
              help="channel: fraction of the dense model's MACs to keep, e.g. 0.5.")
@click.option("--data", default=None,
              help="Dataset SPEC for fine-tuning (default: the one in run.json).")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder holding the fashion-mnist / mnist idx files.")
@click.option("--epochs", type=int, default=2, show_default=True,
              help="Fine-tuning epochs (0: prune without fine-tuning).")
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=None,
              help="Peak fine-tuning learning rate (default 5e-4 magnitude, 1e-3 channel).")
@click.option("--skip", multiple=True, metavar="LAYER",
              help="Layer to leave unpruned (repeatable). The first conv and the output "
                   "layers are always left alone.")
@click.option("--skip-depthwise", is_flag=True,
              help="magnitude: leave depthwise kernels dense (few weights, sensitive).")
@click.option("--block", default=None, metavar="RxC",
              help="magnitude: prune blocks of R output channels x C consecutive input-channel "
                   "weights together (e.g. 1x4, or 4); zeros in runs compress far better.")
@click.option("--scope", type=click.Choice(["layer", "model"]), default="layer",
              show_default=True,
              help="magnitude: --sparsity of each pruned kernel (layer) or of all kernel "
                   "weights, skipped layers included (model: the pruned layers go further).")
@click.option("--criterion", type=click.Choice(["l1", "bn"]), default="l1", show_default=True,
              help="channel: rank channels by filter L1 norm or batch-norm scale.")
@click.option("--objective", type=click.Choice(["macs", "latency"]), default="macs",
              show_default=True,
              help="channel: macs prunes every layer by the same ratio; latency converts and "
                   "times an int8 probe per layer group and prunes where a channel costs the "
                   "most time for its importance.")
@click.option("--target-latency", type=float, default=None,
              help="channel, --objective latency: fraction of the dense int8 invoke time to "
                   "keep (predicted from the measured per-group costs), e.g. 0.6.")
@click.option("--min-keep", type=float, default=None,
              help="channel, --objective latency: every layer keeps at least this fraction "
                   "of its channels.  [default: 0.5]")
@click.option("--latency-threads", type=int, default=None,
              help="channel, --objective latency: interpreter threads for the timings.  "
                   "[default: 2]")
@click.option("--channel-multiple", type=int, default=1, show_default=True,
              help="channel: round kept channel counts to a multiple of this.")
@click.option("--max-train", type=int, default=None, help="Use at most N training samples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (only same-named "
                   "entries are replaced; nothing else is deleted).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def prune(model, method, sparsity, target_macs, data, data_dir, epochs, batch, lr, skip,
          skip_depthwise, block, scope, criterion, objective, target_latency, min_keep,
          latency_threads, channel_multiple, max_train, seed, out, overwrite, as_json,
          quiet) -> None:
    """Prune MODEL (a run directory) and write a pruned run directory to --out.

    The output holds model.keras, run.json (with the pruning report), labels.txt and
    history.csv; convert, eval and bench take it like any trained run.

    \b
    Examples:
      edgecnn prune runs/fm --method magnitude --sparsity 0.75 --skip-depthwise --epochs 6
          --out runs/fm_mag
      edgecnn prune runs/fm --method channel --target-macs 0.5 --epochs 8 --out runs/fm_ch
      edgecnn prune runs/fm --method channel --objective latency --target-macs 0.5
          --epochs 8 --out runs/fm_chl
    """
    from edgecnn.prune.api import prune_model
    from edgecnn.prune.options import PruneOptions
    from edgecnn.prune.report import format_report

    latency = None
    given = {k: v for k, v in (("threads", latency_threads), ("min_keep", min_keep))
             if v is not None}
    if objective == "latency" or given:
        from edgecnn.prune.latency import LatencyOptions

        latency = LatencyOptions(**given)
    options = PruneOptions(method=method, sparsity=sparsity, target_macs=target_macs,
                           objective=objective, target_latency=target_latency, latency=latency,
                           criterion=criterion, channel_multiple=channel_multiple,
                           skip=tuple(skip), skip_depthwise=skip_depthwise, block=block,
                           scope=scope, data=data, data_dir=data_dir, epochs=epochs,
                           batch=batch, lr=lr, max_train=max_train, seed=seed,
                           verbose=0 if (quiet or as_json) else 1, overwrite=overwrite)
    result = prune_model(model, out, options,
                         stream=sys.stderr if as_json else None)
    if as_json:
        click.echo(json.dumps({"out": str(result.out), **result.report}, indent=2))
    else:
        click.echo(format_report(result.report))
        click.echo(f"wrote {result.out}")
