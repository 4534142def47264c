"""``edgecnn camera``: live inference on a camera, stream or video file."""

from __future__ import annotations

from typing import Any

import click

from edgecnn.commands import options as shared


@click.command("camera")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--source", "-s", required=True,
              help="Camera index (0), /dev/videoN, video file, rtsp:// or http:// URL, "
                   "GStreamer pipeline ending in appsink, or 'picamera2'.")
@click.option("--width", type=int, default=None, help="Requested capture width.")
@click.option("--height", type=int, default=None, help="Requested capture height.")
@click.option("--fps", type=float, default=None, help="Requested capture frame rate.")
@click.option("--threads", type=int, default=None,
              help="Interpreter threads (default: CPU cores, at most 4).")
@click.option("--display", is_flag=True, help="Show a window (needs OpenCV with GUI support).")
@click.option("--headless", is_flag=True, help="No window (the default; for scripts).")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the annotated video here (.mp4/.avi); playable even after Ctrl-C.")
@click.option("--json", "json_out", is_flag=False, flag_value="-", default=None,
              metavar="[FILE]",
              help="JSON Lines, one object per frame (stdout if no FILE); last line: summary.")
@click.option("--overwrite", is_flag=True,
              help="Replace a --save / --json file that edgecnn did not write.")
@click.option("--max-frames", type=int, default=None, help="Stop after N processed frames.")
@click.option("--duration", type=float, default=None, help="Stop after S seconds.")
@click.option("--realtime", is_flag=True,
              help="Play a file like a camera: at its FPS, dropping stale frames.")
@shared.score_threshold("Minimum detection score (0..1; default: the model's own). With "
                        "--track: the score a box needs to start a track.")
@click.option("--no-draw", is_flag=True, help="Do not draw results on the frames.")
@click.option("--sequential", is_flag=True,
              help="Run stages one after another instead of pipelined in threads.")
@click.option("--reconnect", type=int, default=10, show_default=True,
              help="Reopen attempts (back-off 0.1 s doubling to 5 s) before a dropped stream "
                   "counts as lost; 0: never reopen.")
@click.option("--read-timeout", type=float, default=10.0, show_default=True,
              help="Seconds a stream may send nothing before it is reopened (a server that "
                   "stalls without closing the connection).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the summary.")
@shared.no_verify
@click.option("--track", is_flag=True,
              help="Follow detections with stable IDs (JSON 'track_id'; IDs and trails drawn).")
@click.option("--line", "lines", multiple=True, metavar="[NAME=]X1,Y1,X2,Y2",
              help="Count crossings of this line per direction and class (implies --track). "
                   "Pixels, or fractions of the frame when all values are 0..1. Repeatable.")
@click.option("--zone", "zones", multiple=True, metavar="[NAME=]X1,Y1,X2,Y2,X3,Y3,...",
              help="Count occupancy and dwell time in this polygon (implies --track). "
                   "Repeatable.")
@click.option("--on-event", metavar="CMD", default=None,
              help="Run CMD (through the shell) per crossing / zone entry / exit, with the "
                   "event JSON on stdin.")
@click.option("--webhook", metavar="URL", default=None, help="POST each event's JSON to URL.")
@click.option("--hook", "hooks", multiple=True, metavar="MODULE:FUNCTION",
              help="Call a Python function with each event dict (e.g. to drive a GPIO pin); "
                   "MODULE may be a .py file. Repeatable.")
@click.option("--event-rate", type=float, default=5.0, show_default=True,
              help="Events per second each receiver accepts; more are dropped and counted.")
@click.option("--serve", metavar="[HOST:]PORT", default=None,
              help="Serve a live page, /stream.mjpg, /snapshot.jpg, /events, /healthz and "
                   "/metrics over HTTP (127.0.0.1 unless HOST is given).")
@click.option("--auth-token", envvar="EDGECNN_AUTH_TOKEN", default=None,
              help="Token every --serve route requires (Bearer header or ?token=); "
                   "also read from EDGECNN_AUTH_TOKEN.")
@click.option("--stream-fps", type=float, default=15.0, show_default=True,
              help="Most frames per second sent to each stream client.")
@shared.describe_model
def camera(model: str, source: str, width: int | None, height: int | None, fps: float | None,
           threads: int | None, display: bool, headless: bool, save: str | None,
           json_out: str | None, max_frames: int | None, duration: float | None,
           realtime: bool, score_threshold: float | None, no_draw: bool, sequential: bool,
           reconnect: int, read_timeout: float, quiet: bool, track: bool,
           lines: tuple[str, ...], zones: tuple[str, ...], on_event: str | None,
           webhook: str | None,
           hooks: tuple[str, ...], event_rate: float, serve: str | None,
           auth_token: str | None, stream_fps: float, no_verify: bool, overwrite: bool,
           described=None) -> None:
    """Run MODEL (.tflite with edgecnn metadata, Ultralytics' metadata, or described by
    --task/--labels/...) on frames from --source until it ends, --max-frames / --duration is
    reached, or Ctrl-C; print a summary at exit."""
    import os
    import sys

    from edgecnn.camera import deploy
    from edgecnn.camera.capture import CaptureOptions
    from edgecnn.camera.loop import LoopOptions, run
    from edgecnn.camera.sources import open_source, opencv_has_gui
    from edgecnn.camera.writer import check_output_path
    from edgecnn.errors import EdgeCNNError, UsageError
    from edgecnn.runtime import load

    if threads is None:
        threads = max(1, min(4, os.cpu_count() or 1))
    _check_numbers(threads, reconnect, score_threshold, {
        "--width": width, "--height": height, "--fps": fps, "--max-frames": max_frames,
        "--duration": duration, "--read-timeout": read_timeout})
    score = score_threshold
    if display and headless:
        raise UsageError("--display and --headless contradict each other", "pick one")
    if display and not opencv_has_gui():
        raise UsageError("--display needs OpenCV with GUI support; this one has none "
                         "(opencv-python-headless)",
                         "use --save OUT.mp4 / --json, or pip install opencv-python")
    for path, option in ((save, "--save"), (None if json_out == "-" else json_out, "--json")):
        if path is not None:
            check_output_path(path, overwrite, option)

    plan = deploy.check(track, lines, zones, on_event, webhook, hooks, event_rate, serve,
                        auth_token, stream_fps)
    high = score
    if plan.tracking:
        score, high = deploy.detector_threshold(plan, score, _default_score(model, described))
    deployment = deploy.Deployment(plan)  # binds --serve's port now: busy -> error, exit 2
    try:
        options: dict[str, Any] = {} if score is None else {"score_threshold": score}
        runner_model = load(model, threads=threads, verify=not no_verify, described=described,
                            **options)
        deployment.attach(runner_model, high if high is not None else 0.25)
        src = open_source(source, width=width, height=height, fps=fps,
                          read_timeout=read_timeout)
        loop_options = LoopOptions(max_frames=max_frames, duration=duration,
                                   draw=not no_draw, save=save, json=json_out,
                                   display=display, realtime=realtime, pipeline=not sequential,
                                   capture=CaptureOptions(max_reconnect_attempts=reconnect),
                                   stages=deployment.stages, publisher=deployment.publisher)
        deployment.start()
        summary = run(runner_model, src, loop_options)
    finally:
        deployment.close()
    if not quiet:
        click.echo(summary.format_text(), err=True)
        if save and summary.frames:
            from edgecnn.camera.writer import codec_note, video_codec

            click.echo(f"saved {save}: {codec_note(video_codec(save))}", err=True)
    if summary.frames == 0 and summary.errors:
        raise EdgeCNNError(f"no frame could be processed: {summary.error_messages[0]}")
    if summary.stopped_by.startswith("source lost"):
        raise EdgeCNNError(f"{summary.stopped_by} after {summary.frames} frames",
                           "check the camera or stream")
    sys.stdout.flush()


def _check_numbers(threads: int, reconnect: int, score: float | None,
                   positive: dict[str, float | None]) -> None:
    from edgecnn.errors import UsageError

    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}", "use --threads 1 or more")
    for name, value in positive.items():
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be > 0, got {value}")
    if reconnect < 0:
        raise UsageError(f"--reconnect must be >= 0, got {reconnect}")
    if score is not None and not 0.0 <= score <= 1.0:
        raise UsageError(f"--score-threshold must be within 0..1, got {score}")


def _default_score(model: str, described) -> float:
    """The detector's own score threshold: its metadata's, the --decoder's, else 0.25."""
    from edgecnn.runtime.metadata import read, read_model_file

    meta = read(read_model_file(model))
    given = (described.decoder or {}) if described is not None else {}
    return meta.decoder.score_threshold if meta and meta.decoder \
        else given.get("score_threshold", 0.25)
