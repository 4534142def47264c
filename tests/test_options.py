"""Typed options of train, prune and qat are validated in the library: a library caller gets the
CLI's one-line errors, and an option that does not apply to the task or method is an error
instead of being ignored."""

from __future__ import annotations

import pytest

import model_factory as mf
from conftest import assert_one_line_error
from edgecnn.errors import UsageError


def _train(**kw):
    from edgecnn.train.config import TrainConfig

    base = dict(task="classify", data="digits", arch="dsnet_test", out="unused")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("kw, needle", [
    (dict(task="detect", distribute="mirrored"), "--distribute applies to --task classify"),
    (dict(task="detect", label_smoothing=0.1), "--label-smoothing applies to --task classify"),
    (dict(task="detect", data_dir="somewhere"), "--data-dir applies to --task classify"),
    (dict(weight_decay=1e-4), "--optimizer adamw"),
    (dict(epochs=0), "epochs"),
    (dict(batch=0), "batch"),
    (dict(lr=-1.0), "learning rate"),
    (dict(optimizer="lion"), "optimizer"),
    (dict(schedule="step"), "schedule"),
    (dict(distribute="ring"), "distribute"),
    (dict(label_smoothing=1.5), "--label-smoothing"),
    (dict(task="segment"), "unknown task"),
    (dict(threads=0), "--threads"),
    (dict(distill_weight=0.5), "--distill-weight needs --teacher"),
    (dict(teacher="t", distill_weight=1.5), "in [0, 1]"),
    (dict(teacher="t", distill_temperature=0.0), "--distill-temperature must be > 0"),
    (dict(task="detect", teacher="t", distill_temperature=2.0),
     "--distill-temperature applies to --task classify"),
    (dict(keep="middle"), "--keep"),
    (dict(mosaic=0.5), "--mosaic applies to --task detect"),
    (dict(integral_boxes=True), "--integral-boxes/--dense-boxes applies to --task detect"),
    (dict(integral_boxes=False), "--integral-boxes/--dense-boxes applies to --task detect"),
    (dict(task="detect", mixup=-0.1), "--mixup is a probability"),
    (dict(task="detect", mosaic=2.0), "--mosaic is a probability"),
    (dict(task="detect", mosaic=0.5, augment=False), "drop --no-augment"),
])
def test_train_config_refuses_what_cannot_apply(kw, needle):
    with pytest.raises(UsageError) as err:
        _train(**kw)
    assert needle in str(err.value)


def test_train_config_normalizes_task_and_strategy():
    from edgecnn.runtime.task import Task

    config = _train(task="detect", distribute="none", optimizer="adamw", weight_decay=5e-4)
    assert config.task is Task.DETECT and config.distribute is None
    assert _train(distribute="multiworker").distribute == "multi-worker"


def test_cli_detect_with_a_classify_option_is_a_usage_error(run_cli, tmp_path):
    for extra in (["--distribute", "mirrored"], ["--label-smoothing", "0.1"]):
        result = run_cli("train", "--task", "detect", "--data", tmp_path / "none.yaml",
                         "--arch", "det_test", *extra, "--out", tmp_path / "r")
        assert_one_line_error(result, extra[0], "classify")
    assert not (tmp_path / "r").exists()


def _prune(**kw):
    from edgecnn.prune.options import PruneOptions

    return PruneOptions(**kw)


@pytest.mark.parametrize("kw, needle", [
    (dict(method="channel", target_macs=0.5, block=(1, 4)), "--block applies to --method "
                                                            "magnitude"),
    (dict(method="channel", target_macs=0.5, scope="model"), "--scope applies"),
    (dict(method="channel", target_macs=0.5, skip_depthwise=True), "--skip-depthwise applies"),
    (dict(method="magnitude", sparsity=0.5, criterion="bn"), "--criterion applies to --method "
                                                             "channel"),
    (dict(method="magnitude", sparsity=0.5, channel_multiple=16), "--channel-multiple applies"),
    (dict(method="magnitude", sparsity=0.5, block="1x0"), "--block '1x0'"),
    (dict(method="magnitude"), "needs --sparsity"),
    (dict(method="channel", sparsity=0.3, target_macs=0.5), "exactly one"),
    (dict(method="channel", target_macs=0.5, target_latency=0.5), "needs --objective latency"),
    (dict(method="magnitude", sparsity=0.5, objective="latency"), "channel only"),
    (dict(method="channel", sparsity=0.3, channel_multiple=0), "--channel-multiple"),
    (dict(method="magnitude", sparsity=0.5, epochs=-1), "--epochs"),
    (dict(method="spectral", sparsity=0.5), "unknown pruning method"),
])
def test_prune_options_refuse_what_cannot_apply(kw, needle):
    with pytest.raises(UsageError) as err:
        _prune(**kw)
    assert needle in str(err.value)


def test_prune_latency_options_need_the_latency_objective():
    from edgecnn.prune.latency import LatencyOptions

    with pytest.raises(UsageError, match="--objective latency"):
        _prune(method="channel", target_macs=0.5, latency=LatencyOptions(min_keep=0.25))
    options = _prune(method="channel", objective="latency", target_macs=0.5)
    assert options.latency == LatencyOptions()          # defaults filled in
    with pytest.raises(UsageError, match="--min-keep"):
        _prune(method="channel", objective="latency", target_macs=0.5,
               latency=LatencyOptions(min_keep=0.0))


def test_prune_options_defaults():
    options = _prune(method="magnitude", sparsity=0.5, block="4")
    assert options.block == (1, 4) and options.block_size == (1, 4)
    assert options.finetune_lr == 5e-4
    assert _prune(method="channel", target_macs=0.5).finetune_lr == 1e-3
    assert _prune(method="magnitude", sparsity=0.5).block_size == (1, 1)


def test_cli_prune_min_keep_without_the_latency_objective(run_cli, tmp_path):
    result = run_cli("prune", tmp_path / "run", "--method", "channel", "--target-macs", "0.5",
                     "--min-keep", "0.3", "--out", tmp_path / "o")
    assert_one_line_error(result, "--objective latency")
    assert not (tmp_path / "o").exists()


def test_qat_options_fill_task_defaults_and_refuse_detector_options_for_classifiers():
    from edgecnn.qat.options import QatOptions
    from edgecnn.runtime.task import Task

    detect = QatOptions().for_task(Task.DETECT)
    assert (detect.lr, detect.ema_decay, detect.keep_best) == (2e-3, 0.999, True)
    classify = QatOptions().for_task(Task.CLASSIFY)
    assert (classify.lr, classify.ema_decay, classify.keep_best) == (1e-4, 0.0, False)
    for kw, flag in ((dict(ema_decay=0.99), "--ema"), (dict(keep_best=False), "--keep-last")):
        with pytest.raises(UsageError, match=flag):
            QatOptions(**kw).for_task(Task.CLASSIFY)
    with pytest.raises(UsageError, match="--ema"):
        QatOptions(ema_decay=1.0)


def test_cli_qat_ema_on_a_classifier(run_cli, tmp_path):
    result = run_cli("qat", mf.digits_run(), "--ema", "0.99", "--out", tmp_path / "o")
    assert_one_line_error(result, "--ema", "detectors")
    assert not (tmp_path / "o").exists()
