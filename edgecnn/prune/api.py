"""``prune_model``: a trained run directory in, a pruned and fine-tuned run directory out.

The output is a normal run directory (``edgecnn.rundir``): ``model.keras``, ``run.json`` (the
source's RunInfo with the pruning report in ``extra["pruning"]``), ``labels.txt`` and
``history.csv``, so ``convert``, ``eval`` and ``bench`` take it unchanged. Nothing is written
unless every step succeeds.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import UsageError

METHODS = ("magnitude", "channel")
OBJECTIVES = ("macs", "latency")


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


def check_options(method: str, sparsity: float | None, target_macs: float | None,
                  epochs: int, batch: int = 64, lr: float | None = None,
                  objective: str = "macs", target_latency: float | None = None) -> None:
    """Reject bad numbers before any model or dataset is loaded."""
    if method not in METHODS:
        raise UsageError(f"unknown pruning method {method!r}", "use magnitude or channel")
    if objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {objective!r}", "use macs or latency")
    if objective == "latency" or target_latency is not None:
        _check_latency_options(method, sparsity, target_macs, objective, target_latency)
    if sparsity is not None and not 0.0 <= sparsity < 1.0:
        raise UsageError(f"--sparsity {sparsity:g} is outside [0, 1)",
                         "give the fraction to remove, such as 0.75")
    if method == "magnitude":
        if sparsity is None:
            raise UsageError("magnitude pruning needs --sparsity", "e.g. --sparsity 0.75")
        if target_macs is not None:
            raise UsageError("--target-macs applies to --method channel only",
                             "magnitude pruning does not reduce MACs; use --sparsity")
    elif objective == "macs":
        if (sparsity is None) == (target_macs is None):
            raise UsageError("channel pruning needs exactly one of --sparsity or --target-macs",
                             "e.g. --target-macs 0.5 (keep half the MACs)")
    if target_macs is not None and not 0.0 < target_macs <= 1.0:
        raise UsageError(f"--target-macs {target_macs:g} is outside (0, 1]",
                         "give the fraction of MACs to keep, such as 0.5")
    if epochs < 0:
        raise UsageError(f"--epochs must be >= 0, got {epochs}", "use 0 to prune without "
                         "fine-tuning")
    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    if lr is not None and lr <= 0:
        raise UsageError(f"--lr must be > 0, got {lr}")


def _check_latency_options(method, sparsity, target_macs, objective, target_latency) -> None:
    if method != "channel":
        raise UsageError("--objective latency and --target-latency apply to --method channel "
                         "only", "magnitude pruning does not change the int8 invoke time")
    if objective != "latency":
        raise UsageError("--target-latency needs --objective latency",
                         "add --objective latency (the time is measured with the interpreter)")
    if sparsity is not None:
        raise UsageError("--objective latency takes --target-macs and/or --target-latency, "
                         "not --sparsity", "e.g. --target-macs 0.5")
    if target_macs is None and target_latency is None:
        raise UsageError("--objective latency needs --target-macs and/or --target-latency",
                         "e.g. --target-macs 0.5")
    if target_latency is not None and not 0.0 < target_latency <= 1.0:
        raise UsageError(f"--target-latency {target_latency:g} is outside (0, 1]",
                         "give the fraction of the dense int8 invoke time to keep, e.g. 0.6")


def prune_model(model_path, method: str, sparsity: float | None, data: str | None,
                epochs: int, out, *, target_macs: float | None = None,
                skip: tuple[str, ...] = (), criterion: str = "l1", data_dir: str | None = None,
                batch: int = 64, lr: float | None = None, max_train: int | None = None,
                seed: int = 0, channel_multiple: int = 1, skip_depthwise: bool = False,
                block: tuple[int, int] = (1, 1), scope: str = "layer",
                objective: str = "macs", target_latency: float | None = None,
                latency_options=None, verbose: int = 1, overwrite: bool = False,
                stream=None) -> PruneResult:
    """Prune a trained model, fine-tune it on its data and write a run directory.

    Args:
        model_path: run directory or ``.keras`` file (with ``run.json`` beside it).
        method: ``magnitude`` (unstructured zeros; smaller when compressed) or ``channel``
            (thinner layers; fewer MACs, faster).
        sparsity: magnitude: fraction of kernel weights zeroed per pruned layer; channel:
            fraction of channels removed per prunable layer.
        data: dataset SPEC; None uses the one in ``run.json``.
        epochs: fine-tuning epochs (0: prune only).
        out: run directory to write (replaced atomically).
        target_macs: channel only: fraction of the dense MACs to keep (instead of sparsity).
        skip: layer names left untouched (besides the default first conv / output layers).
        criterion: channel ranking: ``l1`` (filter norms) or ``bn`` (batch-norm scale).
        channel_multiple: round kept channel counts to this multiple (SIMD-friendly widths).
        skip_depthwise: magnitude only: leave depthwise kernels dense.
        block: magnitude only: ``(rows, cols)`` blocks pruned together (``parse_block``);
            ``(1, 1)`` is unstructured.
        scope: magnitude only: ``layer`` (``sparsity`` per pruned kernel) or ``model``
            (``sparsity`` of all kernel weights, skipped layers included).
        objective: channel only: ``macs`` (the same ratio for every layer, bisected to
            ``target_macs``) or ``latency`` (channels removed where the measured int8 time
            per channel is highest relative to their importance; ``edgecnn.prune.latency``).
        target_latency: channel, ``latency`` objective: fraction of the dense int8 invoke
            time to keep, as predicted by the measured cost table.
        latency_options: ``edgecnn.prune.latency.LatencyOptions`` (threads, runs, min_keep).

    Example:
        result = prune_model("runs/fmnist", "channel", None, None, 3, "runs/fmnist_ch",
                             target_macs=0.5)
        result.report["totals"]["macs_ratio"]   # <= 0.5
    """
    check_options(method, sparsity, target_macs, epochs, batch, lr, objective, target_latency)
    if objective == "latency":
        from edgecnn.prune.latency import LatencyOptions

        latency_options = (latency_options or LatencyOptions()).validate()
    stream = stream or sys.stdout
    from edgecnn.prune import finetune as ft
    from edgecnn.prune import macs, report as rep
    from edgecnn.rundir import MODEL_FILE, RunInfo

    source = ft.open_source_run(model_path, out, data, data_dir, overwrite)
    model, info, spec, data_dir, out = (source.model, source.info, source.spec,
                                        source.data_dir, source.out)
    options = ft.FinetuneOptions(epochs=epochs, batch=batch, seed=seed, verbose=verbose,
                                 lr=lr if lr is not None else (5e-4 if method == "magnitude"
                                                               else 1e-3))
    task_data = ft.load_task_data(info, model, spec, data_dir, max_train, batch)
    say = (lambda line: print(line, file=stream, flush=True)) if verbose else (lambda line: None)

    cost_before = macs.count(model)
    metrics_before = ft.evaluate(info, model, task_data)
    start = time.perf_counter()
    if method == "magnitude":
        model, report = _magnitude(model, info, task_data, sparsity, skip, skip_depthwise,
                                   tuple(block), scope, options, say)
    else:
        budget = (target_macs, target_latency, latency_options if objective == "latency"
                  else None)
        model, report = _channel(model, info, task_data, sparsity, budget, skip, criterion,
                                 channel_multiple, options, say)
    history = report.pop("_history")
    cost_after = macs.count(model)
    report["totals"] = rep.totals(cost_before, cost_after)
    report["metrics_before"] = metrics_before
    report["metrics_after"] = ft.evaluate(info, model, task_data)
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["source"] = str(model_path)
    report["data"] = spec

    from edgecnn.fsutil import atomic_dir
    from edgecnn.train.common import write_history_csv

    from edgecnn.rundir import Provenance, dataset_reference

    metrics = dict(info.metrics)
    if report["metrics_after"]:
        metrics = {f"val_{k}": v for k, v in report["metrics_after"].items()}
        metrics["params"] = cost_after.params
    new_info = info.derive(metrics=metrics, reports={**info.reports, "pruning": report},
                           data=dataset_reference(spec), data_dir=dataset_reference(data_dir),
                           provenance=Provenance.now("prune", parent=str(model_path)))
    with atomic_dir(out, overwrite) as tmp:
        _plain_copy(model).save(tmp / MODEL_FILE)
        new_info.save(tmp)
        write_history_csv(tmp / "history.csv", history)
    RunInfo.load(out)  # fail loudly here rather than in a later step
    return PruneResult(out, method, report)


def _magnitude(model, info, task_data, sparsity, skip, skip_depthwise, block, scope, options,
               say):
    from edgecnn.prune import finetune as ft
    from edgecnn.prune import report as rep
    from edgecnn.prune.magnitude import (MagnitudeOptions, MagnitudePruner, PolynomialDecay,
                                         kernel_sparsity)

    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=float(sparsity), skip=tuple(skip),
                                                     skip_depthwise=skip_depthwise, block=block,
                                                     scope=scope))
    history: dict = {}
    if options.epochs > 0:
        steps = ft.steps_for(task_data, options)
        # Reach the target after ~2/3 of the steps and recover at full sparsity for the rest.
        end = max(1, int(steps * 2 / 3))
        schedule = PolynomialDecay(0.0, float(sparsity), begin_step=0, end_step=end,
                                   frequency=max(1, end // 25))
        say(f"magnitude pruning to {sparsity:g} over {end} steps, fine-tuning "
            f"{options.epochs} epoch(s)")
        history = ft.finetune(info, model, task_data, options, [pruner.callback(schedule)])
    else:
        pruner.prune_now()
    model = pruner.strip()
    rows = rep.magnitude_rows(kernel_sparsity(model), pruner.targets)
    report = {"method": "magnitude", "sparsity": float(sparsity), "block": list(block),
              "scope": scope,
              "layers": rows,
              "overall": rep.overall_sparsity(rows), "_history": history}
    return model, report


def _channel(model, info, task_data, sparsity, budget, skip, criterion, multiple, options, say):
    from edgecnn.prune import channel
    from edgecnn.prune import finetune as ft

    graph = channel.analyse(model, tuple(skip))
    if not graph.prunable():
        raise UsageError(f"model {model.name!r} has no prunable channels",
                         "channel pruning needs conv or dense layers whose outputs are not "
                         "the model's outputs")
    scores = channel.group_scores(graph, criterion)
    target_macs, target_latency, latency_options = budget
    latency = None
    if latency_options is not None:
        from edgecnn.prune import latency as lat

        say("measuring int8 latency per channel group (one converted probe per group)")
        table = lat.measure_table(graph, scores, latency_options, multiple, say)
        plan = lat.plan_for_latency(graph, scores, table, target_macs=target_macs,
                                    target_latency=target_latency,
                                    min_keep=latency_options.min_keep, multiple=multiple)
        latency = lat.table_report(graph, table, plan)
        dense_ms, thin_ms = lat.measured_ratio(graph, plan, latency_options)
        latency.update(measured_dense_ms=round(dense_ms, 4),
                       measured_pruned_ms=round(thin_ms, 4),
                       measured_ratio=round(thin_ms / dense_ms, 3),
                       min_keep=latency_options.min_keep, target_latency=target_latency)
        say(f"int8 invoke p50 predicted {latency['predicted_ratio']:.2f}x, measured "
            f"{latency['measured_ratio']:.2f}x of the dense model ({latency_options.threads} "
            f"thread(s), before fine-tuning)")
    elif target_macs is not None:
        plan = channel.plan_for_macs(graph, float(target_macs), scores, multiple)
    else:
        plan = channel.plan_for_ratio(graph, float(sparsity), scores, multiple)
    thin = channel.rebuild(graph, plan)
    say(f"channel pruning: removed {plan.ratio:.3f} of the channels of "
        f"{len(graph.prunable())} channel groups")
    history = ft.finetune(info, thin, task_data, options) if options.epochs > 0 else {}
    report = {"method": "channel", "criterion": criterion, "ratio": round(plan.ratio, 4),
              "target_macs": target_macs, "sparsity": sparsity,
              "objective": "latency" if latency is not None else "macs", "latency": latency,
              "layers": channel.channels_report(graph, plan), "_history": history}
    return thin, report


def _plain_copy(model):
    """The model without optimizer state: what ``model.keras`` should hold."""
    from edgecnn.lazy import keras

    k = keras()
    copy = k.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
