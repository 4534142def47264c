"""Step ``camera``: the int8 detector in the real-time camera loop, on a generated video.

What ``edgecnn camera det_int8.tflite --source clip.mp4 --save camera.mp4 --json ...`` does:
a synthetic clip of moving shapes (``clip.mp4``, ground truth in ``clip.json``) is read by the
capture thread, preprocessed ahead while the interpreter runs, drawn with boxes, labels, scores
and FPS, and saved. The loop's FPS is set against the sequential bound
``1000 / (preprocess + inference + postprocess p50 ms)``, the three stages timed alone on the
clip's frames: what one thread doing nothing else could reach.
"""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult

CLIP, VIDEO, FRAMES_JSON = "clip.mp4", "camera.mp4", "camera.jsonl"
SIZE = (320, 240)
BOUND_RUNS = 60


def clip_frames(fast: bool) -> int:
    return 60 if fast else 300


def run(ctx: QuickstartContext) -> StepResult:
    from edgecnn.camera.loop import LoopOptions, run as run_loop
    from edgecnn.camera.sources import open_source
    from edgecnn.camera.writer import codec_note, video_codec
    from edgecnn.data.synth_video import write_synthetic_video
    from edgecnn.runtime import load

    frames = clip_frames(ctx.options.fast)
    write_synthetic_video(ctx.path(CLIP), frames=frames, size=SIZE, seed=ctx.options.seed,
                          objects=5, speed=3.0)
    ctx.say(f"wrote {CLIP}: {frames} frames {SIZE[0]}x{SIZE[1]} of moving shapes "
            f"(truth in clip.json)")
    detector = load(ctx.output("detect", "int8"), threads=ctx.options.threads)
    bound = sequential_bound(detector, ctx.path(CLIP))
    summary = run_loop(detector, open_source(str(ctx.path(CLIP))),
                       LoopOptions(save=str(ctx.path(VIDEO)), json=str(ctx.path(FRAMES_JSON)),
                                   handle_signals=False))
    ratio = summary.fps_mean / bound["fps"] if bound["fps"] else 0.0
    boxes = _count_boxes(ctx.path(FRAMES_JSON))
    fourcc = video_codec(ctx.path(VIDEO))
    stages = " + ".join(f"{name} {ms:.2f}" for name, ms in bound["ms"].items())
    report = (
        "## Real-time camera loop\n\n"
        f"`edgecnn camera {ctx.output('detect', 'int8').name} --source {CLIP} --save {VIDEO} "
        f"--json {FRAMES_JSON}` on a generated {SIZE[0]}x{SIZE[1]} clip of {frames} frames, "
        f"{ctx.options.threads} interpreter threads, pipelined (capture and preprocessing on "
        "their own thread).\n\n"
        f"| loop FPS | sequential bound | ratio | boxes drawn | decode share |\n"
        f"|---|---|---|---|---|\n| {summary.fps_mean:.1f} | {bound['fps']:.1f} FPS "
        f"({stages} ms p50) | {ratio:.2f}x | {boxes} | {100 * summary.decode_share:.0f}% |\n\n"
        f"The loop also decodes, draws and encodes every frame, which the bound leaves out. "
        f"Annotated video: [`{VIDEO}`]({VIDEO}) ({codec_note(fourcc)}); one JSON record per "
        f"frame in `{FRAMES_JSON}`.\n")
    return StepResult(
        summary=(f"{summary.frames} frames at {summary.fps_mean:.0f} FPS, {ratio:.2f}x the "
                 f"sequential bound {bound['fps']:.0f} FPS; saved {VIDEO} ({fourcc})"),
        outputs={"clip": CLIP, "truth": "clip.json", "video": VIDEO, "frames": FRAMES_JSON},
        metrics={"frames": summary.frames, "fps": summary.fps_mean,
                 "bound_fps": round(bound["fps"], 2), "ratio": round(ratio, 3),
                 "stages_ms": bound["ms"], "boxes": boxes, "codec": fourcc,
                 "errors": summary.errors},
        report=report)


def sequential_bound(detector, clip) -> dict:
    """p50 ms of preprocess, inference and postprocess, each timed alone on the clip's frames,
    and the FPS one thread would reach doing exactly those (``1000 / sum``)."""
    import cv2
    import numpy as np

    from edgecnn.bench.latency import time_stages

    capture = cv2.VideoCapture(str(clip))
    images = []
    while len(images) < 30:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
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
