"""Detection training input: augmented pixels and boxes must stay aligned."""

import numpy as np
import pytest

from edgecnn.data.detect_pipeline import PAD_VALUE, AugmentConfig, augment_batch

SIZE = 128
NO_COLOUR = dict(saturation=(1.0, 1.0), contrast=(1.0, 1.0), brightness=0.0)


def _scene(boxes):
    """Grey images with one white rectangle per image at the given xyxy (continuous coords)."""
    images = np.full((len(boxes), SIZE, SIZE, 3), PAD_VALUE, np.uint8)
    for img, (x1, y1, x2, y2) in zip(images, boxes):
        img[y1:y2, x1:x2] = 255
    arr = np.asarray(boxes, np.float32)[:, None, :]
    return images, arr, np.zeros((len(boxes), 1), np.int32)


def _white_box(image):
    ys, xs = np.nonzero(image[..., 0] > 200)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_warped_rectangle_matches_its_transformed_box(flip):
    boxes = [(40, 30, 60, 50), (70, 80, 101, 95), (10, 50, 33, 90), (50, 50, 64, 80)]
    images, gt, classes = _scene(boxes)
    cfg = AugmentConfig(flip=flip, scale=(0.7, 1.4), translate=0.15, **NO_COLOUR)
    out, new_boxes, new_classes = augment_batch(images, gt, classes, cfg,
                                                np.random.default_rng(3))
    assert out.dtype == np.uint8 and out.shape == images.shape
    for img, box, cls in zip(out, new_boxes[:, 0], new_classes[:, 0]):
        assert cls == 0
        # bilinear edges blur by at most a pixel
        np.testing.assert_allclose(_white_box(img), box, atol=1.01)


def test_flip_mirrors_columns_exactly():
    images, gt, classes = _scene([(0, 10, 20, 30)])
    cfg = AugmentConfig(flip=1.0, scale=(1.0, 1.0), translate=0.0, **NO_COLOUR)
    out, boxes, _ = augment_batch(images, gt, classes, cfg, np.random.default_rng(0))
    np.testing.assert_array_equal(out[0], images[0][:, ::-1])
    np.testing.assert_allclose(boxes[0, 0], [SIZE - 20, 10, SIZE, 30])


def test_boxes_pushed_out_of_the_image_are_dropped():
    images, gt, classes = _scene([(0, 0, 16, 16), (56, 56, 72, 72)])
    gt = np.concatenate([gt[:1], gt[1:]], axis=1)[:1]          # both boxes in one image
    classes = np.zeros((1, 2), np.int32)
    cfg = AugmentConfig(flip=0.0, scale=(3.0, 3.0), translate=0.0, **NO_COLOUR)
    _, boxes, new_classes = augment_batch(images[:1], gt, classes, cfg,
                                          np.random.default_rng(0))
    assert new_classes[0].tolist() == [-1, 0]
    assert not boxes[0, 0].any()
    np.testing.assert_allclose(boxes[0, 1], [40, 40, 88, 88])


def test_padding_rows_stay_padding():
    images, gt, classes = _scene([(40, 30, 60, 50)])
    gt = np.concatenate([gt, np.zeros((1, 1, 4), np.float32)], axis=1)
    classes = np.array([[2, -1]], np.int32)
    _, boxes, new_classes = augment_batch(images, gt, classes, AugmentConfig(),
                                          np.random.default_rng(1))
    assert new_classes[0, 1] == -1 and not boxes[0, 1].any()


def test_colour_jitter_changes_pixels_within_range():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    boxes = np.zeros((4, 1, 4), np.float32)
    classes = np.full((4, 1), -1, np.int32)
    cfg = AugmentConfig(flip=0.0, scale=(1.0, 1.0), translate=0.0)
    out, _, _ = augment_batch(images, boxes, classes, cfg, np.random.default_rng(5))
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - images.astype(int)).mean() > 2


def test_batches_are_reproducible_for_a_seed():
    pytest.importorskip("tensorflow")
    from edgecnn.data.detect_pipeline import DetectionArrays, batches

    images, gt, classes = _scene([(40, 30, 60, 50)] * 8)
    arrays = DetectionArrays(images, gt, classes, np.zeros((8, 4), np.float32),
                             np.full((8, 2), SIZE, np.int32))
    first = [next(iter(batches(arrays, 4, 7, AugmentConfig())[0])) for _ in range(2)]
    for a, b in zip(*first):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert first[0][0].dtype.name == "float32"


def _box_mask(boxes, classes, size):
    mask = np.zeros((size, size), bool)
    for (x1, y1, x2, y2), c in zip(boxes, classes):
        if c >= 0:
            mask[int(round(y1)):int(round(y2)), int(round(x1)):int(round(x2))] = True
    return mask


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_mosaic_boxes_cover_exactly_the_white_pixels(scale):
    from edgecnn.data.mosaic import mosaic_batch

    boxes = [(10, 10, 50, 40), (70, 80, 120, 125), (0, 60, 30, 128), (90, 5, 128, 45),
             (40, 40, 90, 90), (5, 100, 60, 120)]
    images, gt, classes = _scene(boxes)
    rng = np.random.default_rng(4)
    idx = np.arange(3)
    canvas, b, c, areas = mosaic_batch(images[:3], gt[:3], classes[:3], idx, images, gt,
                                       classes, 1.0, 4, rng)
    assert canvas.shape == (3, 2 * SIZE, 2 * SIZE, 3) and b.shape == (3, 4, 4)
    cfg = AugmentConfig(flip=0.0, scale=(scale, scale), translate=0.0, **NO_COLOUR)
    out, nb, nc = augment_batch(canvas, b, c, cfg, rng, out_size=SIZE, full_areas=areas)
    assert out.shape == (3, SIZE, SIZE, 3)
    for img, bb, cc in zip(out, nb, nc):
        white = img[..., 0] > 200
        boxed = _box_mask(bb, cc, SIZE)
        # every white pixel is inside a kept box, and kept boxes are white (edges blur ~1 px)
        assert (white & ~boxed).sum() <= 0.03 * max(1, white.sum()) + 2 * SIZE
        assert (boxed & ~white).sum() <= 0.1 * max(1, boxed.sum()) + 4 * SIZE


def test_mosaic_off_centres_the_image_unchanged():
    from edgecnn.data.mosaic import mosaic_batch

    images, gt, classes = _scene([(40, 30, 60, 50), (10, 10, 30, 20)])
    canvas, b, c, _ = mosaic_batch(images, gt, classes, np.arange(2), images, gt, classes, 0.0,
                                   3, np.random.default_rng(0))
    cfg = AugmentConfig(flip=0.0, scale=(1.0, 1.0), translate=0.0, **NO_COLOUR)
    out, nb, nc = augment_batch(canvas, b, c, cfg, np.random.default_rng(0), out_size=SIZE)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_allclose(nb[:, 0], gt[:, 0])
    assert nc[:, 0].tolist() == [0, 0] and (nc[:, 1:] == -1).all()


def test_mosaic_batches_have_room_for_four_images_boxes():
    pytest.importorskip("tensorflow")
    from edgecnn.data.detect_pipeline import DetectionArrays, batches

    images, gt, classes = _scene([(40, 30, 60, 50)] * 8)
    arrays = DetectionArrays(images, gt, classes, np.zeros((8, 4), np.float32),
                             np.full((8, 2), SIZE, np.int32))
    ds, steps = batches(arrays, 4, 7, AugmentConfig(mosaic=1.0, mosaic_off_epochs=1),
                        run_epochs=2)
    it = iter(ds)
    epoch1 = [next(it) for _ in range(steps)]
    epoch2 = [next(it) for _ in range(steps)]
    assert epoch1[0][1].shape == (4, 4, 4)
    boxes_per_image = [int((c.numpy() >= 0).sum(axis=1).max()) for _, _, c in epoch1 + epoch2]
    assert max(boxes_per_image[:steps]) > 1          # mosaics show several scenes' boxes
    assert max(boxes_per_image[steps:]) == 1         # the last epoch is plain images


def test_mixup_blends_pairs_and_keeps_both_images_boxes():
    from edgecnn.data.detect_pipeline import mixup_batch

    images, gt, classes = _scene([(10, 10, 30, 30), (60, 60, 90, 100)])
    images[1, :, :, :] = 0
    images[1, 60:100, 60:90] = 255
    out, boxes, cls = mixup_batch(images, gt, classes, 1.0, np.random.default_rng(0))
    assert boxes.shape == (2, 2, 4) and cls.shape == (2, 2)
    # both images got the other one: its boxes in the second half, pixels near half and half
    np.testing.assert_allclose(boxes[0, 1], gt[1, 0])
    np.testing.assert_allclose(boxes[1, 1], gt[0, 0])
    assert (cls >= 0).all()
    blend = out[0, 0, 0, 0] / 255.0
    assert 0.3 < blend / (PAD_VALUE / 255.0) < 0.7
    none, _, none_cls = mixup_batch(images, gt, classes, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(none, images)
    assert (none_cls[:, 1] == -1).all()
