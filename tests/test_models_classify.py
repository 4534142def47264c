"""Classification architectures: the seed CNN exactly, the dsnet family's int8-friendly layers."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error
from edgecnn.errors import UsageError
from edgecnn.models import create_model, list_models

# Layers the converter folds or maps to TFLite builtins and that the channel pruner can walk.
ALLOWED = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
           "GlobalAveragePooling2D", "Flatten", "Dropout", "Dense"}


def test_registry_lists_classify_models():
    names = {e.name for e in list_models("classify")}
    assert {"seed", "dsnet_test", "dsnet_s", "dsnet_sf", "dsnet_m", "cnn_teacher"} <= names


def test_seed_is_the_article_cnn():
    model = create_model("seed", (28, 28, 1), 10, task="classify")
    layers = [(type(l).__name__, getattr(l, "filters", None) or getattr(l, "units", None))
              for l in model.layers]
    assert layers == [("InputLayer", None), ("Conv2D", 32), ("MaxPooling2D", None),
                      ("Conv2D", 64), ("MaxPooling2D", None), ("Flatten", None),
                      ("Dense", 128), ("Dense", 10)]
    assert model.count_params() == 225_034      # the article's Fashion-MNIST model
    assert model.layers[1].kernel_size == (3, 3) and model.layers[-1].activation.__name__ == \
        "softmax"


def test_seed_rejects_tiny_inputs():
    with pytest.raises(UsageError, match="at least 10x10"):
        create_model("seed", (8, 8, 1), 10)


@pytest.mark.parametrize("name", ["dsnet_test", "dsnet_s", "dsnet_sf", "dsnet_m", "cnn_teacher"])
def test_dsnet_uses_only_int8_friendly_layers(name):
    model = create_model(name, (28, 28, 1), 10, task="classify")
    kinds = {type(l).__name__ for l in model.layers}
    assert kinds <= ALLOWED, kinds - ALLOWED
    assert model.output_shape == (None, 10)
    # BN follows every convolution, so they carry no bias (it would be folded anyway)
    convs = [l for l in model.layers if type(l).__name__ in ("Conv2D", "DepthwiseConv2D")]
    assert convs and not any(c.use_bias for c in convs)


def test_width_multiplier_scales_the_model():
    small = create_model("dsnet_s", (28, 28, 1), 10, width=0.5).count_params()
    base = create_model("dsnet_s", (28, 28, 1), 10).count_params()
    wide = create_model("dsnet_s", (28, 28, 1), 10, width=1.5).count_params()
    assert small < base < wide
    assert base < 100_000          # the int8 file must stay under 100 KB


def test_cnn_teacher_keeps_full_resolution_in_its_stem():
    model = create_model("cnn_teacher", (28, 28, 1), 10)
    assert model.get_layer("stem_conv").output.shape[1:3] == (28, 28)
    student = create_model("dsnet_sf", (28, 28, 1), 10).count_params()
    assert model.count_params() > 5 * student       # a teacher, not another compact net


def test_dsnet_builds_for_small_rgb_inputs():
    model = create_model("dsnet_test", (8, 8, 3), 4)
    assert model.input_shape == (None, 8, 8, 3) and model.output_shape == (None, 4)


def test_unknown_arch_is_one_line_error(run_cli, tmp_path):
    result = run_cli("train", "--data", "digits", "--arch", "resnet9000", "--out", tmp_path / "r")
    assert_one_line_error(result, "unknown architecture", "dsnet_s", "seed")
    assert not (tmp_path / "r").exists()


def test_option_the_arch_does_not_take(run_cli, tmp_path):
    result = run_cli("train", "--data", "digits", "--arch", "seed", "--imgsz", "16",
                     "--width", "0.5", "--out", tmp_path / "r")
    assert_one_line_error(result, "width")


def test_list_archs(run_cli):
    result = run_cli("train", "--list-archs", "--task", "classify")
    assert result.exit_code == 0
    assert "dsnet_s" in result.out and "seed" in result.out
