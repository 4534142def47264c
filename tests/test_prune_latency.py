"""Latency-aware channel pruning: the greedy plan over a cost table, and the real measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.prune import channel
from edgecnn.prune.latency import (LatencyOptions, LatencyTable, _probe_removal, measure_table,
                                   plan_for_latency)


def _two_stage_model():
    """A stem and depthwise conv that are cheap in MACs, a pointwise conv that holds most."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 1), name="image")
    x = L.Conv2D(16, 3, padding="same", name="stem")(inp)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(48, 1, name="pw")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(4, activation="softmax", name="classifier")(x), name="two")


def _groups(graph):
    return {g.sources[0]: g for g in graph.prunable()}


def test_plan_prunes_where_time_per_channel_is_highest():
    graph = channel.analyse(_two_stage_model())
    groups = _groups(graph)
    scores = channel.group_scores(graph)
    dense = channel.planned_macs(graph, channel.Plan({}))
    # The stem saves 1 ms per channel, the pointwise conv almost nothing.
    table = LatencyTable(10.0, {groups["stem"].gid: 0.5, groups["pw"].gid: 0.001}, threads=1)
    plan = plan_for_latency(graph, scores, table, target_macs=0.2, min_keep=0.25)
    kept = {name: len(plan.keep.get(g.gid, range(g.size))) for name, g in groups.items()}
    assert channel.planned_macs(graph, plan) <= 0.2 * dense
    assert kept["stem"] == math.ceil(0.25 * 16)          # to its floor first ...
    assert kept["pw"] < 48                               # ... then the cheap group for MACs
    # The same MAC target reached by the uniform plan keeps more of the stem.
    uniform = channel.plan_for_macs(graph, 0.2, scores)
    assert len(uniform.keep[groups["stem"].gid]) > kept["stem"]
    # A latency target alone stops as soon as the prediction is under it.
    fast = plan_for_latency(graph, scores, table, target_latency=0.7, min_keep=0.25)
    assert table.predict_ms(graph, fast) == pytest.approx(7.0)     # 6 stem channels x 0.5
    assert len(fast.keep[groups["stem"].gid]) == 10 and groups["pw"].gid not in fast.keep
    # The kept channels are the highest-scored ones.
    stem = groups["stem"].gid
    assert set(plan.keep[stem]) == set(np.argsort(-scores[stem], kind="stable")[:4])


def test_plan_keeps_widths_on_the_multiple_and_reports_unreachable_targets():
    graph = channel.analyse(_two_stage_model())
    groups = _groups(graph)
    scores = channel.group_scores(graph)
    table = LatencyTable(10.0, {groups["stem"].gid: 0.2, groups["pw"].gid: -0.05}, threads=2)
    plan = plan_for_latency(graph, scores, table, target_macs=0.4, min_keep=0.25, multiple=8)
    for gid, kept in plan.keep.items():
        assert len(kept) % 8 == 0 and len(kept) >= 8
    with pytest.raises(UsageError, match="not reachable"):
        plan_for_latency(graph, scores, table, target_macs=0.05, min_keep=0.5)
    with pytest.raises(UsageError, match="target"):
        plan_for_latency(graph, scores, table)
    with pytest.raises(UsageError, match="outside"):
        plan_for_latency(graph, scores, table, target_latency=1.5)


def test_probe_widths():
    assert _probe_removal(24, 0.5, 16) == 8        # 24 -> 16: one 16-channel tile
    assert _probe_removal(64, 0.5, 16) == 32
    assert _probe_removal(10, 0.5, 16) == 5        # narrower than the multiple: plain half
    assert _probe_removal(2, 0.5, 1) == 1
    with pytest.raises(UsageError, match="min-keep"):
        LatencyOptions(min_keep=0.0).validate()
    with pytest.raises(UsageError, match="latency-threads"):
        LatencyOptions(threads=0).validate()


def test_measure_table_times_real_int8_models():
    graph = channel.analyse(_two_stage_model())
    scores = channel.group_scores(graph)
    lines = []
    table = measure_table(graph, scores, LatencyOptions(threads=1, runs=30), say=lines.append)
    assert set(table.saved_ms) == {g.gid for g in graph.prunable()}
    assert table.dense_ms > 0 and all(np.isfinite(v) for v in table.saved_ms.values())
    assert table.threads == 1 and "3 int8 variants" in lines[0]
