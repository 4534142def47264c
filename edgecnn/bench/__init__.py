"""Latency benchmarks on the device (no TensorFlow).

- :mod:`edgecnn.bench.latency`: ``benchmark(paths, BenchOptions)`` -> ``list[BenchResult]``,
  invoke-only or end to end, variants interleaved in one process;
- :mod:`edgecnn.bench.machine`: CPU, cores, OS, runtime package and XNNPACK;
- :mod:`edgecnn.bench.table`: comparison table with ratios, CSV, JSON and a PNG plot;
- :mod:`edgecnn.bench.adb`: LiteRT's ``benchmark_model`` on an Android device, parsed into the
  same records.
"""
