"""The training engines (``edgecnn.train.engine``): the weight average, the recipe rules, and a
short detector run whose model ends holding the weights the engine says it kept."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_weight_average_blends_with_a_warming_decay_and_swaps_back():
    from edgecnn.lazy import tensorflow
    from edgecnn.train.engine.ema import EmaOptions, WeightAverage

    tf = tensorflow()
    live = tf.Variable([0.0, 10.0])
    average = WeightAverage([live], EmaOptions(decay=0.9, tau=2.0))
    live.assign([1.0, 20.0])
    average.update(tf.constant(1.0))
    decay = 0.9 * (1 - math.exp(-1 / 2))
    expected = decay * np.array([0.0, 10.0]) + (1 - decay) * np.array([1.0, 20.0])
    np.testing.assert_allclose(average.pairs[0][0].numpy(), expected, rtol=1e-6)
    average.swap()
    np.testing.assert_allclose(live.numpy(), expected, rtol=1e-6)
    average.swap()
    np.testing.assert_allclose(live.numpy(), [1.0, 20.0])


@pytest.mark.parametrize("decay, tau", [(1.0, 300.0), (0.0, 300.0), (0.9, 0.0)])
def test_ema_options_are_checked(decay, tau):
    from edgecnn.errors import UsageError
    from edgecnn.train.engine.ema import EmaOptions

    with pytest.raises(UsageError):
        EmaOptions(decay=decay, tau=tau)


def test_averaged_variables_cover_training_weights_and_live_bn_statistics():
    from edgecnn.lazy import keras
    from edgecnn.train.engine.ema import averaged_variables

    k = keras()
    inp = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, use_bias=False, name="conv")(inp)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.BatchNormalization(name="frozen")(x)
    model = k.Model(inp, x)
    model.get_layer("frozen").trainable = False
    names = sorted(v.path for v in averaged_variables(model))
    assert names == sorted(["conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean",
                            "bn/moving_variance"])


def test_recipe_rules():
    from edgecnn.train.common import warmup_steps
    from edgecnn.train.engine.detector import DetectorRecipe

    scratch = DetectorRecipe(epochs=20, batch=8, lr=1e-2, static_epochs=3, eval_every=2)
    assert scratch.static_steps(10) == 30.0                  # 3 epochs of 10 steps
    assert DetectorRecipe(epochs=4, batch=8, lr=1e-2, static_epochs=3).static_steps(10) == 10.0
    assert DetectorRecipe(epochs=4, batch=8, lr=1e-2).static_steps(10) == 0.0
    assert [e for e in range(1, 21) if scratch.evaluates(e)] == [2, 4, 6, 8, 10, 12, 14, 16,
                                                                 17, 18, 19, 20]
    assert warmup_steps(3, 10, 20) == 20                      # capped at a tenth of the run
    assert warmup_steps(1, 10, 20) == 10
    assert warmup_steps(3, 10, 2) == 0 and warmup_steps(0, 10, 20) == 0


@pytest.fixture(scope="module")
def tiny_detection(tmp_path_factory):
    from edgecnn.data.synth import make_synthetic_dataset
    from edgecnn.models.detect import detector_strides
    from edgecnn.train.engine.detector_data import decode, read_detection_samples

    spec = make_synthetic_dataset(tmp_path_factory.mktemp("engine") / "ds", n_train=16,
                                  n_val=8, imgsz=64, seed=3)
    samples = read_detection_samples(str(spec), 0.1, 0)
    return decode(samples, 64, detector_strides("det_test"))


def test_detector_engine_keeps_the_best_average_and_runs_callbacks(tiny_detection):
    from edgecnn.lazy import keras
    from edgecnn.models.registry import create_model
    from edgecnn.train.engine.detector import DetectorEngine, DetectorRecipe
    from edgecnn.train.engine.detector_data import detection_map
    from edgecnn.train.engine.ema import EmaOptions

    keras().utils.set_random_seed(0)
    model = create_model("det_test", (64, 64, 3), len(tiny_detection.names), task="detect")
    before = [w.copy() for w in model.get_weights()]

    class Counter:
        def __init__(self):
            self.begun, self.steps = 0, []

        def on_train_begin(self):
            self.begun += 1

        def on_train_batch_end(self, step):
            self.steps.append(step)

    counter = Counter()
    recipe = DetectorRecipe(epochs=3, batch=8, lr=1e-2, optimizer="adam",
                            ema=EmaOptions(0.9, 2.0), static_epochs=1, keep_best=True)
    engine = DetectorEngine(model, tiny_detection, recipe, callbacks=[counter])
    lines = []
    fit = engine.fit(lines.append)
    assert engine.steps == 2 and counter.begun == 1 and counter.steps == [0, 1] * 3
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ")
    assert set(fit.history) >= {"loss", "box_loss", "cls_loss", "l1_loss", "val_map50",
                                "val_map", "samples_per_second", "cpu_cores"}
    assert min(fit.history["samples_per_second"]) > 0 and fit.usage.samples == 3 * 2 * 8
    assert set(fit.metrics()) == {"samples_per_second", "cpu_cores", "input_wait_fraction"}
    assert all(len(v) == 3 for v in fit.history.values())
    assert np.isfinite(fit.history["loss"]).all()
    assert 1 <= fit.best_epoch <= 3
    assert fit.best_map50 == max(fit.history["val_map50"])
    assert (fit.kept_epoch, fit.kept_map50) == (fit.best_epoch, fit.best_map50)
    # the model now holds the averaged weights of the best epoch: they score what was recorded
    assert detection_map(model, tiny_detection)["map50"] == pytest.approx(fit.best_map50)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_detector_engine_can_keep_the_last_epoch(tiny_detection):
    from edgecnn.lazy import keras
    from edgecnn.models.registry import create_model
    from edgecnn.train.engine.detector import DetectorEngine, DetectorRecipe
    from edgecnn.train.engine.detector_data import detection_map
    from edgecnn.train.engine.ema import EmaOptions

    keras().utils.set_random_seed(1)
    model = create_model("det_test", (64, 64, 3), len(tiny_detection.names), task="detect")
    recipe = DetectorRecipe(epochs=2, batch=8, lr=1e-2, optimizer="adam",
                            ema=EmaOptions(0.9, 2.0), keep_best=False)
    fit = DetectorEngine(model, tiny_detection, recipe).fit()
    assert fit.kept_epoch == 2 and fit.kept_map50 == fit.history["val_map50"][-1]
    assert detection_map(model, tiny_detection)["map50"] == pytest.approx(fit.kept_map50)


def test_usage_is_cpu_time_over_wall_time():
    from edgecnn.train.engine.usage import Usage, UsageClock

    u = Usage(2.0, 3.0, 10) + Usage(2.0, 1.0, 30)
    assert (u.samples_per_second, u.cores) == (10.0, 1.0)
    assert u.metrics() == {"samples_per_second": 10.0, "cpu_cores": 1.0}
    assert "10.0 samples/s, 1.00 cores" == u.summary()
    clock = UsageClock()
    total = 0
    for i in range(3_000_000):      # one busy thread: about one core
        total += i
    busy = clock.lap(5)
    # one thread cannot use more than one core (a shared machine may give it much less)
    assert busy.samples == 5 and busy.cpu_seconds > 0 and 0 < busy.cores < 1.2


def _bn_model(k):
    inp = k.Input((12, 12, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = k.layers.BatchNormalization(momentum=0.9, epsilon=1e-3, name="bn")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.BatchNormalization(momentum=0.8, center=False, name="bn_nocenter")(x)
    return k.Model(inp, x)


def test_fused_batch_norm_trains_like_keras_batch_norm():
    from edgecnn.lazy import keras, tensorflow
    from edgecnn.train.engine.fused_bn import fused_batch_norm

    tf, k = tensorflow(), keras()
    k.utils.set_random_seed(1)
    model = _bn_model(k)
    start = model.get_weights()
    x = tf.random.normal((4, 12, 12, 3), seed=2) * 3.0 + 1.0

    def step(fused):
        with tf.GradientTape() as tape:
            with fused_batch_norm(fused):
                y = model(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        return y, tape.gradient(loss, model.trainable_variables)

    results = {}
    for fused in (False, True):
        model.set_weights(start)
        y, grads = tf.function(lambda: step(fused), autograph=False)()
        results[fused] = (y.numpy(), [g.numpy() for g in grads],
                          [v.numpy() for v in model.non_trainable_variables])
    (y0, g0, s0), (y1, g1, s1) = results[False], results[True]
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    scale = max(float(np.abs(g).max()) for g in g0)
    for a, b in zip(g1, g0):    # the conv bias feeds BN: its gradient is rounding noise either way
        np.testing.assert_allclose(a, b, atol=1e-5 * scale)
    for a, b in zip(s1, s0):    # moving statistics move alike (and away from their start)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(s1[0], 0.0)
    assert k.layers.BatchNormalization.call.__qualname__ == "BatchNormalization.call"


def test_fused_batch_norm_leaves_inference_and_frozen_layers_to_keras():
    from edgecnn.lazy import keras, tensorflow
    from edgecnn.train.engine.fused_bn import fused_batch_norm

    tf, k = tensorflow(), keras()
    model = _bn_model(k)
    model.get_layer("bn").trainable = False
    x = tf.random.normal((2, 12, 12, 3), seed=3)
    reference = model(x, training=False).numpy()
    before = {v.path: v.numpy() for v in model.non_trainable_variables}
    with fused_batch_norm():
        inference = model(x, training=False).numpy()
        model(x, training=True)
    np.testing.assert_array_equal(inference, reference)
    after = {v.path: v.numpy() for v in model.non_trainable_variables}
    # the frozen layer's statistics did not move; the trainable one's did
    np.testing.assert_array_equal(after["bn/moving_mean"], before["bn/moving_mean"])
    assert not np.array_equal(after["bn_nocenter/moving_mean"],
                              before["bn_nocenter/moving_mean"])


def test_detector_engine_trains_an_integral_box_head(tiny_detection):
    from edgecnn.lazy import keras
    from edgecnn.models.registry import create_model
    from edgecnn.train.engine.detector import DetectorEngine, DetectorRecipe

    keras().utils.set_random_seed(2)
    model = create_model("det_test", (64, 64, 3), len(tiny_detection.names), task="detect",
                         integral_boxes=True)
    engine = DetectorEngine(model, tiny_detection,
                            DetectorRecipe(epochs=2, batch=8, lr=1e-2, optimizer="adam"))
    assert len(engine.heads.outputs) == 3          # ltrb, logits and the bin logits
    fit = engine.fit()
    assert np.isfinite(fit.history["loss"]).all()
    assert fit.history["loss"][1] < fit.history["loss"][0]
