"""``edgecnn bench``: latency of .tflite models here, or on an Android device over adb."""

from __future__ import annotations

import click

from edgecnn.commands import options as shared


def _parse_threads(text: str) -> tuple[int, ...]:
    from edgecnn.errors import UsageError

    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--threads {text!r} is not a comma-separated list of integers",
                         "use e.g. --threads 1,2,4") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--threads values must be >= 1, got {text!r}", "use e.g. --threads 1,2")
    return tuple(dict.fromkeys(values))


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--threads", default="1,2", show_default=True,
              help="Comma-separated thread counts to sweep.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs per variant.")
@click.option("--warmup", type=int, default=10, show_default=True,
              help="Untimed runs per variant first.")
@click.option("--e2e", is_flag=True,
              help="Also time preprocessing and postprocessing on representative frames.")
@click.option("--images", type=click.Path(), default=None,
              help="Folder of images for --e2e (default: synthetic 640x480 frames).")
@click.option("--json", "as_json", is_flag=True, help="Print {'results': [...], 'machine': {...}}.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a bar chart PNG (needs matplotlib).")
@click.option("--plain", is_flag=True, help="Plain-text table instead of markdown.")
@click.option("--overwrite", is_flag=True,
              help="Replace a --csv / --plot file that edgecnn did not write.")
@click.option("--adb", "adb_serial", default=None,
              help="Run on this Android device (serial from 'adb devices') with benchmark_model.")
@click.option("--benchmark-binary", default=None,
              help="LiteRT benchmark_model binary for the device (local path or /data/... path).")
@shared.no_verify
def bench(models: tuple[str, ...], threads: str, runs: int, warmup: int, e2e: bool,
          images: str | None, as_json: bool, csv_path: str | None, plot_path: str | None,
          plain: bool, adb_serial: str | None, benchmark_binary: str | None,
          no_verify: bool, overwrite: bool) -> None:
    """Measure the latency of one or more MODELS (.tflite); ratios against the first."""
    from edgecnn.bench import table
    from edgecnn.bench.machine import machine_info
    from edgecnn.errors import UsageError
    from edgecnn.fsutil import check_output_file, record_output_file, write_atomic

    thread_counts = _parse_threads(threads)
    if runs < 1:
        raise UsageError(f"--runs must be >= 1, got {runs}")
    if warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {warmup}")
    if benchmark_binary and not adb_serial:
        raise UsageError("--benchmark-binary is only used with --adb SERIAL", "add --adb")
    for path, option in ((csv_path, "--csv"), (plot_path, "--plot")):
        if path:   # before the measurement, not after it
            check_output_file(path, overwrite, option)
    if plot_path:
        try:
            import matplotlib  # noqa: F401 - fail before the measurement, not after it
        except ImportError:
            from edgecnn.errors import MissingDependencyError

            raise MissingDependencyError("matplotlib", purpose="--plot") from None

    def progress(msg: str) -> None:
        if not as_json:
            click.echo(f"  {msg}", err=True)

    if adb_serial:
        if e2e:
            raise UsageError("--e2e is not available with --adb",
                             "benchmark_model times invoke only")
        from edgecnn.bench.adb import run_adb_benchmark

        results = run_adb_benchmark(adb_serial, benchmark_binary or "", list(models),
                                    thread_counts, runs=runs, warmup=warmup)
        machine = {"device": f"adb:{adb_serial}", "tool": "benchmark_model"}
    else:
        from edgecnn.bench.latency import BenchOptions, benchmark

        results = benchmark(models, BenchOptions(threads=thread_counts, runs=runs, warmup=warmup,
                                                 e2e=e2e, images=images, verify=not no_verify),
                            progress=progress)
        machine = machine_info()
    if csv_path:
        write_atomic(csv_path, table.to_csv(results))
        record_output_file(csv_path)
    if plot_path:
        table.plot(results, plot_path)
        record_output_file(plot_path)
    if as_json:
        click.echo(table.to_json(results, machine))
        return
    click.echo(table.format_table(results, "plain" if plain else "markdown"))
    if not adb_serial:
        click.echo(f"\nmachine: {table.format_machine(machine)}; XNNPACK: "
                   + ", ".join(f"{r.model}={'yes' if r.xnnpack else 'no' if r.xnnpack is False else '?'}"
                               for r in results if r.threads == results[0].threads))
        click.echo(f"runs {runs} per variant after {warmup} warm-up, interleaved in blocks; "
                   f"peak RSS {results[-1].peak_rss_mb} MB")
    for path in (csv_path, plot_path):
        if path:
            click.echo(f"wrote {path}")
