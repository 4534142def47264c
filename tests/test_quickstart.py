"""``edgecnn quickstart --fast``: the whole classification chain on digits, end to end."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quickstart_fast_end_to_end(run_cli, tmp_path):
    out = tmp_path / "qs"
    result = run_cli("quickstart", "--fast", "--out", out)
    assert result.exit_code == 0, result.err
    steps = [ln for ln in result.out.splitlines() if ln.startswith("[")]
    assert [s.split()[1] for s in steps][:4] == ["train", "convert", "evaluate", "predict"]
    assert "report" in result.out.splitlines()[-1]

    report = (out / "report.md").read_text()
    for heading in ("## Training", "## Conversion", "## Accuracy", "## Predictions"):
        assert heading in report
    summary = json.loads((out / "quickstart.json").read_text())
    acc = summary["accuracy"]
    assert set(acc) == {"keras float", "tflite float32", "tflite int8"}
    # a float .tflite computes what Keras computes; int8 stays close; both learned something
    assert acc["tflite float32"] == pytest.approx(acc["keras float"], abs=0.01)
    assert abs(acc["tflite int8"] - acc["keras float"]) < 0.08
    assert acc["keras float"] > 0.5         # 10 classes: chance is 0.1

    from edgecnn.runtime.model import TFLiteModel

    int8 = TFLiteModel(out / "digits_int8.tflite")
    assert int8.input.dtype.name == "int8" and int8.metadata.task == "classify"
    assert list(int8.metadata.labels) == [str(i) for i in range(10)]
    assert len(list((out / "samples").glob("*.png"))) == 6
    assert (out / "run" / "model.keras").is_file() and (out / "run" / "curves.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_quickstart_steps_are_extendable():
    from edgecnn import quickstart

    names = [n for n, _ in quickstart.STEPS]
    assert names[:4] == ["train", "convert", "evaluate", "predict"]
    before = list(quickstart.STEPS)
    try:
        quickstart.register_step("extra", lambda ctx: "ok", after="convert")
        assert [n for n, _ in quickstart.STEPS].index("extra") == names.index("convert") + 1
    finally:
        quickstart.STEPS[:] = before


def test_quickstart_help(run_cli):
    result = run_cli("quickstart", "--help")
    assert result.exit_code == 0 and "--fast" in result.out
