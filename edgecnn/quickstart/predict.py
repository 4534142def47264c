"""Step ``predict``: held-out digits as PNG files, classified by the int8 model through
``edgecnn predict``'s own function (the device runtime), with drawn copies."""

from __future__ import annotations

from edgecnn.quickstart.core import QuickstartContext, StepResult
from edgecnn.quickstart.train import DATA

SAMPLES, DRAWN = "samples", "predictions"
COUNT = 6


def sample_name(i: int) -> str:
    return f"digit_{i}.png"


def run(ctx: QuickstartContext) -> StepResult:
    import cv2

    from edgecnn.data import load_classification
    from edgecnn.fsutil import atomic_dir
    from edgecnn.predict import predict_images

    data = load_classification(DATA, seed=ctx.options.seed)
    truth = [data.labels[data.y_test[i]] for i in range(COUNT)]
    with atomic_dir(ctx.path(SAMPLES), option="samples folder") as tmp:
        for i in range(COUNT):
            # 8x8 pixels blown up without smoothing: what the digits dataset really holds
            image = cv2.resize(data.x_test[i], (64, 64), interpolation=cv2.INTER_NEAREST)
            _, png = cv2.imencode(".png", image)
            (tmp / sample_name(i)).write_bytes(png.tobytes())
    files = [ctx.path(SAMPLES, sample_name(i)) for i in range(COUNT)]
    with atomic_dir(ctx.path(DRAWN), option="predictions folder") as tmp:
        report = predict_images(ctx.output("convert", "int8"), files, top_k=3,
                                threads=ctx.options.threads, save_dir=tmp)
    rows, right = [], 0
    for i, (pred, label) in enumerate(zip(report.results, truth)):
        right += int(pred.results[0].label == label)
        guesses = ", ".join(f"{c.label} ({c.score:.2f})" for c in pred.results)
        rows.append(f"| ![]({DRAWN}/{sample_name(i)}) | {label} | {guesses} |")
    md = ("## Predictions of the int8 model\n\n`edgecnn predict` on the sample images "
          f"(`{SAMPLES}/`), drawn copies in `{DRAWN}/`.\n\n| image | truth | top-3 |\n"
          "|---|---|---|\n" + "\n".join(rows) + "\n")
    return StepResult(summary=f"{right}/{COUNT} sample images right",
                      outputs={"samples": SAMPLES, "drawn": DRAWN},
                      metrics={"correct": right, "count": COUNT, "truth": truth}, report=md)
