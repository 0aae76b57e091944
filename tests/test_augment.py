"""Augmentation primitives checked against pixels the tests draw themselves.

The independent truth is the image: each object is a filled rectangle of a unique colour,
so after any warp the tight box around that colour is where the label must be.
"""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from yolo_core.data.augment import (augment_hsv, box_candidates, flip_lr, flip_ud, letterbox, mixup,
                                    random_perspective, xywhn2xyxy, xyxy2xywhn)
from yolo_core.data.mosaic import build_mosaic, mosaic_centre_range

BG = (90, 90, 90)
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)]  # BGR, one per object/image


def colour_mask(im: np.ndarray, colour, tol: int = 60) -> np.ndarray:
    """Pixels that are mostly `colour` (interpolated edge pixels that are more background are not)."""
    return (np.abs(im.astype(int) - np.array(colour)).max(-1) < tol)


def tight_box(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def drawn(h: int, w: int, box: tuple[int, int, int, int], colour) -> np.ndarray:
    im = np.full((h, w, 3), BG, np.uint8)
    x1, y1, x2, y2 = box
    im[y1:y2, x1:x2] = colour
    return im


# ---------------------------------------------------------------- letterbox

@pytest.mark.parametrize("hw, pad, content", [
    ((100, 200), (0.0, 16.0), (slice(16, 48), slice(0, 64))),    # landscape: bands top and bottom
    ((200, 100), (16.0, 0.0), (slice(0, 64), slice(16, 48))),    # portrait: bands left and right
])
def test_letterbox_square(hw, pad, content):
    im = np.full((*hw, 3), 50, np.uint8)
    out, ratio, p = letterbox(im, 64, auto=False)
    assert out.shape == (64, 64, 3)
    assert ratio == (0.32, 0.32)
    assert p == pad
    inside = np.zeros((64, 64), bool)
    inside[content] = True
    assert (out[inside] == 50).all()
    assert (out[~inside] == 114).all()


def test_letterbox_odd_padding_and_no_scaleup():
    im = np.full((90, 128, 3), 50, np.uint8)
    out, ratio, (dw, dh) = letterbox(im, 64, auto=False)
    assert out.shape == (64, 64, 3) and (dw, dh) == (0.0, 9.5)
    col = out[:, 30, 0]
    assert (col[:9] == 114).all() and (col[9:54] == 50).all() and (col[54:] == 114).all()  # 9 top, 10 bottom

    small = np.full((32, 48, 3), 50, np.uint8)
    out, ratio, (dw, dh) = letterbox(small, 64, auto=False, scaleup=False)
    assert ratio == (1.0, 1.0) and (dw, dh) == (8.0, 16.0) and out.shape == (64, 64, 3)
    assert (out[16:48, 8:56] == 50).all()

    out, _, _ = letterbox(im, (64, 96), auto=False)  # a rect batch shape (h, w)
    assert out.shape == (64, 96, 3)


# ---------------------------------------------------------------- boxes

def test_box_format_round_trip_and_clip():
    xywhn = np.array([[0.5, 0.25, 0.2, 0.1], [0.1, 0.9, 0.4, 0.4]])
    xyxy = xywhn2xyxy(xywhn, 200, 100, padw=3, padh=5)
    np.testing.assert_allclose(xyxy[0], [83, 25, 123, 35])  # 200*(0.5-0.1)+3, 100*(0.25-0.05)+5
    back = xyxy2xywhn(xyxy - [3, 5, 3, 5], 200, 100)
    np.testing.assert_allclose(back, xywhn)
    clipped = xyxy2xywhn(np.array([[-10.0, -10, 250, 50]]), 200, 100, clip=True, eps=1e-3)
    assert clipped[0, 0] - clipped[0, 2] / 2 == pytest.approx(0)
    assert clipped[0, 0] + clipped[0, 2] / 2 < 1.0


def test_box_candidates_rules():
    before = np.array([[0, 0, 10, 10]] * 4, float).T
    after = np.array([[0, 0, 10, 10],     # kept
                      [0, 0, 2, 10],      # 2 px wide: not > wh_thr
                      [0, 0, 3, 3],       # 9 % of the area
                      [0, 0, 3, 400]], float).T  # aspect ratio 133
    assert box_candidates(before, after).tolist() == [True, False, False, False]


# ---------------------------------------------------------------- random_perspective

@pytest.mark.parametrize("kw", [
    dict(degrees=0, translate=0.1, scale=0.5, shear=0, perspective=0.0),
    dict(degrees=10, translate=0.1, scale=0.5, shear=0, perspective=0.0),
    dict(degrees=10, translate=0.2, scale=0.3, shear=5, perspective=0.0005),
])
def test_random_perspective_boxes_follow_objects(kw):
    box = (30, 40, 70, 80)
    im = drawn(128, 128, box, COLOURS[0])
    kept = 0
    for seed in range(12):
        targets = np.array([[3, *box]], np.float32)
        out, t = random_perspective(im, targets.copy(), rng=random.Random(seed), **kw)
        assert out.shape == im.shape
        truth = tight_box(colour_mask(out, COLOURS[0]))
        if len(t) == 0:  # dropped: the object must be (almost) gone from the image
            assert truth is None or (truth[2] - truth[0]) * (truth[3] - truth[1]) < 0.1 * 40 * 40 * 0.25
            continue
        kept += 1
        assert t[0, 0] == 3
        assert truth is not None
        np.testing.assert_allclose(t[0, 1:], truth, atol=1.5)
        x1, y1, x2, y2 = np.round(t[0, 1:]).astype(int)
        inside = colour_mask(out[y1:y2, x1:x2], COLOURS[0]).mean()
        assert inside > (0.85 if kw["degrees"] == 0 else 0.5)
    assert kept >= 8


class ScriptedRng:
    """Returns scripted draws for uniform(), in random_perspective's call order:
    perspective x, y; angle; scale; shear x, y; translate x, y (as fractions)."""

    def __init__(self, values):
        self.values = list(values)

    def uniform(self, lo, hi):
        return self.values.pop(0)


def test_random_perspective_known_scale_and_area_rule():
    im = np.full((100, 100, 3), 50, np.uint8)
    targets = np.array([[0, 40, 0, 60, 27], [1, 40, 0, 60, 35], [2, 45, 45, 55, 55]], np.float32)
    out, t = random_perspective(im, targets.copy(), scale=1, rng=ScriptedRng([0, 0, 0, 2.0, 0, 0, 0.5, 0.5]))
    # zoom x2 about the centre: y' = 2 (y - 50) + 50. Box 0 keeps 40 x 4 px = 160 px, which is 30 % of its
    # 540 px but only 7 % of its scaled 2160 px: dropped. Box 1 keeps 800 of 2800 (29 %): kept.
    assert t[:, 0].tolist() == [1, 2]
    np.testing.assert_allclose(t[:, 1:], [[30, 0, 70, 20], [40, 40, 60, 60]], atol=1e-4)
    assert (out == 50).all()


def test_random_perspective_mosaic_border_gives_half_size():
    im = np.full((128, 128, 3), 50, np.uint8)
    out, t = random_perspective(im, np.zeros((0, 5), np.float32), degrees=0, translate=0, scale=0, shear=0,
                                border=(-32, -32), rng=random.Random(0))
    assert out.shape == (64, 64, 3) and t.shape == (0, 5)
    assert (out == 50).all()  # centre crop of a uniform image, no border showing


# ---------------------------------------------------------------- mosaic

def _mosaic_items():
    sizes = [(64, 48), (48, 64), (64, 64), (40, 64)]  # (h, w), long side s = 64
    boxes = [(5, 5, 30, 40), (30, 10, 60, 30), (20, 20, 44, 44), (0, 25, 20, 40)]
    items = []
    for (h, w), (x1, y1, x2, y2), c in zip(sizes, boxes, COLOURS):
        im = drawn(h, w, (x1, y1, x2, y2), c)
        lab = np.array([[COLOURS.index(c), (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]],
                       np.float32)
        items.append((im, lab))
    return items


@pytest.mark.parametrize("xc, yc", [(64, 64), (32, 32), (96, 96), (40, 90), (95, 33)])
def test_mosaic_labels_cover_their_objects(xc, yc):
    s = 64
    lo, hi = mosaic_centre_range(s)
    assert (lo, hi) == (32, 96)
    img4, labels = build_mosaic(_mosaic_items(), s, xc, yc)
    assert img4.shape == (128, 128, 3) and labels.shape == (4, 5)
    assert (labels[:, 1:] >= 0).all() and (labels[:, 1:] <= 2 * s).all()
    for cls, *box in labels:
        truth = tight_box(colour_mask(img4, COLOURS[int(cls)], tol=1))
        if truth is None:  # cropped away entirely: the clipped label has no area
            assert box[2] - box[0] == 0 or box[3] - box[1] == 0
        else:
            np.testing.assert_allclose(box, truth, atol=1e-4)
    # each image lands in its quadrant: the pixel just up-left of the centre belongs to image 0 or the canvas
    assert tuple(img4[yc - 1, xc - 1]) in (BG, COLOURS[0], (114, 114, 114))


def test_mosaic_then_perspective_stays_inside():
    s = 64
    img4, labels = build_mosaic(_mosaic_items(), s, 70, 50)
    out, t = random_perspective(img4, labels, degrees=0, translate=0.1, scale=0.5, shear=0,
                                border=(-s // 2, -s // 2), rng=random.Random(1))
    assert out.shape == (64, 64, 3)
    assert (t[:, 1:] >= 0).all() and (t[:, [1, 3]] <= 64).all() and (t[:, [2, 4]] <= 64).all()
    for cls, *box in t:
        truth = tight_box(colour_mask(out, COLOURS[int(cls)]))
        assert truth is not None
        np.testing.assert_allclose(box, truth, atol=1.5)


# ---------------------------------------------------------------- colour, flips, mixup

def test_augment_hsv_matches_direct_arithmetic():
    rs = np.random.RandomState(0)
    hsv_in = np.stack([np.tile(np.arange(180), (8, 1)), rs.randint(0, 256, (8, 180)), rs.randint(0, 256, (8, 180))], -1)
    im = cv2.cvtColor(hsv_in.astype(np.uint8), cv2.COLOR_HSV2BGR)  # every hue, so the mod-180 wrap is hit
    gains = np.array([0.3, 0.7, 0.4])
    r = np.random.RandomState(4).uniform(-1, 1, 3) * gains + 1
    assert r[0] > 1.05
    hsv = cv2.cvtColor(im, cv2.COLOR_BGR2HSV).astype(np.float64)
    hsv[..., 0] = (hsv[..., 0] * r[0]) % 180
    hsv[..., 1:] = np.clip(hsv[..., 1:] * r[1:], 0, 255)
    expected = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)

    out = im.copy()
    augment_hsv(out, *gains, nprng=np.random.RandomState(4))
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, im)

    same = im.copy()
    augment_hsv(same, 0, 0, 0, nprng=np.random.RandomState(4))
    np.testing.assert_array_equal(same, im)


def test_flips_mirror_image_and_labels():
    box = (10, 5, 30, 20)  # in a 40 x 64 (h, w) image
    im = drawn(40, 64, box, COLOURS[1])
    lab = xyxy2xywhn(np.array([[*box]], float), 64, 40)
    labels = np.concatenate([[[1]], lab], 1)

    out, lr = flip_lr(im, labels)
    assert lr[0, 1] == pytest.approx(1 - labels[0, 1]) and (lr[0, 2:] == labels[0, 2:]).all()
    truth = tight_box(colour_mask(np.ascontiguousarray(out), COLOURS[1], tol=1))
    np.testing.assert_allclose(xywhn2xyxy(lr[:, 1:], 64, 40)[0], truth)

    out, ud = flip_ud(im, labels)
    assert ud[0, 2] == pytest.approx(1 - labels[0, 2]) and ud[0, 1] == labels[0, 1]
    truth = tight_box(colour_mask(np.ascontiguousarray(out), COLOURS[1], tol=1))
    np.testing.assert_allclose(xywhn2xyxy(ud[:, 1:], 64, 40)[0], truth)


def test_mixup_blends_and_keeps_both_label_sets():
    a, b = np.full((8, 8, 3), 200, np.uint8), np.full((8, 8, 3), 0, np.uint8)
    la, lb = np.ones((2, 5), np.float32), np.zeros((1, 5), np.float32)
    r = np.random.RandomState(5).beta(32.0, 32.0)
    im, lab = mixup(a, la, b, lb, nprng=np.random.RandomState(5))
    assert im.dtype == np.uint8 and (im == int(200 * r)).all()
    assert lab.shape == (3, 5)
