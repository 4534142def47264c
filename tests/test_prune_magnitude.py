"""Magnitude pruning: schedule values, exact zeros through optimizer steps, stripping."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.prune.magnitude import (MagnitudeOptions, MagnitudePruner, PolynomialDecay,
                                     kernel_sparsity, magnitude_mask)


def _model(seed: int = 0):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(16, 1, name="pw")(x)
    x = L.SeparableConv2D(16, 3, padding="same", name="sep")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    out = L.Dense(3, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="mag_toy")


def test_polynomial_decay_matches_tfmot_formula():
    s = PolynomialDecay(0.1, 0.8, begin_step=10, end_step=110, power=3, frequency=25)
    assert s.sparsity(0) == pytest.approx(0.1)
    assert s.sparsity(10) == pytest.approx(0.1)
    assert s.sparsity(60) == pytest.approx(0.8 + (0.1 - 0.8) * 0.5 ** 3)
    assert s.sparsity(110) == pytest.approx(0.8)
    assert s.sparsity(500) == pytest.approx(0.8)
    values = [s.sparsity(t) for t in range(0, 120)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    updates = [t for t in range(0, 200) if s.should_update(t)]
    assert updates == [10, 35, 60, 85, 110]
    with pytest.raises(UsageError):
        PolynomialDecay(0.0, 1.0, 0, 10)


def test_mask_zeroes_exactly_the_smallest():
    w = np.arange(-10, 10, dtype="float32").reshape(4, 5)
    mask = magnitude_mask(w, 0.25)
    assert int((mask == 0).sum()) == 5
    assert np.abs(w[mask == 0]).max() <= np.abs(w[mask == 1]).min()


def test_masks_hold_through_optimizer_steps_and_strip_saves_safely(tmp_path):
    import keras

    model = _model()
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.75))
    # Defaults: first conv and the output dense stay dense.
    assert set(pruner.targets) == {"dw", "pw", "sep", "fc"}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=64)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss="sparse_categorical_crossentropy", run_eagerly=True)
    schedule = PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)
    callback = pruner.callback(schedule)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])  # 16 steps
    assert callback.step == 16
    logged = dict(callback.sparsity_log)
    assert set(logged) == {0, 2, 4, 6}
    assert logged[6] == pytest.approx(0.75)
    assert logged[2] == pytest.approx(0.75 * (1 - (1 - 1 / 3) ** 3))
    # After every update the masked weights are exactly zero, not merely small.
    for (name, var), mask in zip(pruner.kernels, pruner.masks):
        w = np.asarray(var.numpy())
        assert np.all(w[mask == 0] == 0.0), name
        assert np.mean(mask == 0) == pytest.approx(0.75, abs=0.01), name
    # A high learning rate moved the surviving weights: the masks did real work.
    stripped = pruner.strip()
    zeros = kernel_sparsity(stripped)
    for name in pruner.targets:
        z, n = zeros[name]
        assert z / n == pytest.approx(0.75, abs=0.01), name
    assert zeros["stem"][0] == 0 and zeros["classifier"][0] == 0
    path = tmp_path / "pruned.keras"
    stripped.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert [type(layer).__name__ for layer in loaded.layers] == \
        [type(layer).__name__ for layer in stripped.layers]
    assert kernel_sparsity(loaded) == zeros
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0),
                               stripped.predict(x[:4], verbose=0), rtol=1e-5, atol=1e-6)


def test_per_layer_targets_and_skips():
    model = _model()
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.5, skip=("fc",),
                                                     per_layer={"pw": 0.9, "stem": 0.2}))
    pruner.prune_now()
    zeros = kernel_sparsity(model)
    assert zeros["pw"][0] / zeros["pw"][1] == pytest.approx(0.9, abs=0.01)
    assert zeros["stem"][0] / zeros["stem"][1] == pytest.approx(0.2, abs=0.02)
    assert zeros["dw"][0] / zeros["dw"][1] == pytest.approx(0.5, abs=0.02)
    assert zeros["fc"][0] == 0
    no_dw = MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.5, skip_depthwise=True))
    assert set(no_dw.targets) == {"pw", "sep", "fc"}


def test_bad_inputs():
    import keras
    from keras import layers as L

    with pytest.raises(UsageError, match="outside"):
        MagnitudePruner(_model(), MagnitudeOptions(sparsity=1.0))
    with pytest.raises(UsageError, match="not a prunable layer"):
        MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.5, skip=("nope",)))
    inp = keras.Input((4,))
    no_weights = keras.Model(inp, L.ReLU()(inp))
    with pytest.raises(UsageError, match="no prunable layers"):
        MagnitudePruner(no_weights, MagnitudeOptions(sparsity=0.5))


def test_sequential_model_is_pruned():
    import keras
    from keras import layers as L

    model = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(4, 3, name="c1"),
                              L.Conv2D(8, 3, name="c2"), L.Flatten(), L.Dense(5, name="d1"),
                              L.Dense(2, name="out")])
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.6))
    assert set(pruner.targets) == {"c2", "d1"}
    pruner.prune_now()
    z, n = kernel_sparsity(model)["d1"]
    assert z == round(0.6 * n)


def _tflite_layout(kernel: np.ndarray, kind: str) -> np.ndarray:
    """A Keras kernel in the layout the TFLite converter stores (for checking block runs)."""
    if kind == "depthwise":          # (kh, kw, ch, 1) -> [1, kh, kw, ch]
        return kernel.reshape(1, *kernel.shape[:2], -1)
    if kind == "dense":              # (in, out) -> [out, in]
        return kernel.T
    return np.transpose(kernel, (3, 0, 1, 2))   # conv (kh, kw, in, out) -> [out, kh, kw, in]


def _runs_are_blocks(stored: np.ndarray, cols: int) -> bool:
    """Every aligned run of ``cols`` along the last (contiguous) axis is all zero or all kept."""
    last = stored.shape[-1]
    flat = stored.reshape(-1, last)
    for start in range(0, last, cols):
        chunk = flat[:, start:start + cols] == 0
        if np.any(chunk.any(axis=1) != chunk.all(axis=1)):
            return False
    return True


@pytest.mark.parametrize("kind, shape, layout", [
    ("conv", (3, 3, 12, 8), "standard"),
    ("dense", (20, 6), "standard"),
    ("depthwise", (3, 3, 16, 1), "depthwise"),
])
def test_block_mask_zeroes_whole_blocks_along_the_contiguous_axis(kind, shape, layout):
    from edgecnn.prune.magnitude import block_mask

    w = np.random.default_rng(1).normal(size=shape).astype("float32")
    mask = block_mask(w, 0.5, (1, 4), layout)
    stored = _tflite_layout(mask, kind)
    assert _runs_are_blocks(stored, 4)
    assert not _runs_are_blocks(_tflite_layout(magnitude_mask(w, 0.5), kind), 4)
    assert np.mean(mask == 0) == pytest.approx(0.5, abs=4 / w.size)
    # The zeroed blocks are the ones with the smallest mean magnitude.
    means = np.abs(_tflite_layout(w, kind)).reshape(-1, 4).mean(axis=1)
    zeroed = (_tflite_layout(mask, kind).reshape(-1, 4) == 0).all(axis=1)
    assert means[zeroed].max() <= means[~zeroed].min()


def test_block_rows_and_partial_edge_blocks():
    from edgecnn.prune.magnitude import block_mask

    w = np.random.default_rng(2).normal(size=(10, 7)).astype("float32")   # dense (in, out)
    stored = block_mask(w, 0.5, (2, 4)).T                                  # [out=7, in=10]
    # 2x4 tiles over 7 x 10: rows {0,1},{2,3},{4,5},{6}; cols {0..3},{4..7},{8,9}.
    for r0 in range(0, 7, 2):
        for c0 in range(0, 10, 4):
            tile = stored[r0:r0 + 2, c0:c0 + 4]
            assert tile.min() == tile.max(), (r0, c0)
    assert abs(int((stored == 0).sum()) - 35) <= 8


def test_block_pruning_schedule_reaches_target():
    import keras

    model = _model()
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.75, block=(1, 4)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=48)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss="sparse_categorical_crossentropy", run_eagerly=True)
    callback = pruner.callback(PolynomialDecay(0.0, 0.75, begin_step=0, end_step=4, frequency=2))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    stripped = pruner.strip()
    zeros = kernel_sparsity(stripped)
    by_name = {layer.name: layer for layer in stripped.layers}
    for name in pruner.targets:
        z, n = zeros[name]
        assert z / n == pytest.approx(0.75, abs=max(4 / n, 0.01)), name
    assert _runs_are_blocks(_tflite_layout(by_name["pw"].get_weights()[0], "conv"), 4)
    assert _runs_are_blocks(_tflite_layout(by_name["fc"].get_weights()[0], "dense"), 4)
    assert _runs_are_blocks(_tflite_layout(by_name["dw"].get_weights()[0], "depthwise"), 4)


def test_block_runs_survive_int8_conversion():
    """The converter really stores the blocks contiguously (the point of choosing that axis)."""
    import keras
    from keras import layers as L

    from converters.calibration import representative_dataset
    from converters.keras_tflite import convert_keras
    from converters.recipes import Recipe
    from edgecnn.runtime.model import TFLiteModel

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 1))
    x = L.Conv2D(16, 3, padding="same", name="stem")(inp)
    x = L.Conv2D(32, 3, padding="same", name="conv")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(4, name="out")(x))
    MagnitudePruner(model, MagnitudeOptions(sparsity=0.5, block=(1, 8))).prune_now()
    pruned = _tflite_layout(model.get_layer("conv").get_weights()[0], "conv") == 0
    assert _runs_are_blocks(pruned, 8) and pruned.mean() == pytest.approx(0.5)
    calib = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype("float32")
    blob = convert_keras(model, Recipe.parse("int8"), representative_dataset(calib))
    interpreter = TFLiteModel(blob).interpreter
    kernels = [d for d in interpreter.get_tensor_details()
               if d["dtype"] == np.int8 and tuple(d["shape"]) == (32, 3, 3, 16)]
    assert len(kernels) == 1
    stored = interpreter.get_tensor(kernels[0]["index"])
    # The pruned blocks are exactly the all-zero runs of 8 in the stored int8 buffer (a kept
    # block may still hold a weight that rounds to 0, so compare runs, not single zeros).
    zero_runs = (stored.reshape(-1, 8) == 0).all(axis=1)
    np.testing.assert_array_equal(zero_runs, pruned.reshape(-1, 8).all(axis=1))


def test_bad_block_options():
    from edgecnn.prune.magnitude import parse_block

    assert parse_block("1x4") == (1, 4) and parse_block("4") == (1, 4)
    assert parse_block("2X2") == (2, 2)
    for bad in ("0", "1x0", "x4", "four", "1x4x2", "-4", ""):
        with pytest.raises(UsageError, match="--block"):
            parse_block(bad)
    with pytest.raises(UsageError, match="block"):
        MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.5, block=(0, 4)))


def test_model_scope_zeroes_the_fraction_of_all_kernel_weights():
    model = _model()
    pruner = MagnitudePruner(model, MagnitudeOptions(sparsity=0.5, scope="model",
                                                     per_layer={"fc": 0.4}))
    layer_scope = MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.5, per_layer={"fc": 0.4}))
    assert pruner.targets["fc"] == 0.4                    # an explicit target is kept
    assert pruner.targets["pw"] == pruner.targets["dw"] > 0.5 == layer_scope.targets["pw"]
    pruner.prune_now()
    zeros = kernel_sparsity(model)
    z = sum(v[0] for v in zeros.values())
    n = sum(v[1] for v in zeros.values())
    assert z / n == pytest.approx(0.5, abs=0.01)        # stem and classifier included
    assert zeros["stem"][0] == 0 and zeros["classifier"][0] == 0
    with pytest.raises(UsageError, match="not reachable"):
        MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.9, scope="model",
                                                   skip=("sep", "fc")))
    with pytest.raises(UsageError, match="scope"):
        MagnitudePruner(_model(), MagnitudeOptions(sparsity=0.5, scope="global"))
