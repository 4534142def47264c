"""Synthetic scenes, the YOLO dataset writer and the synthetic video round trip."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error
from edgecnn.data.detection import load_detection_dataset
from edgecnn.data.synth import DEFAULT_CLASSES, make_synthetic_dataset, render_scene
from edgecnn.data.synth_video import load_video_truth, truth_path, write_synthetic_video
from edgecnn.errors import UsageError


@pytest.mark.parametrize("variant", ["default", "heldout"])
def test_render_scene_is_deterministic_by_seed(variant):
    a = render_scene(np.random.default_rng(7), 128, variant=variant)
    b = render_scene(np.random.default_rng(7), 128, variant=variant)
    c = render_scene(np.random.default_rng(8), 128, variant=variant)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (128, 128, 3) and a[0].dtype == np.uint8
    assert a[1].dtype == np.float32 and a[2].dtype == np.int32


@pytest.mark.parametrize("variant", ["default", "heldout"])
def test_boxes_are_tight_around_the_drawn_object(variant):
    """On a flat background without effects, the changed pixels are exactly the object."""
    checked = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        image, boxes, classes = render_scene(rng, 128, variant=variant, max_objects=1,
                                             background="flat", clutter=False, effects=False)
        if len(boxes) == 0:
            continue
        background = image[0, 0].astype(int) if not _touches_corner(boxes[0]) else None
        if background is None:
            continue
        changed = np.abs(image.astype(int) - background).max(axis=2) > 8
        ys, xs = np.nonzero(changed)
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        # Anti-aliased edges may add a pixel of partial coverage around the id map.
        np.testing.assert_allclose(boxes[0], drawn, atol=1.01, err_msg=f"seed {seed}")
        assert 0 <= classes[0] < len(DEFAULT_CLASSES)
        checked += 1
    assert checked >= 40


def _touches_corner(box) -> bool:
    return box[0] <= 1 and box[1] <= 1


def test_masks_are_visible_pixels_and_boxes_enclose_them():
    classes_seen = set()
    for seed in range(30):
        image, boxes, classes, masks = render_scene(np.random.default_rng(seed), 160,
                                                    return_masks=True)
        assert len(masks) == len(boxes) == len(classes)
        if len(masks) > 1:  # occlusion: each pixel belongs to at most one object
            assert masks.sum(axis=0).max() == 1
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert 0 <= box[0] < box[2] <= 160 and 0 <= box[1] < box[3] <= 160
        classes_seen |= set(classes.tolist())
    assert classes_seen == {0, 1, 2, 3}


def test_object_colour_does_not_give_away_the_class():
    hues = {c: [] for c in range(len(DEFAULT_CLASSES))}
    for seed in range(120):
        image, boxes, classes, masks = render_scene(np.random.default_rng(seed), 96,
                                                    background="flat", clutter=False,
                                                    effects=False, return_masks=True)
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        for cls, mask in zip(classes, masks):
            hues[int(cls)].append(np.median(hsv[..., 0][mask]))
    for values in hues.values():
        # Every class shows up in a wide spread of hues (OpenCV hue is 0..179).
        assert len(values) > 20 and np.percentile(values, 90) - np.percentile(values, 10) > 90


def test_synthetic_dataset_round_trips_through_the_yolo_reader(tmp_path):
    yaml_a = make_synthetic_dataset(tmp_path / "a", n_train=12, n_val=4, imgsz=96, seed=3)
    make_synthetic_dataset(tmp_path / "b", n_train=12, n_val=4, imgsz=96, seed=3)
    assert yaml_a == tmp_path / "a" / "data.yaml"
    for rel in ("labels/train/000005.txt", "images/val/000002.jpg", "data.yaml"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    other = make_synthetic_dataset(tmp_path / "c", n_train=12, n_val=4, imgsz=96, seed=4)
    assert (other.parent / "images/val/000002.jpg").read_bytes() != (
        tmp_path / "a/images/val/000002.jpg").read_bytes()

    ds = load_detection_dataset(yaml_a)
    assert ds.names == DEFAULT_CLASSES
    assert len(ds.train) == 12 and len(ds.val) == 4
    assert ds.report.ok, ds.report.counts  # backgrounds (info) are the only entries allowed
    assert all((s.width, s.height) == (96, 96) for s in ds.train + ds.val)
    # The labels read back are the boxes the renderer produced (YOLO text keeps 6 decimals).
    rng = np.random.default_rng([3, 0, 0, 5])
    _, boxes, classes = render_scene(rng, 96)
    np.testing.assert_allclose(ds.train[5].boxes, boxes, atol=1e-3)
    np.testing.assert_array_equal(ds.train[5].classes, classes)


def test_heldout_variant_differs_and_is_reproducible(tmp_path):
    a = make_synthetic_dataset(tmp_path / "h", 3, 0, imgsz=64, seed=0, variant="heldout")
    d = make_synthetic_dataset(tmp_path / "d", 3, 0, imgsz=64, seed=0)
    assert "variant heldout" in a.read_text() and "val:" not in a.read_text()
    assert (a.parent / "images/train/000000.jpg").read_bytes() != (
        d.parent / "images/train/000000.jpg").read_bytes()
    ds = load_detection_dataset(a, split_val=0.34)
    assert len(ds.train) == 2 and len(ds.val) == 1


def test_synth_command(tmp_path, run_cli):
    result = run_cli("data", "synth", tmp_path / "s", "--images", 6, "--val", 2, "--imgsz", 64,
                     "--seed", 1, "--classes", "circle,cross")
    assert result.exit_code == 0, result.err
    assert "wrote 8 images" in result.out
    assert len(list((tmp_path / "s/images/train").glob("*.jpg"))) == 6
    assert len(list((tmp_path / "s/labels/val").glob("*.txt"))) == 2
    ds = load_detection_dataset(tmp_path / "s" / "data.yaml")
    assert ds.names == ("circle", "cross")
    assert_one_line_error(run_cli("data", "synth", tmp_path / "t", "--classes", "circle,blob"),
                          "invalid synthetic classes", "circle")
    assert not (tmp_path / "t").exists()
    bad = run_cli("data", "synth", tmp_path / "t", "--variant", "nope")
    assert bad.exit_code == 2 and "nope" in bad.err
    # Regenerating over our own output is fine; a folder of someone's files is never replaced.
    again = run_cli("data", "synth", tmp_path / "s", "--images", 2, "--val", 0, "--imgsz", 64)
    assert again.exit_code == 0 and len(list((tmp_path / "s/images/train").glob("*"))) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    assert_one_line_error(run_cli("data", "synth", tmp_path / "mine", "--images", 2),
                          "did not write", "OUT")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_synth_does_not_leave_a_half_written_dataset(tmp_path, monkeypatch):
    import edgecnn.data.synth as synth

    calls = {"n": 0}
    real = synth.render_scene

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "render_scene", failing)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset(tmp_path / "x", 5, 0, imgsz=64)
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_synthetic_video_round_trip(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    truth = write_synthetic_video(path, frames=24, size=(160, 120), fps=12, seed=2, objects=3,
                                  speed=3.0)
    assert len(truth) == 24
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 24 and frames[0].shape == (120, 160, 3)
    names, loaded = load_video_truth(truth_path(path))
    assert names == DEFAULT_CLASSES and len(loaded) == 24
    for ours, theirs in zip(truth, loaded):
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=0.01)
        np.testing.assert_array_equal(ours.classes, theirs.classes)
        np.testing.assert_array_equal(ours.track_ids, theirs.track_ids)
    # Objects move smoothly: a track's box centre moves a few pixels per frame, not jumps.
    for prev, cur in zip(truth, truth[1:]):
        for tid in set(prev.track_ids.tolist()) & set(cur.track_ids.tolist()):
            a = prev.boxes[prev.track_ids.tolist().index(tid)]
            b = cur.boxes[cur.track_ids.tolist().index(tid)]
            assert np.abs((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2).max() < 10
    moved = np.abs(truth[0].boxes[0] - truth[-1].boxes[0]).max()
    assert moved > 5
    # Same seed, same video truth.
    again = write_synthetic_video(tmp_path / f"again{suffix}", frames=24, size=(160, 120),
                                  fps=12, seed=2, objects=3, speed=3.0)
    np.testing.assert_array_equal(again[23].boxes, truth[23].boxes)
    doc = json.loads(truth_path(path).read_text())
    assert doc["width"] == 160 and doc["fps"] == 12


def test_synthetic_video_rejects_unknown_container(tmp_path):
    with pytest.raises(UsageError, match="mp4"):
        write_synthetic_video(tmp_path / "clip.gif", frames=2)
    assert not (tmp_path / "clip.gif").exists()


def test_synthetic_video_cross_motion_occluders_and_line_truth(tmp_path):
    """Traffic mode: new track ids as objects leave and enter; pillars hide objects; the truth
    JSON records each line's crossings, direction by the side the centre moved to."""
    from edgecnn.data.synth_video import line_crossings

    path = tmp_path / "traffic.avi"
    truth = write_synthetic_video(path, frames=200, size=(320, 240), fps=20, seed=4, objects=3,
                                  speed=4.0, motion="cross", occluders=1, edges="lr",
                                  lines=[(160, 0, 160, 240)])
    ids = set()
    for ft in truth:
        ids |= set(ft.track_ids.tolist())
        assert ft.objects.shape == (3, 4)
        assert set(ft.track_ids.tolist()) <= set(ft.objects[:, 0].astype(int).tolist())
    assert len(ids) > 3  # objects that left were replaced by new tracks
    hidden = sum(len(ft.objects) - len(ft.track_ids) for ft in truth)
    assert hidden > 0
    doc = json.loads(truth_path(path).read_text())
    (line,) = doc["lines"]
    assert line["in"] + line["out"] == len(line["crossings"]) > 0
    # Each crossing: the object's true centre is on the other side after than before.
    for frame, tid, direction in line["crossings"]:
        before = [o for ft in truth[:frame] for o in ft.objects.tolist()
                  if o[0] == tid and tid in ft.track_ids][-1]
        after = [o for o in truth[frame].objects.tolist() if o[0] == tid][0]
        assert (after[2] > 160) == (direction == "out") and (before[2] > 160) != (after[2] > 160)
    names, loaded = load_video_truth(truth_path(path))
    np.testing.assert_allclose(loaded[50].objects, truth[50].objects, atol=0.01)
    assert line_crossings(loaded, (160, 0, 160, 240), names)["crossings"] == line["crossings"]
