"""Step ``camera``: the int8 detector in the real-time camera loop, on a generated video.

What ``edgecnn camera det_int8.tflite --source clip.mp4 --save camera.mp4 --json ...`` does:
a synthetic clip of moving shapes (``clip.mp4``, ground truth in ``clip.json``) is read by the
capture thread, preprocessed ahead while the interpreter runs, drawn with boxes, labels, scores
and FPS, and saved.

The loop's speed is measured as ``benchmarks/camera_e2e.py`` does: the clip's frames from
memory (no decoding), drawing on, pipelined, against the sequential bound
``1000 / (preprocess + inference + postprocess p50 ms)`` with the three stages timed alone on
the same frames (what one thread doing nothing else could reach). The run that saves the video
also decodes and encodes every frame; its FPS is reported beside.
"""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult

CLIP, VIDEO, FRAMES_JSON = "clip.mp4", "camera.mp4", "camera.jsonl"
SIZE = (320, 240)
BOUND_RUNS = 100


def clip_frames(fast: bool) -> int:
    return 60 if fast else 300


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.camera.loop import LoopOptions
    from edgecnn.camera.loop import run as run_loop
    from edgecnn.camera.sources import MemorySource, open_source
    from edgecnn.camera.writer import codec_note, video_codec
    from edgecnn.data.synth_video import write_synthetic_video
    from edgecnn.runtime import load

    frames = clip_frames(ctx.options.fast)
    write_synthetic_video(ctx.path(CLIP), frames=frames, size=SIZE, seed=ctx.options.seed,
                          objects=5, speed=3.0)
    ctx.say(f"wrote {CLIP}: {frames} frames {SIZE[0]}x{SIZE[1]} of moving shapes "
            f"(truth in clip.json)")
    detector = load(ctx.output("detect", "int8"), threads=ctx.options.threads)
    images = read_frames(ctx.path(CLIP))
    bound = sequential_bound(detector, images)
    # a sub-millisecond model runs hundreds of frames a second: cycle the clip three times so
    # the threads' start-up is not a sizeable part of the measured run
    loop = run_loop(detector, MemorySource(images, count=3 * frames),
                    LoopOptions(draw=True, handle_signals=False))
    ratio = loop.fps_mean / bound["fps"] if bound["fps"] else 0.0
    ctx.say(f"loop from memory: {loop.fps_mean:.0f} FPS, {ratio:.2f}x the sequential bound "
            f"{bound['fps']:.0f} FPS; now with decoding, drawing and saving")
    saved = run_loop(detector, open_source(str(ctx.path(CLIP))),
                     LoopOptions(save=str(ctx.path(VIDEO)), json=str(ctx.path(FRAMES_JSON)),
                                 handle_signals=False))
    boxes = _count_boxes(ctx.path(FRAMES_JSON))
    fourcc = video_codec(ctx.path(VIDEO))
    stages = " + ".join(f"{name} {ms:.2f}" for name, ms in bound["ms"].items())
    report = (
        "## Real-time camera loop\n\n"
        f"`edgecnn camera {ctx.output('detect', 'int8').name} --source {CLIP} --save {VIDEO} "
        f"--json {FRAMES_JSON}` on a generated {SIZE[0]}x{SIZE[1]} clip of {frames} frames, "
        f"{ctx.options.threads} interpreter threads, pipelined (capture and preprocessing on "
        "their own thread).\n\n"
        "| run | FPS | vs sequential bound |\n|---|---|---|\n"
        f"| stages alone (the bound: {stages} ms p50) | {bound['fps']:.1f} | 1.00x |\n"
        f"| loop, frames from memory, drawing | {loop.fps_mean:.1f} | {ratio:.2f}x |\n"
        f"| loop, decoding + drawing + saving + JSON | {saved.fps_mean:.1f} | "
        f"{saved.fps_mean / bound['fps'] if bound['fps'] else 0:.2f}x |\n\n"
        f"{boxes} boxes drawn. Annotated video: [`{VIDEO}`]({VIDEO}) ({codec_note(fourcc)}); "
        f"one JSON record per frame in `{FRAMES_JSON}`.\n")
    return StepResult(
        summary=(f"loop {loop.fps_mean:.0f} FPS = {ratio:.2f}x the sequential bound "
                 f"{bound['fps']:.0f} FPS; saved {VIDEO} ({fourcc}, {saved.frames} frames at "
                 f"{saved.fps_mean:.0f} FPS)"),
        outputs={"clip": CLIP, "truth": "clip.json", "video": VIDEO, "frames": FRAMES_JSON},
        metrics={"frames": saved.frames, "fps": loop.fps_mean, "saving_fps": saved.fps_mean,
                 "bound_fps": round(bound["fps"], 2), "ratio": round(ratio, 3),
                 "stages_ms": bound["ms"], "boxes": boxes, "codec": fourcc,
                 "errors": saved.errors + loop.errors},
        report=report)


def read_frames(clip) -> list:
    """Every frame of ``clip`` (BGR)."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    return images


def sequential_bound(detector, images) -> dict:
    """p50 ms of preprocess, inference and postprocess, each timed alone on ``images``, and
    the FPS one thread would reach doing exactly those (``1000 / sum``)."""
    import numpy as np

    from edgecnn.bench.latency import time_stages

    for image in images[:5]:   # warm-up: XNNPACK packs the weights on the first invoke
        detector(image)
    times = np.array([time_stages(detector, images[i % len(images)])
                      for i in range(BOUND_RUNS)])
    p50 = np.percentile(times, 50, axis=0)
    ms = {"preprocess": round(float(p50[0]), 3), "inference": round(float(p50[1]), 3),
          "postprocess": round(float(p50[2]), 3)}
    return {"ms": ms, "fps": 1000.0 / max(1e-6, float(p50.sum()))}


def _count_boxes(frames_json) -> int:
    import json

    count = 0
    with open(frames_json, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            count += len(record.get("detections", []))
    return count
