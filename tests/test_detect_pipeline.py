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
