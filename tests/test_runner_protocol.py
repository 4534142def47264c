"""The runner protocol: both built-in runners from a path or a TFLiteModel, ``load`` picks by
task, and the camera loop, bench and predict work with a runner that is neither Classifier nor
Detector (so none of them reaches into a runner's private fields)."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from camera_models import model_path
from conftest import assert_one_line_error

from edgecnn.bench.latency import BenchOptions, benchmark
from edgecnn.camera.loop import STAGES, LoopOptions, run
from edgecnn.camera.sources import MemorySource
from edgecnn.errors import UsageError
from edgecnn.predict import predict_images
from edgecnn.runtime import (Category, Classifier, Detection, Detector, Letterbox, Runner, Task,
                             TFLiteModel, load, register_runner)

GOLDEN = Path(__file__).resolve().parent / "golden"
TINY_DETECTOR = GOLDEN / "tiny_detect.tflite"


@pytest.fixture
def classifier_file(request) -> Path:
    return model_path(request.config, "brightness_classifier.tflite")


def _scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 80, (240, 320, 3), dtype=np.uint8)
    cv2.rectangle(image, (100, 60), (220, 180), (255, 255, 255), -1)
    return image


@pytest.mark.parametrize("kind", ["classify", "detect"])
def test_built_in_runners_follow_the_protocol_from_a_path_or_a_model(kind, classifier_file):
    cls, path, record = ((Classifier, classifier_file, Category) if kind == "classify"
                         else (Detector, TINY_DETECTOR, Detection))
    from_path = cls(str(path))                    # a plain string path works (issue 11)
    from_model = cls(TFLiteModel(path))
    image = _scene()
    for runner in (from_path, from_model):
        assert isinstance(runner, Runner) and runner.task == Task(kind)
        tensor, context = runner.preprocess(image, "BGR")
        assert tensor.shape == runner.model.input.shape and tensor.dtype == runner.model.input.dtype
        assert isinstance(context, Letterbox) and context.src_width == 320
        results = runner.postprocess(runner.infer(tensor), context)
        assert results and all(isinstance(r, record) for r in results)
        assert results == runner(image) == runner(image, "BGR")
        json.dumps([r.to_dict() for r in results])
    assert from_path(image) == from_model(image)


def test_load_picks_the_runner_by_task_and_refuses_options_of_another_task(classifier_file):
    assert type(load(classifier_file, threads=1)) is Classifier
    assert type(load(TFLiteModel(TINY_DETECTOR))) is Detector
    assert type(load(TINY_DETECTOR.read_bytes(), threads=1)) is Detector
    assert load(classifier_file, top_k=1)(_scene())[0].label == "dark"
    with pytest.raises(UsageError, match=r"option top_k \(--top-k\) does not apply to detect"):
        load(TINY_DETECTOR, top_k=3)
    with pytest.raises(UsageError, match="iou_threshold .* does not apply to classify"):
        load(classifier_file, iou_threshold=0.5)
    with pytest.raises(UsageError, match="not 'classify'"):
        Classifier(TINY_DETECTOR)


def test_a_folder_says_how_to_get_a_tflite(run_cli, tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), _scene())
    run_dir = tmp_path / "runs" / "digits"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    res = run_cli("predict", run_dir, image)
    assert_one_line_error(res, "is a training run, not a .tflite model",
                          f"edgecnn convert {run_dir} --quant int8")
    (run_dir / "digits_int8.tflite").write_bytes(TINY_DETECTOR.read_bytes())
    assert_one_line_error(run_cli("predict", run_dir, image), "digits_int8.tflite")


# ------------------------------------------------- a runner that is not Classifier/Detector
CALLS: collections.Counter = collections.Counter()


@dataclass(frozen=True)
class _MeanOptions:
    threads: int | None = None
    margin: float = 0.0


class _MeanRunner:
    """Runs the brightness classifier with its own pre- and post-processing.

    ``__slots__`` holds only the protocol's attributes: a caller that reaches for anything
    else (``decoder``, ``preprocessor``, ``classify``...) gets an AttributeError.
    """

    __slots__ = ("labels", "metadata", "model", "options", "result_key", "task")
    Options = _MeanOptions

    def __init__(self, model: TFLiteModel, options: _MeanOptions | None = None, metadata=None):
        self.task, self.result_key = Task.CLASSIFY, "categories"
        self.model, self.options = model, options or _MeanOptions()
        self.metadata = metadata or model.require_metadata()
        self.labels = tuple(self.metadata.labels)

    def preprocess(self, image, color="BGR"):
        CALLS["preprocess"] += 1
        _, h, w, _ = self.model.input.shape
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        x = cv2.resize(image, (w, h)).astype(np.float32)[None] / 255.0
        return self.model.quantize_input(x), image.shape[:2]

    def infer(self, tensor):
        CALLS["infer"] += 1
        self.model.set_input(tensor)
        self.model.invoke()
        return self.model.get_output(0)

    def postprocess(self, raw, context):
        CALLS["postprocess"] += 1
        probs = raw.reshape(-1)
        best = int(probs.argmax())
        return [Category(best, self.labels[best], float(probs[best]))]

    def __call__(self, image, color="BGR"):
        tensor, context = self.preprocess(image, color)
        return self.postprocess(self.infer(tensor), context)


@pytest.fixture
def mean_runner():
    register_runner(Task.CLASSIFY, replace=True)(_MeanRunner)
    CALLS.clear()
    try:
        yield _MeanRunner
    finally:
        register_runner(Task.CLASSIFY, replace=True)(Classifier)


def _dark_bright():
    return np.full((120, 160, 3), 20, np.uint8), np.full((120, 160, 3), 235, np.uint8)


def test_load_builds_the_registered_runner(mean_runner, classifier_file):
    runner = load(classifier_file, threads=1, margin=0.1)
    assert type(runner) is _MeanRunner and runner.options.margin == 0.1
    assert isinstance(runner, Runner)
    dark, bright = _dark_bright()
    assert [runner(im)[0].label for im in (dark, bright)] == ["dark", "bright"]
    with pytest.raises(UsageError, match="does not apply to classify"):
        load(classifier_file, top_k=2)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "sequential"])
def test_camera_loop_uses_only_the_protocol(mean_runner, classifier_file, tmp_path, pipeline):
    dark, bright = _dark_bright()
    log = tmp_path / "loop.jsonl"
    summary = run(load(classifier_file, threads=1), MemorySource([dark, bright], count=8),
                  LoopOptions(json=str(log), pipeline=pipeline, handle_signals=False))
    assert summary.frames == 8 and summary.errors == 0, summary.error_messages
    assert CALLS == {"preprocess": 8, "infer": 8, "postprocess": 8}
    records = [json.loads(line) for line in log.read_text().splitlines()]
    frames = [r for r in records if "frame" in r]
    assert [r["categories"][0]["label"] for r in frames] == ["dark", "bright"] * 4
    assert set(frames[0]["timings_ms"]) >= {"preprocess", "inference", "postprocess", "draw"}
    assert set(summary.stages_ms) >= set(STAGES)   # each stage still timed on its own
    assert summary.model == str(classifier_file) and summary.threads == 1


def test_bench_e2e_uses_only_the_protocol(mean_runner, classifier_file):
    [r] = benchmark([classifier_file], BenchOptions(runs=6, warmup=2, block=3, e2e=True))
    assert r.runs == 6 and r.e2e_p50_ms > 0 and r.pre_p50_ms > 0 and r.post_p50_ms > 0
    # warm-up (1 invoke-only + 1 e2e) and 6 timed runs went through the registered runner
    assert CALLS["preprocess"] == CALLS["infer"] == CALLS["postprocess"] == 7


def test_predict_uses_only_the_protocol(mean_runner, classifier_file, tmp_path, run_cli):
    dark, bright = _dark_bright()
    paths = [tmp_path / "dark.png", tmp_path / "bright.png"]
    for path, image in zip(paths, (dark, bright)):
        cv2.imwrite(str(path), image)
    report = predict_images(classifier_file, paths, save_dir=tmp_path / "drawn")
    assert report.task == Task.CLASSIFY and report.result_key == "categories"
    assert [r.results[0].label for r in report.results] == ["dark", "bright"]
    # the folder also holds the hidden manifest recording what edgecnn wrote
    assert sorted(p.name for p in (tmp_path / "drawn").glob("[!.]*")) == ["bright.png", "dark.png"]
    res = run_cli("predict", classifier_file, *paths, "--json")
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert doc["task"] == "classify"
    assert [r["categories"][0]["label"] for r in doc["results"]] == ["dark", "bright"]
    assert_one_line_error(run_cli("predict", classifier_file, *paths, "--top-k", "2"),
                          "top_k (--top-k) does not apply to classify models")
