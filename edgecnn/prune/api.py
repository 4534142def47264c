"""``prune_model``: a trained run directory in, a pruned and fine-tuned run directory out.

The output is a normal run directory (``edgecnn.rundir``): ``model.keras``, ``run.json`` (the
source's RunInfo with the pruning report in ``reports["pruning"]``), ``labels.txt`` and
``history.csv``, so ``convert``, ``eval`` and ``bench`` take it unchanged. Nothing is written
unless every step succeeds. Fine-tuning runs the training engines
(:func:`edgecnn.train.finetune.finetune`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.prune.options import PruneOptions


@dataclass(frozen=True)
class PruneResult:
    """What a pruning run wrote and measured."""

    out: Path
    method: str
    report: dict            # per-layer rows, totals, metrics before/after (see report.py)

    @property
    def metrics_before(self) -> dict:
        return self.report.get("metrics_before", {})

    @property
    def metrics_after(self) -> dict:
        return self.report.get("metrics_after", {})


def prune_model(model_path, out, options: PruneOptions, stream=None) -> PruneResult:
    """Prune a trained model, fine-tune it on its data and write a run directory.

    Args:
        model_path: run directory or ``.keras`` file (with ``run.json`` beside it).
        out: run directory to write (replaced atomically).
        options: what to prune and how to fine-tune (validated when created).
        stream: where progress lines go (default stdout; ``options.verbose`` 0: none).

    Example:
        result = prune_model("runs/fmnist", "runs/fmnist_ch",
                             PruneOptions(method="channel", target_macs=0.5, epochs=3))
        result.report["totals"]["macs_ratio"]   # <= 0.5
    """
    from edgecnn.prune import macs, report as rep
    from edgecnn.train.finetune import FinetuneOptions
    from edgecnn.train.source import open_source_run, save_derived_run
    from edgecnn.train.task_data import evaluate_task, load_task_data

    stream = stream or sys.stdout
    source = open_source_run(model_path, out, options.data, options.data_dir, options.overwrite)
    model, info = source.model, source.info
    task_data = load_task_data(info, model, source.spec, source.data_dir, options.max_train,
                               options.batch)
    tuning = FinetuneOptions(epochs=options.epochs, batch=options.batch, seed=options.seed,
                             verbose=options.verbose, lr=options.finetune_lr)

    cost_before = macs.count(model)
    metrics_before = evaluate_task(info, model, task_data)
    start = time.perf_counter()
    prune = _magnitude if options.method == "magnitude" else _channel
    model, report, history = prune(model, info, task_data, options, tuning, stream)
    cost_after = macs.count(model)
    report["totals"] = rep.totals(cost_before, cost_after)
    report["metrics_before"] = metrics_before
    report["metrics_after"] = evaluate_task(info, model, task_data)
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["source"] = str(model_path)
    report["data"] = source.spec

    metrics = dict(info.metrics)
    if report["metrics_after"]:
        metrics = {f"val_{k}": v for k, v in report["metrics_after"].items()}
        metrics["params"] = cost_after.params
    save_derived_run(source, model, command="prune", report_key="pruning", report=report,
                     metrics=metrics, history=history, overwrite=options.overwrite)
    return PruneResult(source.out, options.method, report)


def _say(options: PruneOptions, stream):
    if not options.verbose:
        return lambda line: None
    return lambda line: print(line, file=stream, flush=True)


def _magnitude(model, info, task_data, options: PruneOptions, tuning, stream):
    from edgecnn.prune import report as rep
    from edgecnn.prune.magnitude import (MagnitudeOptions, MagnitudePruner, PolynomialDecay,
                                         kernel_sparsity)
    from edgecnn.train.finetune import finetune, steps_for

    say = _say(options, stream)
    if options.sparsity is None:  # PruneOptions refuses this; the check narrows the type
        raise UsageError("magnitude pruning needs --sparsity", "e.g. --sparsity 0.75")
    sparsity = float(options.sparsity)
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=sparsity, skip=options.skip,
                                                     skip_depthwise=options.skip_depthwise,
                                                     block=options.block_size,
                                                     scope=options.scope))
    history: dict = {}
    if tuning.epochs > 0:
        steps = steps_for(task_data, tuning)
        # Reach the target after ~2/3 of the steps and recover at full sparsity for the rest.
        end = max(1, int(steps * 2 / 3))
        schedule = PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end,
                                   frequency=max(1, end // 25))
        say(f"magnitude pruning to {sparsity:g} over {end} steps, fine-tuning "
            f"{tuning.epochs} epoch(s)")
        history = finetune(info, model, task_data, tuning, [pruner.callback(schedule)],
                           stream)
    else:
        pruner.prune_now()
    model = pruner.strip()
    rows = rep.magnitude_rows(kernel_sparsity(model), pruner.targets)
    report = {"method": "magnitude", "sparsity": sparsity, "block": list(options.block_size),
              "scope": options.scope, "layers": rows, "overall": rep.overall_sparsity(rows)}
    return model, report, history


def _channel(model, info, task_data, options: PruneOptions, tuning, stream):
    from edgecnn.prune import channel
    from edgecnn.train.finetune import finetune

    say = _say(options, stream)
    graph = channel.analyse(model, options.skip)
    if not graph.prunable():
        raise UsageError(f"model {model.name!r} has no prunable channels",
                         "channel pruning needs conv or dense layers whose outputs are not "
                         "the model's outputs")
    scores = channel.group_scores(graph, options.criterion)
    latency = None
    if options.objective == "latency":
        plan, latency = _latency_plan(graph, scores, options, say)
    elif options.target_macs is not None:
        plan = channel.plan_for_macs(graph, float(options.target_macs), scores,
                                     options.channel_multiple)
    elif options.sparsity is not None:
        plan = channel.plan_for_ratio(graph, float(options.sparsity), scores,
                                      options.channel_multiple)
    else:  # PruneOptions refuses this; the check narrows the type
        raise UsageError("channel pruning needs exactly one of --sparsity or --target-macs",
                         "e.g. --target-macs 0.5 (keep half the MACs)")
    thin = channel.rebuild(graph, plan)
    say(f"channel pruning: removed {plan.ratio:.3f} of the channels of "
        f"{len(graph.prunable())} channel groups")
    history = finetune(info, thin, task_data, tuning, stream=stream) if tuning.epochs else {}
    report = {"method": "channel", "criterion": options.criterion,
              "ratio": round(plan.ratio, 4), "target_macs": options.target_macs,
              "sparsity": options.sparsity, "objective": options.objective,
              "latency": latency, "layers": channel.channels_report(graph, plan)}
    return thin, report, history


def _latency_plan(graph, scores, options: PruneOptions, say):
    """The plan of the ``latency`` objective and its report (measured before fine-tuning)."""
    from edgecnn.prune import latency as lat

    # PruneOptions sets ``latency`` (default LatencyOptions) for the latency objective
    lat_options = options.latency or lat.LatencyOptions().validate()
    multiple = options.channel_multiple
    say("measuring int8 latency per channel group (one converted probe per group)")
    table = lat.measure_table(graph, scores, lat_options, multiple, say)
    plan = lat.plan_for_latency(graph, scores, table, target_macs=options.target_macs,
                                target_latency=options.target_latency,
                                min_keep=lat_options.min_keep, multiple=multiple)
    report = lat.table_report(graph, table, plan)
    dense_ms, thin_ms = lat.measured_ratio(graph, plan, lat_options)
    report.update(measured_dense_ms=round(dense_ms, 4), measured_pruned_ms=round(thin_ms, 4),
                  measured_ratio=round(thin_ms / dense_ms, 3), min_keep=lat_options.min_keep,
                  target_latency=options.target_latency)
    say(f"int8 invoke p50 predicted {report['predicted_ratio']:.2f}x, measured "
        f"{report['measured_ratio']:.2f}x of the dense model ({lat_options.threads} "
        f"thread(s), before fine-tuning)")
    return plan, report
