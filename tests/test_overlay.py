"""Overlay drawing: pixels change where boxes, labels and stats belong, and nowhere else."""

import numpy as np
import pytest

from edgecnn.camera.overlay import (PALETTE, class_color, draw_categories, draw_detections,
                                    draw_stats)
from edgecnn.errors import UsageError
from edgecnn.runtime.types import Category, Detection, Rect


def _frame(h=240, w=320):
    return np.zeros((h, w, 3), np.uint8)


def test_box_drawn_in_class_colour_at_its_place():
    img = _frame()
    det = Detection(Rect(100, 80, 200, 180), Category(2, "car", 0.87))
    out = draw_detections(img, [det], thickness=2)
    assert out is img
    color = class_color(2)
    # Left and bottom edges carry the class colour; the inside of the box stays black.
    assert tuple(img[150, 100]) == color
    assert tuple(img[180, 150]) == color
    assert img[130:170, 110:190].max() == 0
    # Far from the box and its label nothing is drawn.
    assert img[200:, 250:].max() == 0


def test_label_uses_override_names_and_stays_inside_image():
    img = _frame()
    det = Detection(Rect(0, 0, 50, 50), Category(0, "x", 0.5))
    draw_detections(img, [det], labels=["person"])
    # A box touching the top edge puts its label inside the image (rows 0..~20 painted).
    assert img[2:18, 2:40].any()


def test_boxes_outside_image_are_clipped_not_crashing():
    img = _frame()
    det = Detection(Rect(-50, -20, 1000, 900), Category(25, "far", 0.3))
    draw_detections(img, [det])
    assert tuple(img[239, 160]) == class_color(25) == PALETTE[25 % len(PALETTE)]


def test_categories_and_stats_draw_in_their_corners():
    img = _frame()
    draw_categories(img, [Category(0, "cat", 0.9), Category(1, "dog", 0.1)])
    assert img[:60, :80].any() and not img[120:, :].any()
    img2 = np.full((240, 320, 3), 200, np.uint8)
    draw_stats(img2, 29.7, {"pre": 1.5, "infer": 12.0})
    # The stats band is darkened in the top-right and the bottom-left is untouched.
    assert img2[2, 315].max() < 200
    assert (img2[200:, :100] == 200).all()


def test_rejects_non_bgr_images():
    with pytest.raises(UsageError):
        draw_detections(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(UsageError):
        draw_stats(np.zeros((10, 10, 3), np.float32), 1.0, {})


def test_tracking_overlay_draws_trails_lines_zones_and_ids():
    import numpy as np

    from edgecnn.camera import overlay_tracks
    from edgecnn.camera.overlay import draw_detections
    from edgecnn.runtime.types import Category, Detection, Rect

    img = np.zeros((240, 320, 3), np.uint8)
    overlay_tracks.draw_trails(img, {3: [(10, 200), (60, 200), (110, 200)]})
    assert img[200, 60].any() and not img[150, 60].any()
    overlay_tracks.draw_line(img, np.array([[160, 0], [160, 240]]),
                             {"name": "door", "in": {"a": 2}, "out": {}})
    assert tuple(img[100, 160]) == overlay_tracks.LINE_COLOR
    zone = np.array([[200, 20], [300, 20], [300, 120], [200, 120]])
    overlay_tracks.draw_zone(img, zone, {"name": "dock", "occupancy": {"a": 1}})
    assert tuple(img[70, 300]) == overlay_tracks.ZONE_COLOR
    plain, tagged = img.copy(), img.copy()
    box = Rect(20, 40, 80, 100)
    draw_detections(plain, [Detection(box, Category(0, "a", 0.9))])
    draw_detections(tagged, [Detection(box, Category(0, "a", 0.9), track_id=7)])
    assert (plain != tagged).any()  # the "#7" tag widens the label


def test_stats_band_renders_text_at_most_every_refresh_period():
    from edgecnn.camera.overlay import StatsBand

    band = StatsBand(refresh_s=0.25)
    img = np.full((240, 320, 3), 200, np.uint8)
    band.draw(img, 29.7, {"pre": 1.5}, now=10.0)
    first = band._text
    assert img[2, 315].max() < 200 and (img[200:, :100] == 200).all()
    assert img[:25, 200:].max() == 255            # the white text
    band.draw(np.full((240, 320, 3), 200, np.uint8), 55.1, {"pre": 0.5}, now=10.1)
    assert band._text == first                     # within the period: cached text
    band.draw(np.full((240, 320, 3), 200, np.uint8), 55.1, {"pre": 0.5}, now=10.3)
    assert band._text != first and "55.1 FPS" in band._text


def test_outline_grows_inwards_thickness_pixels():
    from edgecnn.camera.overlay import outline

    img = _frame()
    outline(img, 10, 20, 50, 60, (0, 255, 0), 2)
    for x, y in ((10, 40), (11, 40), (50, 40), (49, 40), (30, 20), (30, 21), (30, 60), (30, 59)):
        assert tuple(img[y, x]) == (0, 255, 0), (x, y)
    assert not img[40, 12:49].any() and not img[22:59, 30].any()   # inside
    assert not img[40, 9].any() and not img[40, 51].any()          # outside
