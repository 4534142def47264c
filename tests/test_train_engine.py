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
                                "val_map"}
    assert all(len(v) == 3 for v in fit.history.values())
    assert np.isfinite(fit.history["loss"]).all()
    assert 1 <= fit.best_epoch <= 3
    assert fit.best_map50 == max(fit.history["val_map50"])
    # the model now holds the averaged weights of the best epoch: they score what was recorded
    assert detection_map(model, tiny_detection)["map50"] == pytest.approx(fit.best_map50)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
