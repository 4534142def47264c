"""The ``--serve`` page in a real headless Chromium (Debian's chromium + chromium-driver).

It loads, MJPEG frames arrive in the <img>, the detections list fills with track IDs and
updates, and a screenshot shows the annotated frame next to the lists.
"""

from __future__ import annotations

import os
import shutil
import time

import cv2
import numpy as np
import pytest

from camera_models import model_path
from serve_helpers import LiveLoop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver  # the [dev] extra

    if not (CHROMIUM and DRIVER):
        reason = "chromium and chromium-driver are not installed (apt-get install them)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test", pytrace=False)
        pytest.skip(reason)
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,700"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _until(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_page_shows_live_stream_detections_and_counts(browser, request, tmp_path):
    from edgecnn.camera.serve import ServeOptions

    model = model_path(request.config, "blob_detector.tflite")
    loop = LiveLoop(model_path=model, options=ServeOptions(port=0, token="tok"), fps=20.0,
                    score=0.5)
    try:
        browser.get(f"{loop.url}/?token=tok")
        assert browser.title == "edgecnn camera"
        by_id = browser.find_element
        first = int(_until(lambda: by_id("id", "frame").text.isdigit()
                           and by_id("id", "frame").text))
        _until(lambda: by_id("id", "frame").text.isdigit()
               and int(by_id("id", "frame").text) > first + 5)
        # MJPEG frames decoded by the browser: the image has the stream's size.
        size = _until(lambda: browser.execute_script(
            "const i = document.getElementById('stream');"
            "return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;"))
        assert size == [320, 240]
        # Rows are replaced on every update: read them in one script, not element by element.
        def rows():
            return browser.execute_script(
                "return [...document.querySelectorAll('#detections tr')]"
                ".map((r) => r.innerText.replace(/\\s+/g, ' '));")

        first_rows = _until(rows)
        assert first_rows[0].startswith("#1 blob")
        seen = set()
        _until(lambda: seen.update(rows()[:1]) or len(seen) > 2)  # the box moves
        assert "gate" in by_id("id", "counts").text
        assert float(by_id("id", "fps").text) > 0
        assert "inference" in by_id("id", "timings").text
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        keep = os.environ.get("EDGECNN_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
        image = cv2.imread(str(shot))
        assert image is not None and image.shape[1] >= 1000
        # The white square of the stream is on the page (the stream is not a blank box).
        assert np.count_nonzero(image.min(axis=2) > 240) > 500
    finally:
        loop.close()
