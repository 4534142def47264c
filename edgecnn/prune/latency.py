"""Latency-aware channel pruning: a measured int8 cost per channel group, and a plan that uses it.

MACs are a poor proxy for int8 invoke time on small inputs. On the 28x28 Fashion-MNIST
``dsnet_s`` the stem conv and the first depthwise conv (both at 28x28, 24 channels) hold 9% of
the MACs but take 44% of the 1-thread invoke time, while the pointwise convs at 7x7 that hold
most MACs take a few microseconds each (docs/BENCHMARKS.md, prune, per-op profile). Pruning
every group by the same ratio until the MACs halve therefore leaves most of the time in place.

:func:`measure_table` measures instead: the dense model and, for every prunable channel group,
a copy with ``probe`` of that group's channels removed are converted to full-int8 TFLite and
timed with the real interpreter, interleaved in one process (``edgecnn.bench``). A group's cost
is the invoke time saved per channel removed. :func:`plan_for_latency` then removes channels
one at a time, always the one with the lowest importance per millisecond saved, until the MACs
and/or the predicted latency are under their targets, never leaving a group below ``min_keep``
of its channels.

Calibration uses random inputs: the int8 kernels' speed does not depend on the quantization
ranges, so the table needs no dataset.

Example:
    graph = channel.analyse(model)
    scores = channel.group_scores(graph)
    table = measure_table(graph, scores, LatencyOptions(threads=2))
    plan = plan_for_latency(graph, scores, table, target_macs=0.5)
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.prune.channel import Graph, Plan, _group_label, _kept_count, planned_macs, rebuild


@dataclass(frozen=True)
class LatencyOptions:
    """How to measure the cost table and how far the plan may go.

    Attributes:
        threads: interpreter threads for the timings (time per op depends on it).
        runs: timed invokes per model variant (p50 is used).
        probe: fraction of a group's channels removed to measure its cost.
        min_keep: every group keeps at least this fraction of its channels.
    """

    threads: int = 2
    runs: int = 300
    probe: float = 0.5
    min_keep: float = 0.5

    def validate(self) -> "LatencyOptions":
        if self.threads < 1:
            raise UsageError(f"--latency-threads must be >= 1, got {self.threads}")
        if self.runs < 10:
            raise UsageError(f"latency runs must be >= 10, got {self.runs}")
        if not 0.0 < self.probe < 1.0:
            raise UsageError(f"latency probe {self.probe:g} is outside (0, 1)")
        if not 0.0 < self.min_keep <= 1.0:
            raise UsageError(f"--min-keep {self.min_keep:g} is outside (0, 1]",
                             "give the fraction of each layer's channels to keep, e.g. 0.25")
        return self


@dataclass(frozen=True)
class LatencyTable:
    """Measured int8 invoke p50 of the dense model and the time saved per channel per group."""

    dense_ms: float
    saved_ms: dict[int, float]      # group id -> ms saved per channel removed (may be <= 0)
    threads: int

    def predict_ms(self, graph: Graph, plan: Plan) -> float:
        """Dense time minus each group's per-channel saving times its removed channels."""
        total = self.dense_ms
        for group in graph.prunable():
            kept = plan.keep.get(group.gid)
            if kept is not None:
                total -= self.saved_ms.get(group.gid, 0.0) * (group.size - len(kept))
        return total


def int8_tflite(model, samples: int = 4, seed: int = 0) -> bytes:
    """Full-int8 TFLite bytes of ``model``, calibrated on random inputs (timing use only)."""
    from converters.calibration import representative_dataset
    from converters.keras_tflite import convert_keras
    from converters.recipes import Recipe

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    calib = np.random.default_rng(seed).uniform(0.0, 1.0, size=(samples, *shape))
    return convert_keras(model, Recipe.parse("int8"),
                         representative_dataset(calib.astype("float32")))


def time_int8(blobs: list[bytes], threads: int, runs: int) -> list[float]:
    """p50 invoke milliseconds of each model, measured interleaved in this process."""
    from edgecnn.bench.latency import BenchOptions, benchmark

    with tempfile.TemporaryDirectory(prefix="edgecnn_latency_") as tmp:
        paths = []
        for i, blob in enumerate(blobs):
            path = Path(tmp) / f"variant{i}.tflite"
            path.write_bytes(blob)
            paths.append(path)
        results = benchmark(paths, BenchOptions(threads=(threads,), runs=runs, warmup=20,
                                                block=20))
    return [r.p50_ms for r in results]


def _lowest(scores: np.ndarray, remove: int) -> np.ndarray:
    """Sorted indices of the channels kept when the ``remove`` lowest-scored go."""
    order = np.argsort(scores, kind="stable")
    return np.sort(order[remove:])


def _probe_removal(size: int, probe: float, multiple: int) -> int:
    """Channels a probe removes: ``probe`` of them, leaving a width that is a ``multiple``."""
    kept = _kept_count(size, probe, multiple)
    if kept >= size:   # a group narrower than two multiples: probe without rounding
        kept = size - max(1, round(size * probe))
    return max(1, min(size - 1, size - kept))


def measure_table(graph: Graph, scores: dict[int, np.ndarray], options: LatencyOptions,
                  multiple: int = 1, say=lambda line: None) -> LatencyTable:
    """Convert and time the dense model and one probe per prunable group (see module doc).

    With ``multiple`` > 1 each probe leaves a width that is a multiple of it, as the plan will:
    XNNPACK's int8 kernels work in tiles of channels (16 on this AVX-512 machine), so the time
    falls in steps and a probe between steps would mismeasure.
    """
    options = options.validate()
    groups = graph.prunable()
    blobs = [int8_tflite(graph.model)]
    removed = {}
    for group in groups:
        removed[group.gid] = _probe_removal(group.size, options.probe, multiple)
        plan = Plan({group.gid: _lowest(scores[group.gid], removed[group.gid])})
        blobs.append(int8_tflite(rebuild(graph, plan)))
    say(f"timing {len(blobs)} int8 variants ({options.threads} thread(s), "
        f"{options.runs} runs each)")
    times = time_int8(blobs, options.threads, options.runs)
    saved = {g.gid: (times[0] - t) / removed[g.gid] for g, t in zip(groups, times[1:])}
    return LatencyTable(times[0], saved, options.threads)


def plan_for_latency(graph: Graph, scores: dict[int, np.ndarray], table: LatencyTable, *,
                     target_macs: float | None = None, target_latency: float | None = None,
                     min_keep: float = 0.5, multiple: int = 1) -> Plan:
    """Remove the channels with the least importance per millisecond saved, until on target.

    Importance is the channel's score (normalised to mean 1 within its layer); a group whose
    measured saving is not positive (noise, or a layer too small to matter) is charged a tiny
    saving, so its channels go last. With ``multiple`` > 1 channels go in steps that keep each
    group's width a multiple of it.

    Args:
        target_macs: keep at most this fraction of the dense MACs.
        target_latency: keep at most this fraction of the dense int8 time, as predicted by
            ``table``.
        min_keep: fraction of each group's channels that always stays.

    Raises:
        UsageError: no target, a target outside (0, 1], or targets not reachable within
            ``min_keep``.
    """
    if target_macs is None and target_latency is None:
        raise UsageError("latency-aware pruning needs --target-macs and/or --target-latency",
                         "e.g. --target-macs 0.5")
    for name, value in (("--target-macs", target_macs), ("--target-latency", target_latency)):
        if value is not None and not 0.0 < value <= 1.0:
            raise UsageError(f"{name} {value:g} is outside (0, 1]", "give a fraction such as 0.5")
    groups = {g.gid: g for g in graph.prunable()}
    order = {gid: np.argsort(scores[gid], kind="stable") for gid in groups}
    removed = {gid: 0 for gid in groups}
    floor = {gid: max(1, math.ceil(min_keep * g.size)) for gid, g in groups.items()}
    positive = [s for s in table.saved_ms.values() if s > 0]
    tiny = 1e-3 * (min(positive) if positive else 1e-6)
    dense_macs = planned_macs(graph, Plan({}))

    def plan() -> Plan:
        return Plan({gid: np.sort(order[gid][removed[gid]:]) for gid in groups if removed[gid]},
                    1.0 - sum(g.size - removed[gid] for gid, g in groups.items())
                    / max(1, sum(g.size for g in groups.values())))

    def on_target(p: Plan) -> bool:
        if target_macs is not None and planned_macs(graph, p) > target_macs * dense_macs:
            return False
        return target_latency is None or table.predict_ms(graph, p) <= \
            target_latency * table.dense_ms

    def step(gid: int) -> int:
        kept = groups[gid].size - removed[gid]
        n = kept % multiple if multiple > 1 and kept % multiple else multiple
        return n if kept - n >= floor[gid] else 0

    current = plan()
    while not on_target(current):
        best, best_value = None, math.inf
        for gid in groups:
            n = step(gid)
            if n == 0:
                continue
            chunk = order[gid][removed[gid]:removed[gid] + n]
            saved = max(table.saved_ms.get(gid, 0.0), tiny) * n
            value = float(scores[gid][chunk].sum()) / saved
            if value < best_value:
                best, best_value = gid, value
        if best is None:
            macs = planned_macs(graph, current) / dense_macs
            ms = table.predict_ms(graph, current) / table.dense_ms
            raise UsageError(f"the target is not reachable keeping {min_keep:g} of every "
                             f"layer's channels (the most this plan removes leaves "
                             f"{macs:.2f} of the MACs, {ms:.2f} of the predicted time)",
                             "lower --min-keep or raise the target")
        removed[best] += step(best)
        current = plan()
    return current


def table_report(graph: Graph, table: LatencyTable, plan: Plan) -> dict:
    """The cost table and the plan's predicted time, for the pruning report."""
    return {"threads": table.threads, "dense_ms": round(table.dense_ms, 4),
            "predicted_ratio": round(table.predict_ms(graph, plan) / table.dense_ms, 3),
            "groups": [{"layers": _group_label(graph, g), "channels": g.size,
                        "kept": len(plan.keep.get(g.gid, range(g.size))),
                        "saved_us_per_channel": round(1000 * table.saved_ms[g.gid], 3)}
                       for g in graph.prunable()]}


def measured_ratio(graph: Graph, plan: Plan, options: LatencyOptions) -> tuple[float, float]:
    """(dense ms, thinned ms): int8 p50 of the model before and after ``plan``, one timing run.

    The thinned model is timed before fine-tuning: its weights change, its shapes do not.
    """
    dense, thin = time_int8([int8_tflite(graph.model), int8_tflite(rebuild(graph, plan))],
                            options.threads, options.runs)
    return dense, thin
