"""Structured channel pruning: dependency groups, function of kept channels, MACs, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.prune import channel, macs


def _residual_model(seed: int = 0):
    """Conv-BN-ReLU stem, a depthwise-separable residual block, a separable conv, a pooled
    branch concatenated back, flatten and dense: every kind of channel dependency we handle."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw1")(x)
    y = L.BatchNormalization(name="dw1_bn")(y)
    y = L.ReLU(name="dw1_relu")(y)
    y = L.Conv2D(8, 1, name="pw1")(y)
    y = L.BatchNormalization(name="pw1_bn")(y)
    x = L.Add(name="add1")([x, y])
    z = L.SeparableConv2D(12, 3, padding="same", name="sep")(x)
    u = L.MaxPooling2D(name="pool")(x)
    u = L.Conv2D(6, 1, name="down")(u)
    u = L.UpSampling2D(name="up")(u)
    x = L.Concatenate(name="cat")([z, u])
    x = L.Activation("relu", name="cat_relu")(x)
    x = L.AveragePooling2D(4, name="avg")(x)
    x = L.Dropout(0.1, name="drop")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(16, activation="relu", name="fc1")(x)
    out = L.Dense(5, activation="softmax", name="classifier")(x)
    model = keras.Model(inp, out, name="toy")
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # random BN statistics so BN is not an identity
        weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
    return model


def _zero_channels(model, graph, group_of: str, channels: list[int]) -> None:
    """Make ``channels`` of the group ``group_of`` belongs to exactly zero everywhere."""
    group = next(g for g in graph.prunable() if group_of in g.sources)
    names = set(group.sources) | set(group.bns)
    for layer in model.layers:
        if layer.name not in names and not (type(layer).__name__ == "DepthwiseConv2D"
                                            and layer.name == "dw1" and "stem" in names):
            continue
        weights = layer.get_weights()
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            weights[0][channels] = 0.0   # gamma
            weights[1][channels] = 0.0   # beta
        elif kind == "DepthwiseConv2D":
            weights[0][:, :, channels] = 0.0
            weights[1][channels] = 0.0
        elif kind == "SeparableConv2D":
            weights[1][..., channels] = 0.0
            weights[2][channels] = 0.0
        else:
            weights[0][..., channels] = 0.0
            if len(weights) > 1:
                weights[1][channels] = 0.0
        layer.set_weights(weights)


def test_groups_follow_residuals_concat_and_outputs():
    graph = channel.analyse(_residual_model())
    groups = {tuple(sorted(g.sources)): g for g in graph.prunable()}
    # The shortcut and the block's pointwise conv must keep the same channels.
    assert ("pw1", "stem") in groups
    assert set(groups[("pw1", "stem")].bns) == {"stem_bn", "dw1_bn", "pw1_bn"}
    assert {("sep",), ("down",), ("fc1",)} <= set(groups)
    # The classifier's output is fixed: its shape must not change.
    assert all("classifier" not in g.sources for g in graph.prunable())


@pytest.mark.parametrize("criterion", ["l1", "bn"])
def test_removing_dead_channels_keeps_the_function(criterion):
    model = _residual_model()
    graph = channel.analyse(model)
    _zero_channels(model, graph, "stem", [1, 4, 6])
    _zero_channels(model, graph, "sep", [0, 4, 5, 7, 9])
    _zero_channels(model, graph, "down", [2, 3])
    _zero_channels(model, graph, "fc1", list(range(8)))
    graph = channel.analyse(model)
    plan = channel.plan_for_ratio(graph, 0.4, channel.group_scores(graph, criterion))
    thin = channel.rebuild(graph, plan)
    kept = {r["layer"]: (r["channels_before"], r["channels_after"])
            for r in channel.channels_report(graph, plan)}
    assert kept["stem"] == (8, 5) and kept["pw1"] == (8, 5)
    assert kept["sep"] == (12, 7) and kept["down"] == (6, 4) and kept["fc1"] == (16, 10)
    assert kept["classifier"] == (5, 5)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(thin(x, training=False).numpy(), model(x, training=False).numpy(),
                               rtol=1e-4, atol=1e-5)
    assert thin.count_params() < model.count_params()
    assert [layer.name for layer in thin.layers] == [layer.name for layer in model.layers]


def test_pruning_live_channels_changes_the_function_but_not_the_shape():
    model = _residual_model()
    graph = channel.analyse(model)
    thin = channel.rebuild(graph, channel.plan_for_ratio(graph, 0.5))
    x = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    a, b = model(x).numpy(), thin(x).numpy()
    assert a.shape == b.shape
    assert not np.allclose(a, b, atol=1e-3)


def test_target_macs_is_met_and_counted_exactly():
    model = _residual_model()
    dense = macs.count(model)
    graph = channel.analyse(model)
    for target in (0.7, 0.5, 0.3):
        plan = channel.plan_for_macs(graph, target)
        thin = channel.rebuild(graph, plan)
        counted = macs.count(thin).macs
        assert counted == channel.planned_macs(graph, plan)
        assert counted <= target * dense.macs
        # Not far below either: the search finds the smallest ratio that meets the target.
        assert counted >= (target - 0.15) * dense.macs, (target, counted / dense.macs)


def test_mac_counts_of_known_layers():
    import keras
    from keras import layers as L

    inp = keras.Input((8, 8, 4))
    x = L.Conv2D(6, 3, padding="same", name="c")(inp)             # 64*9*4*6
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="d")(x)  # 16*9*6
    x = L.SeparableConv2D(5, 3, padding="same", name="s")(x)      # 16*(9*6 + 6*5)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(3, name="f")(x)                                  # 5*3
    cost = macs.count(keras.Model(inp, out)).by_name()
    assert cost["c"].macs == 64 * 9 * 4 * 6
    assert cost["d"].macs == 16 * 9 * 6
    assert cost["s"].macs == 16 * (9 * 6 + 6 * 5)
    assert cost["f"].macs == 15
    assert cost["c"].params == 9 * 4 * 6 + 6


def test_detection_style_head_keeps_output_shapes():
    import keras
    from keras import layers as L

    inp = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(16, 3, strides=2, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    p8 = L.Conv2D(24, 3, strides=4, padding="same", name="c8")(x)
    p16 = L.Conv2D(24, 3, strides=2, padding="same", name="c16")(p8)
    up = L.UpSampling2D(2, name="up")(p16)
    p8 = L.Add(name="merge")([p8, up])
    boxes, scores = [], []
    for s, feat in ((8, p8), (16, p16)):
        n = (32 // s) ** 2
        box = L.Conv2D(4, 1, name=f"box{s}")(L.Conv2D(16, 3, padding="same", name=f"bh{s}")(feat))
        cls = L.Conv2D(3, 1, name=f"cls{s}")(L.Conv2D(16, 3, padding="same", name=f"ch{s}")(feat))
        boxes.append(L.Reshape((n, 4), name=f"box{s}_flat")(box))
        scores.append(L.Reshape((n, 3), name=f"cls{s}_flat")(cls))
    b = L.ReLU(name="boxes")(L.Concatenate(axis=1, name="boxes_raw")(boxes))
    c = L.Activation("sigmoid", name="scores")(L.Concatenate(axis=1, name="scores_logits")(scores))
    model = keras.Model(inp, [b, c], name="det")
    graph = channel.analyse(model)
    plan = channel.plan_for_macs(graph, 0.5)
    thin = channel.rebuild(graph, plan)
    x = np.zeros((1, 32, 32, 3), "float32")
    assert [o.shape for o in thin(x)] == [o.shape for o in model(x)] == [(1, 20, 4), (1, 20, 3)]
    assert thin.output_names == model.output_names
    assert macs.count(thin).macs <= 0.5 * macs.count(model).macs
    rows = {r["layer"]: r for r in channel.channels_report(graph, plan)}
    assert rows["box8"]["channels_after"] == 4 and rows["cls16"]["channels_after"] == 3
    assert rows["c8"]["channels_after"] == rows["c16"]["channels_after"] < 24


def test_unsupported_layer_is_named():
    import keras
    from keras import layers as L

    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="c1")(inp)
    x = L.LayerNormalization(name="ln")(x)
    out = L.Dense(2, name="out")(L.Flatten()(x))
    with pytest.raises(UsageError, match="ln.*LayerNormalization"):
        channel.analyse(keras.Model(inp, out))


def test_removing_every_channel_is_refused():
    graph = channel.analyse(_residual_model())
    with pytest.raises(UsageError, match="every channel"):
        channel.plan_for_ratio(graph, 0.95)
    with pytest.raises(UsageError, match="outside"):
        channel.plan_for_ratio(graph, 1.0)
    with pytest.raises(UsageError, match="not reachable"):
        channel.plan_for_macs(graph, 0.001)


def test_sequential_model_and_saving(tmp_path):
    import keras
    from keras import layers as L

    model = keras.Sequential([keras.Input((10, 10, 1)), L.Conv2D(8, 3, name="c1"),
                              L.BatchNormalization(name="bn1"), L.ReLU(),
                              L.Conv2D(8, 3, name="c2"), L.Flatten(name="flat"),
                              L.Dense(12, name="d1"), L.Dense(4, name="out")], name="seq")
    graph = channel.analyse(model)
    thin = channel.rebuild(graph, channel.plan_for_ratio(graph, 0.5))
    assert [w.shape for w in thin.get_layer("d1").get_weights()] == [(6 * 6 * 4, 6), (6,)]
    path = tmp_path / "thin.keras"
    thin.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = np.ones((1, 10, 10, 1), "float32")
    np.testing.assert_allclose(loaded(x).numpy(), thin(x).numpy(), rtol=1e-5)


@pytest.mark.parametrize("arch, shape, classes", [("dsnet_test", (16, 16, 1), 10),
                                                  ("det_test", (64, 64, 3), 2)])
def test_registry_models_prune_to_half_the_macs(arch, shape, classes):
    from edgecnn.models.registry import create_model
    from edgecnn.prune.magnitude import MagnitudeOptions, MagnitudePruner

    model = create_model(arch, shape, classes)
    graph = channel.analyse(model)
    thin = channel.rebuild(graph, channel.plan_for_macs(graph, 0.5))
    x = np.random.default_rng(0).uniform(0, 1, size=(1, *shape)).astype("float32")
    before, after = model(x), thin(x)
    before = before if isinstance(before, (list, tuple)) else [before]
    after = after if isinstance(after, (list, tuple)) else [after]
    assert [tuple(a.shape) for a in after] == [tuple(b.shape) for b in before]
    assert macs.count(thin).macs <= 0.5 * macs.count(model).macs
    assert MagnitudePruner(model, MagnitudeOptions(sparsity=0.5)).targets
