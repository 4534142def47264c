"""The decoder registry: DecoderSpec keeps the old JSON, decoders check their fields and their
outputs, unknown types fail with the known ones named, a new layout plugs in as one class, and
the Kotlin core registers the same layouts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from conftest import assert_one_line_error

from edgecnn.errors import UsageError
from edgecnn.export.android import APP_DECODERS
from edgecnn.runtime import DecoderSpec, Detector, TFLiteModel, decoders, load
from edgecnn.runtime import metadata as md
from edgecnn.runtime import postprocess as pp
from edgecnn.runtime.decoders.base import Decoder, DecoderParams
from edgecnn.runtime.summary import describe_model

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "golden" / "tiny_detect.tflite"
TINY_DOC = json.loads((ROOT / "tests" / "golden" / "tiny_detect.json").read_text())["metadata"]


def _with_decoder(tmp_path: Path, section: dict, name: str = "m.tflite") -> Path:
    """The tiny detector with its metadata's decoder section replaced (written as JSON)."""
    data = TINY.read_bytes()
    flat, _ = md.split_bundle(data)
    doc = {**TINY_DOC, "decoder": section}
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(md.JSON_NAME, json.dumps(doc))
        zf.writestr(md.LABELS_NAME, "\n".join(doc["labels"]) + "\n")
    path = tmp_path / name
    path.write_bytes(flat + buf.getvalue())
    return path


def test_anchor_free_json_reads_and_writes_unchanged():
    section = TINY_DOC["decoder"]
    spec = DecoderSpec.from_dict(section)
    assert spec.to_dict() == section and list(spec.to_dict()) == list(section)
    assert spec.strides == (8, 16, 32) and spec.outputs == {"box": 1, "score": 0}
    # Defaults are filled in, so a section written by an older edgecnn compares equal.
    assert DecoderSpec.from_dict({"type": "anchor_free_ltrb"}) == DecoderSpec()
    assert DecoderSpec(strides=(8, 16)).replace(score_threshold=0.5).to_dict() == {
        "type": "anchor_free_ltrb", "strides": [8, 16], "box_output": 0, "score_output": 1,
        "score_threshold": 0.5, "iou_threshold": 0.45, "max_detections": 100}
    assert md.read(TINY.read_bytes()).decoder == spec


@pytest.mark.parametrize("change,needle", [
    ({"strides": "8"}, "'decoder.strides' must be a list of 1..8 integers"),
    ({"strides": [16, 8]}, "ascending"),
    ({"strides": [8, 16.5]}, "'decoder.strides[1]' must be an integer in 1..1024"),
    ({"box_output": 0, "score_output": 0}, "'decoder.box_output' and 'decoder.score_output' "
                                           "must differ"),
    ({"box_output": 99}, "'decoder.box_output' must be an integer in 0..15"),
    ({"anchors": 3}, "unknown field(s) 'anchors' (its fields are: strides, box_output, "
                     "score_output)"),
    ({"score_threshold": 1.5}, "'decoder.score_threshold' must be a finite number 0.0..1.0"),
    ({"max_detections": 0}, "'decoder.max_detections' must be an integer in 1..100000"),
    ({"type": "Anchor Free"}, "must be a lower-case identifier"),
])
def test_decoder_fields_are_checked_when_metadata_is_read(change, needle):
    with pytest.raises(UsageError) as err:
        DecoderSpec.from_dict({**TINY_DOC["decoder"], **change})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_decoder_type_is_kept_and_refused_with_the_known_ones(tmp_path, run_cli):
    section = {"type": "yolo_v8", "output": 0, "layout": "channels_first",
               "score_threshold": 0.3, "iou_threshold": 0.5, "max_detections": 50}
    path = _with_decoder(tmp_path, section)
    meta = md.read(path.read_bytes())
    assert meta.decoder.to_dict() == section          # kept as written, for inspect
    assert "decoder: yolo_v8 layout channels_first, output = output 0, score >= 0.3" in \
        describe_model(path).text()
    with pytest.raises(UsageError, match=r"unknown decoder type 'yolo_v8' \(this edgecnn "
                                         r"decodes: anchor_free_ltrb, ssd_postprocess, "
                                         r"ultralytics_end2end, ultralytics_yolo\)"):
        Detector(path)
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    assert_one_line_error(run_cli("predict", path, image), "unknown decoder type 'yolo_v8'",
                          "anchor_free_ltrb")


def test_outputs_that_do_not_fit_name_the_expected_shapes(tmp_path):
    path = _with_decoder(tmp_path, {**TINY_DOC["decoder"], "strides": [8, 16]})
    with pytest.raises(UsageError) as err:
        load(path)
    assert ("boxes output (decoder.box_output = 1) has shape [1, 84, 4], expected [1, 80, 4] "
            "for input 64x64, strides [8, 16] and 3 labels") in str(err.value)
    path = _with_decoder(tmp_path, {**TINY_DOC["decoder"], "box_output": 5}, "five.tflite")
    with pytest.raises(UsageError, match="decoder.box_output = 5 but the model has 2 outputs"):
        load(path)


# ------------------------------------------------------------ a new layout, one class
@dataclass(frozen=True)
class _TopParams(DecoderParams):
    score_output: int = 0
    size: float = 16.0


class _TopAnchor(Decoder):
    """Toy layout: the single best-scoring anchor as a ``size`` square at the input's origin."""

    type = "test_top_anchor"
    Params = _TopParams

    def check(self, outputs, input_hw, labels) -> None:
        shape = tuple(outputs[0].shape)
        if len(shape) != 3 or shape[0] != 1 or shape[2] != len(labels):
            raise UsageError(f"scores output has shape {list(shape)}, expected "
                             f"[1, N, {len(labels)}]")

    def decode(self, raw: Sequence[np.ndarray]) -> pp.RawDetections:
        scores = pp.dequantize(raw[0].reshape(-1, len(self.labels)), self.quant[0])
        anchor, cls = np.unravel_index(int(scores.argmax()), scores.shape)
        best = np.float32(scores[anchor, cls])
        keep = slice(0, 1 if best >= self.score_threshold else 0)
        return pp.RawDetections(np.array([[0, 0, self.params.size, self.params.size]],
                                         np.float32)[keep], np.array([best])[keep],
                                np.array([cls], np.int32)[keep], np.array([anchor])[keep])


@pytest.fixture
def top_anchor(monkeypatch):
    monkeypatch.setattr(decoders, "_REGISTRY", dict(decoders._REGISTRY))
    decoders.register_decoder(_TopAnchor)
    return _TopAnchor


def test_a_new_layout_is_one_registered_class(top_anchor, tmp_path):
    assert decoders.known_decoders() == ("anchor_free_ltrb", "ssd_postprocess",
                                         "test_top_anchor", "ultralytics_end2end",
                                         "ultralytics_yolo")
    path = _with_decoder(tmp_path, {"type": "test_top_anchor", "size": 32,
                                    "score_threshold": 0.0, "max_detections": 1})
    runner = load(path)
    assert isinstance(runner, Detector) and isinstance(runner.decoder, _TopAnchor)
    image = np.zeros((128, 256, 3), np.uint8)        # letterbox: scale 0.25, pad_y 16
    [det] = runner(image)
    # The toy box [0, 0, 32, 32] in model pixels, mapped back through the letterbox.
    assert [det.box.left, det.box.top, det.box.right, det.box.bottom] == [0, 0, 128, 64]
    tensor, _ = runner.preprocess(image)
    scores = pp.dequantize(runner.model.run(tensor, quantized=True, dequantize=False)[0],
                           runner.decoder.quant[0])
    assert det.category.score == pytest.approx(float(scores.max()))
    with pytest.raises(UsageError, match="'decoder.size' must be a finite number"):
        DecoderSpec(type="test_top_anchor", size="big")
    with pytest.raises(UsageError, match=r"expected \[1, N, 3\]"):
        load(_with_decoder(tmp_path, {"type": "test_top_anchor", "score_output": 1}, "b.tflite"))


def test_kotlin_core_registers_the_same_layouts():
    """android_demo/core's Decoders.FACTORIES, export android and the Python registry agree."""
    core = ROOT / "android_demo" / "core" / "src" / "main" / "kotlin" / "org" / "edgecnn" / "core"
    sources = {p.name: p.read_text() for p in core.glob("*.kt")}
    listed = re.search(r"FACTORIES: List<DecoderFactory> = listOf\(([^)]*)\)",
                       sources["Decoders.kt"]).group(1)
    types = set()
    for name in (n.strip() for n in listed.split(",")):
        text = next(t for t in sources.values() if f"object {name} : DecoderFactory" in t)
        body = text[text.index(f"object {name} : DecoderFactory"):]
        types.add(re.search(r'override val type: String = "(\w+)"', body).group(1))
    assert types == set(APP_DECODERS) <= set(decoders.known_decoders())
    # Every built-in layout is decoded on the phone too (golden vectors for each).
    assert set(decoders.BUILTIN) == types


def test_model_file_still_loads_through_tflitemodel():
    # The tiny fixture: the anchor-free decoder at the positions its metadata names.
    det = Detector(TFLiteModel(TINY))
    assert det.decoder.positions == (1, 0)
    assert [q.scale > 0 for q in det.decoder.quant] == [True, True]
