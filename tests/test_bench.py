"""edgecnn bench on real tiny models: statistics, interleaved variants, e2e, outputs, errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_models import model_path
from conftest import assert_one_line_error
from edgecnn.bench.latency import BenchOptions, benchmark, latency_stats
from edgecnn.bench.machine import machine_info
from edgecnn.errors import UsageError
from edgecnn.runtime.metadata import split_bundle


@pytest.fixture
def models(request) -> list[Path]:
    return [model_path(request.config, "bright_detector.tflite"),
            model_path(request.config, "bright_detector_int8.tflite")]


def test_latency_stats_are_the_textbook_ones():
    s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50_ms"] == 3.0 and s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert s["mean_ms"] == pytest.approx(22.0) and s["fps"] == pytest.approx(1000 / 3)
    assert s["std_ms"] == pytest.approx(np.std([1, 2, 3, 4, 100]))


def test_invoke_benchmark_sweeps_threads_per_model(models):
    results = benchmark(models, BenchOptions(threads=(1, 2), runs=23, warmup=2, block=5))
    assert [(r.model, r.threads) for r in results] == [
        (models[0].name, 1), (models[0].name, 2), (models[1].name, 1), (models[1].name, 2)]
    for r, path in zip(results, [models[0]] * 2 + [models[1]] * 2):
        assert r.runs == 23  # 4 blocks of 5 + one of 3
        assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms <= r.max_ms
        assert r.fps == pytest.approx(1000.0 / r.p50_ms, rel=1e-2)  # p50 is rounded to 0.1 us
        assert r.size_bytes == path.stat().st_size
        assert r.init_ms > 0 and r.first_ms is not None and r.first_ms > 0
        assert r.peak_rss_mb > 10 and r.rss_load_mb is not None
        assert r.input_shape == (1, 64, 64, 3)
        # XNNPACK takes the convolutions of both models; the runtime's "created delegate" log
        # line appears once per process, so this must be judged per model, not from stderr
        assert r.xnnpack is True
        assert r.e2e_p50_ms is None
    assert [r.quantization for r in results] == ["float32", "float32", "int8", "int8"]


def test_e2e_times_each_stage_on_given_images(models, tmp_path):
    for i in range(3):
        img = np.zeros((240, 320, 3), np.uint8)
        cv2.rectangle(img, (40 * i, 30), (40 * i + 90, 120), (255, 255, 255), -1)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    (tmp_path / "notes.txt").write_text("not an image")
    [r] = benchmark(models[:1], BenchOptions(runs=12, warmup=2, e2e=True, images=str(tmp_path)))
    assert r.pre_p50_ms > 0 and r.post_p50_ms > 0
    # The end-to-end time is the sum of the three stages of each run.
    assert r.e2e_p50_ms >= max(r.pre_p50_ms, r.post_p50_ms, r.p50_ms)
    assert r.e2e_fps == pytest.approx(1000 / r.e2e_p50_ms, rel=1e-2)


def test_e2e_needs_metadata_and_images(models, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(split_bundle(models[0].read_bytes())[0])
    # Invoke-only runs any model; e2e needs the metadata to preprocess.
    assert benchmark([bare], BenchOptions(runs=3, warmup=1))[0].quantization == ""
    with pytest.raises(UsageError, match="metadata"):
        benchmark([bare], BenchOptions(runs=3, e2e=True))
    with pytest.raises(UsageError, match="no readable images"):
        benchmark(models[:1], BenchOptions(runs=3, e2e=True, images=str(tmp_path)))
    with pytest.raises(UsageError, match="--e2e"):
        benchmark(models[:1], BenchOptions(images=str(tmp_path)))


def test_machine_info_names_cpu_and_runtime():
    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"]
    assert info["runtime"] in ("ai_edge_litert", "tflite_runtime")
    assert info["runtime_version"] != "unknown"


def test_cli_json_csv_plot(models, tmp_path, run_cli):
    out_csv, out_png = tmp_path / "b.csv", tmp_path / "b.png"
    res = run_cli("bench", *models, "--threads", "1,2", "--runs", "10", "--warmup", "2",
                  "--json", "--csv", out_csv, "--plot", out_png)
    assert res.exit_code == 0, res.err
    doc = json.loads(res.out)
    assert {"cpu", "cores", "runtime", "runtime_version", "python", "os"} <= set(doc["machine"])
    rows = doc["results"]
    assert [(r["model"], r["threads"]) for r in rows] == [
        (models[0].name, 1), (models[0].name, 2), (models[1].name, 1), (models[1].name, 2)]
    assert rows[0]["speedup_vs_first"] == 1.0
    assert rows[2]["speedup_vs_first"] == pytest.approx(rows[0]["p50_ms"] / rows[2]["p50_ms"],
                                                        rel=1e-2)
    with open(out_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and float(table[3]["p50_ms"]) == pytest.approx(rows[3]["p50_ms"])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table_output(models, run_cli):
    res = run_cli("bench", models[0], "--threads", "1", "--runs", "5", "--e2e")
    assert res.exit_code == 0, res.err
    assert res.out.startswith("| model | threads | p50 ms")
    assert "e2e p50 ms" in res.out and "machine:" in res.out and "XNNPACK" in res.out


def test_cli_bad_inputs(models, tmp_path, run_cli, monkeypatch):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    assert_one_line_error(run_cli("bench", junk), "not a TFLite model")
    assert_one_line_error(run_cli("bench", tmp_path / "missing.tflite"), "not found")
    assert_one_line_error(run_cli("bench", models[0], "--threads", "0"), "--threads")
    assert_one_line_error(run_cli("bench", models[0], "--threads", "two"), "--threads")
    assert_one_line_error(run_cli("bench", models[0], "--runs", "0"), "--runs")
    assert_one_line_error(run_cli("bench", models[0], "--benchmark-binary", "x"), "--adb")
    assert_one_line_error(run_cli("bench", models[0], "--images", tmp_path), "--e2e")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    res = run_cli("bench", models[0], "--runs", "3", "--plot", tmp_path / "p.png")
    assert_one_line_error(res, "matplotlib", "pip install")
    assert not (tmp_path / "p.png").exists()


def test_cli_help(run_cli):
    res = run_cli("bench", "--help")
    assert res.exit_code == 0
    for opt in ("--threads", "--runs", "--warmup", "--e2e", "--images", "--json", "--csv",
                "--plot", "--adb", "--benchmark-binary"):
        assert opt in res.out
