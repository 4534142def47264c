"""The benchmark_model parser, on stored real outputs (adb and a device cannot run here)."""

from pathlib import Path

import pytest

from edgecnn.bench.adb import parse_benchmark_output, run_adb_benchmark
from edgecnn.bench.table import format_table, to_csv
from edgecnn.errors import UsageError

DATA = Path(__file__).parent / "data"


def test_parses_op_profiling_output():
    out = parse_benchmark_output((DATA / "benchmark_model_op_profiling.txt").read_text())
    assert out.init_us == 17187 and out.first_us == 3512391
    assert out.warmup_avg_us == pytest.approx(3.51239e6)
    assert out.avg_us == pytest.approx(2.95034e6)
    # The timed run's count= line, not the warm-up one nor the profiler's "Timings" line.
    assert out.count == 50
    assert (out.min_us, out.max_us, out.std_us) == (2727568, 3189954, 109798)
    assert out.median_us is None
    assert out.threads == 4 and out.graph == "./mobilenet_v1_1.0_224.tflite"
    assert out.memory_init_mb == pytest.approx(4.21094)
    assert out.memory_overall_mb == pytest.approx(46.0859)
    # The regular-runs node summary, not the initialization one (AllocateTensors).
    assert list(out.op_summary)[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert out.op_summary["CONV_2D"] == {"count": 15, "avg_ms": 2651.853, "percent": 89.897}
    assert "AllocateTensors" not in out.op_summary


def test_parses_logcat_output_with_percentiles():
    out = parse_benchmark_output((DATA / "benchmark_model_percentiles.txt").read_text())
    assert out.count == 25 and out.avg_us == 145528
    assert (out.p5_us, out.median_us, out.p95_us) == (140545, 141253, 187533)
    assert out.threads == 4
    assert out.delegate == "TfLiteXNNPackDelegate" and out.delegated_nodes == (539, 548)
    assert out.model_mb == pytest.approx(3.06409)
    r = out.to_result("best_int8.tflite", "adb:R58M")
    assert r.p50_ms == pytest.approx(141.253) and r.mean_ms == pytest.approx(145.528)
    assert r.init_ms == pytest.approx(92.318) and r.first_ms == pytest.approx(235.158)
    assert r.p90_ms is None  # benchmark_model does not print it: never invented
    assert r.xnnpack is True and r.extra["p50_is_mean"] is False
    assert r.extra["p95_ms"] == pytest.approx(187.533)


def test_results_go_into_the_same_table():
    a = parse_benchmark_output((DATA / "benchmark_model_op_profiling.txt").read_text())
    b = parse_benchmark_output((DATA / "benchmark_model_percentiles.txt").read_text())
    rows = [a.to_result("mobilenet.tflite", "adb:X"), b.to_result("yolo.tflite", "adb:X")]
    text = format_table(rows)
    assert "| adb:X |" in text and "mobilenet.tflite" in text
    # p50 of a is its mean (no median printed): 2950.34 ms; b's median 141.25 ms.
    assert "2950.34" in text and "141.25" in text
    assert "20.89x" in text  # 2950.34 / 141.253, at thread count 4 for both
    csv_text = to_csv(rows)
    assert csv_text.splitlines()[0].startswith("model,device,threads")


def test_failed_run_is_a_clear_error():
    with pytest.raises(UsageError, match="no 'Inference timings'.*Failed to load model"):
        parse_benchmark_output("STARTING!\nGraph: [x.tflite]\nFailed to load model x.tflite\n")


def test_missing_adb_or_binary_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb on PATH
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(UsageError, match="--benchmark-binary"):
        run_adb_benchmark("SERIAL", "", [str(model)], (1,))
    with pytest.raises(UsageError, match="adb is not on PATH"):
        run_adb_benchmark("SERIAL", "/data/local/tmp/benchmark_model", [str(model)], (1,))
