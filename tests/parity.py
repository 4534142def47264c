"""Cross-architecture parity of the device runtime (docs/FORMAT.md, "Cross-architecture parity").

On one machine (x86_64 in CI) :func:`record` runs ``.tflite`` models through the device runtime
and writes what they computed: the input tensor of each image, the raw outputs, the labels and
boxes that ``edgecnn predict`` reports, and ``edgecnn eval`` results. On another machine (the
emulated aarch64 root of ``.ci/arm64``, or a real Raspberry Pi) :func:`check` recomputes all of
it and names every difference beyond :data:`TOLERANCES`. Neither needs TensorFlow; the models
themselves are built by ``tests/parity_models.py``.

Three layers, each compared on its own so that a difference is pinned to one stage:

1. preprocessing: this machine's input tensor vs the recorded one (``input_lsb``);
2. the interpreter: outputs for the *recorded* input tensor (``int8_lsb``; float outputs
   ``|a - b| <= float_atol + float_rtol * |a|``);
3. end to end: labels, scores and boxes for the image, allowed to differ only as much as the
   output difference measured on this machine's own input explains (zero difference: exact).
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np

SCHEMA = "edgecnn.parity/1"
TOLERANCES = {
    "input_lsb": 1,         # preprocessed input tensor, in pixel levels
    "int8_lsb": 2,          # int8 outputs for the same input tensor
    "float_atol": 1e-5,     # float32 outputs: |a - b| <= atol + rtol * |a|
    "float_rtol": 1e-4,
    "accuracy_samples": 1,  # eval: classification results may differ in this many samples
    "map_abs": 0.01,        # eval: COCO mAP@0.5 and mAP@0.5:0.95
}
# Floors of the end-to-end tolerances: float32 rounding that identical outputs can still show
# (numpy's float32 exp, used by a softmax over logits, differs in the last bits between
# x86_64 and aarch64).
SCORE_FLOOR, BOX_FLOOR_PX = 1e-6, 1e-3
REFERENCE_JSON, REFERENCE_NPZ = "reference.json", "reference.npz"
# The largest differences a check reports: input (pixel levels), int8 outputs (LSB), float
# outputs (absolute), each for the same input tensor.
WORST = ("input_levels", "int8_lsb", "float_abs")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def machine_summary() -> dict:
    """What produced the numbers: CPU architecture and the versions that decide them."""
    import cv2

    from edgecnn.runtime.interpreter import runtime_info

    return {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "opencv": cv2.__version__, **runtime_info()}


# ---------------------------------------------------------------- running the models
def _runner(model_path: Path):
    from edgecnn.runtime import load

    return load(model_path, threads=1)


def _input_tensor(runner, image: np.ndarray) -> np.ndarray:
    out = runner.preprocess(image, "BGR")
    return out[0] if isinstance(out, tuple) else out


def _raw_outputs(runner, tensor: np.ndarray) -> list[np.ndarray]:
    model = runner.model
    model.set_input(tensor)
    model.invoke()
    return [model.get_output(i, dequantize=False).copy() for i in range(len(model.outputs))]


def _task(runner) -> str:
    return str(getattr(runner.task, "value", runner.task))


def _record(result) -> dict:
    """A typed result at full precision (``to_dict`` rounds boxes and detection scores)."""
    if hasattr(result, "category"):
        b, c = result.box, result.category
        return {"index": c.index, "label": c.label, "score": c.score,
                "box": [b.left, b.top, b.right, b.bottom]}
    return {"index": result.index, "label": result.label, "score": result.score}


def _results(model_path: Path, images: list[Path], score_threshold=None) -> list[dict]:
    """Labels, scores and boxes exactly as ``edgecnn predict`` computes them (full precision),
    as ``{"categories" | "detections": [...]}`` per image."""
    from edgecnn.predict import predict_images

    report = predict_images(model_path, images, threads=1, score_threshold=score_threshold)
    if len(report.results) != len(images):
        raise RuntimeError(f"{model_path}: could not read {report.skipped}")
    return [{report.result_key: [_record(r) for r in res.results]} for res in report.results]


def _evaluate(model: Path, data: Path, split: str) -> dict:
    from edgecnn.evaluate import evaluate_model

    doc = evaluate_model(model, str(data), split=split, threads=1)
    keys = ("accuracy", "samples", "map50", "map", "images", "instances", "detections")
    return {k: doc[k] for k in keys if k in doc}


# ---------------------------------------------------------------- recording
def record(folder: Path, cases: list[dict], evals: list[dict]) -> dict:
    """Run every case here and write ``reference.json`` + ``reference.npz`` into ``folder``.

    Args:
        folder: holds the models, images and datasets; paths below are relative to it.
        cases: ``{"model": "models/x.tflite", "images": ["images/a.png", ...]}``, optionally
            with ``"score_threshold"`` (detectors: instead of the model's own).
        evals: ``{"model": "models/x.tflite", "data": "data/digits", "split": "test"}``.
    """
    from edgecnn.predict import read_bgr

    folder = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    doc = {"schema": SCHEMA, "machine": machine_summary(), "tolerances": dict(TOLERANCES),
           "cases": [], "evals": []}
    for case in cases:
        runner = _runner(folder / case["model"])
        entry = {"model": case["model"], "sha256": _sha256(folder / case["model"]),
                 "task": _task(runner), "images": [],
                 "score_threshold": case.get("score_threshold")}
        results = _results(folder / case["model"], [folder / i for i in case["images"]],
                           case.get("score_threshold"))
        for image, result in zip(case["images"], results):
            key = f"{case['model']}|{image}"
            tensor = _input_tensor(runner, read_bgr(folder / image))
            arrays[key + "|input"] = tensor
            for i, out in enumerate(_raw_outputs(runner, tensor)):
                arrays[f"{key}|out{i}"] = out
            entry["images"].append({"image": image, "key": key, "result": result})
        doc["cases"].append(entry)
    for ev in evals:
        doc["evals"].append({**ev, "result": _evaluate(folder / ev["model"], folder / ev["data"],
                                                       ev["split"])})
    np.savez(folder / REFERENCE_NPZ, **arrays)
    (folder / REFERENCE_JSON).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def load_reference(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    folder = Path(folder)
    doc = json.loads((folder / REFERENCE_JSON).read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{folder / REFERENCE_JSON} is not an {SCHEMA} record")
    with np.load(folder / REFERENCE_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return doc, arrays


# ---------------------------------------------------------------- comparing
def output_difference(want: np.ndarray, got: np.ndarray, tol: dict) -> tuple[float, bool]:
    """(largest difference, within tolerance): in LSB for integer outputs, else absolute."""
    if want.shape != got.shape or want.dtype != got.dtype:
        return float("inf"), False
    if want.dtype.kind in "iu":
        diff = float(np.abs(want.astype(np.int64) - got.astype(np.int64)).max(initial=0))
        return diff, diff <= tol["int8_lsb"]
    a = want.astype(np.float64)
    err = np.abs(a - got)
    ok = bool(np.all(err <= tol["float_atol"] + tol["float_rtol"] * np.abs(a)))
    return float(err.max(initial=0)), ok


def compare_categories(want: list[dict], got: list[dict], score_tol: float) -> list[str]:
    """Top-k lists: same classes in the same order and scores within ``score_tol``.

    Two classes may trade places only where the reference scores them within ``2 * score_tol``
    of each other (a tie the other machine may break the other way); the last place may also
    go to a class just outside the reference's top-k with such a score.
    """
    if len(want) != len(got):
        return [f"{len(got)} categories, expected {len(want)}"]
    ref = {w["index"]: w["score"] for w in want}
    problems = []
    for rank, (w, g) in enumerate(zip(want, got)):
        if w["index"] == g["index"]:
            if abs(w["score"] - g["score"]) > score_tol:
                problems.append(f"rank {rank}: {g['label']} scores {g['score']:.6f}, expected "
                                f"{w['score']:.6f} (tolerance {score_tol:.2g})")
            continue
        tied = abs(w["score"] - g["score"]) <= 2 * score_tol
        known = g["index"] in ref and abs(ref[g["index"]] - g["score"]) <= score_tol
        if not (tied and (known or rank == len(want) - 1)):
            problems.append(f"rank {rank}: {g['label']} {g['score']:.6f} instead of "
                            f"{w['label']} {w['score']:.6f}")
    return problems


def compare_detections(want: list[dict], got: list[dict], score_tol: float, box_tol: float,
                       threshold: float, max_detections: int) -> list[str]:
    """Pair detections (best first): same class, score within ``score_tol``, every box edge
    within ``box_tol`` pixels.

    One without a partner is a difference unless its score is within ``score_tol`` of where
    the list is cut: the score threshold, or the lowest kept score of a list that reached
    ``max_detections`` (the other machine may have put it just below).
    """
    floor = threshold
    for found in (want, got):
        if len(found) >= max_detections:
            floor = max(floor, found[-1]["score"])
    problems, unmatched = [], list(range(len(got)))
    for w in want:
        partner = next((j for j in unmatched if got[j]["index"] == w["index"]
                        and abs(got[j]["score"] - w["score"]) <= score_tol
                        and max(abs(a - b) for a, b in zip(got[j]["box"], w["box"])) <= box_tol),
                       None)
        if partner is not None:
            unmatched.remove(partner)
        elif w["score"] - floor > score_tol:
            problems.append(f"missing {w['label']} {w['score']:.5f} at "
                            f"{[round(v, 2) for v in w['box']]}")
    for j in unmatched:
        if got[j]["score"] - floor > score_tol:
            problems.append(f"unexpected {got[j]['label']} {got[j]['score']:.5f} at "
                            f"{[round(v, 2) for v in got[j]['box']]}")
    return problems


def compare_eval(want: dict, got: dict, tol: dict) -> list[str]:
    problems = []
    if "accuracy" in want:
        flips = abs(want["accuracy"] - got["accuracy"]) * want["samples"]
        if got["samples"] != want["samples"] or flips > tol["accuracy_samples"] + 1e-6:
            problems.append(f"accuracy {got['accuracy']} on {got['samples']} samples, expected "
                            f"{want['accuracy']} on {want['samples']}")
    for key in ("map50", "map"):
        if key in want and abs(want[key] - got[key]) > tol["map_abs"]:
            problems.append(f"{key} {got[key]:.4f}, expected {want[key]:.4f}")
    return problems


def _e2e_tolerances(runner, gaps: list[float], image_shape) -> tuple[float, float]:
    """Score and box-edge (image pixels) tolerances that output differences ``gaps`` explain;
    ``gaps`` are the largest dequantized differences of each output."""
    if _task(runner) == "classify":
        # a softmax over logits moves each probability by at most ~2x the largest logit change
        return 2.0 * gaps[0] + SCORE_FLOOR, 0.0
    spec, size = runner.metadata.decoder, runner.metadata.input
    scale = min(size.width / image_shape[1], size.height / image_shape[0])
    if spec.type == "anchor_free_ltrb":  # ltrb distances in units of the anchor's stride
        roles = spec.outputs
        box_gap, score_gap, reach = gaps[roles["box"]], gaps[roles["score"]], max(spec.strides)
    else:  # another layout: any output may move boxes (at most by the input size) and scores
        box_gap = score_gap = max(gaps)
        reach = max(size.width, size.height)
    return score_gap + SCORE_FLOOR, box_gap * reach / scale + BOX_FLOOR_PX


def _input_step(runner) -> float:
    """One pixel level in the input tensor's units: 1 for integer tensors, 1/std for float."""
    if np.dtype(runner.model.input.dtype).kind in "iu":
        return 1.0
    return 1.0 / min(runner.metadata.input.std)


def _dequantized_gaps(runner, want: list[np.ndarray], got: list[np.ndarray]) -> list[float]:
    gaps = []
    for info, w, g in zip(runner.model.outputs, want, got):
        dw = runner.model.dequantize(w, info).astype(np.float64)
        gaps.append(float(np.abs(dw - runner.model.dequantize(g, info)).max(initial=0)))
    return gaps


def check_case(folder: Path, case: dict, arrays: dict, tol: dict) -> tuple[list[str], dict]:
    """Every difference of one model's images, and the largest differences seen."""
    from edgecnn.predict import read_bgr

    worst = dict.fromkeys(WORST, 0.0)
    model_path = folder / case["model"]
    if _sha256(model_path) != case["sha256"]:
        return [f"{case['model']}: not the recorded file (sha256 differs)"], worst
    runner = _runner(model_path)
    n_out = len(runner.model.outputs)
    threshold = case.get("score_threshold")
    results = _results(model_path, [folder / item["image"] for item in case["images"]],
                       threshold)
    problems = []
    for item, got in zip(case["images"], results):
        where, key = f"{case['model']} on {item['image']}", item["key"]
        want_in = arrays[key + "|input"]
        want_out = [arrays[f"{key}|out{i}"] for i in range(n_out)]
        image = read_bgr(folder / item["image"])
        got_in = _input_tensor(runner, image)
        levels = float(np.abs(want_in.astype(np.float64) - got_in).max(initial=0)) / \
            _input_step(runner) if want_in.shape == got_in.shape else float("inf")
        worst["input_levels"] = max(worst["input_levels"], levels)
        if levels > tol["input_lsb"] * (1 + 1e-4):  # 1/std is not exact in float32
            problems.append(f"{where}: input tensor differs by {levels:g} pixel levels")
        for i, out in enumerate(_raw_outputs(runner, want_in)):
            d_out, ok = output_difference(want_out[i], out, tol)
            kind = "int8_lsb" if want_out[i].dtype.kind in "iu" else "float_abs"
            worst[kind] = max(worst[kind], d_out)
            if not ok:
                problems.append(f"{where}: output {i} differs by {d_out:g} for the same input")
        gaps = _dequantized_gaps(runner, want_out, _raw_outputs(runner, got_in))
        score_tol, box_tol = _e2e_tolerances(runner, gaps, image.shape)
        if "categories" in item["result"]:
            diffs = compare_categories(item["result"]["categories"], got["categories"], score_tol)
        else:
            spec = runner.metadata.decoder
            diffs = compare_detections(item["result"]["detections"], got["detections"],
                                       score_tol, box_tol,
                                       spec.score_threshold if threshold is None else threshold,
                                       spec.max_detections)
        problems += [f"{where}: {d}" for d in diffs]
    return problems, worst


def check(folder: Path, reference: dict | None = None,
          arrays: dict | None = None) -> tuple[list[str], dict]:
    """Recompute a record here: ``(problems, summary)``; ``summary`` holds both machines and
    the largest differences seen (:data:`WORST`)."""
    folder = Path(folder)
    if reference is None or arrays is None:
        reference, arrays = load_reference(folder)
    tol = reference["tolerances"]
    problems: list[str] = []
    worst = dict.fromkeys(WORST, 0.0)
    for case in reference["cases"]:
        found, case_worst = check_case(folder, case, arrays, tol)
        problems += found
        worst = {k: max(worst[k], case_worst[k]) for k in worst}
    for ev in reference["evals"]:
        got = _evaluate(folder / ev["model"], folder / ev["data"], ev["split"])
        problems += [f"eval {ev['model']} on {ev['data']}: {p}"
                     for p in compare_eval(ev["result"], got, tol)]
    summary = {"reference": reference["machine"], "here": machine_summary(),
               "models": len(reference["cases"]),
               "images": sum(len(c["images"]) for c in reference["cases"]),
               "evals": len(reference["evals"]), "largest_difference": worst}
    return problems, summary
