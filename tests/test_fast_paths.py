"""The speed-ups keep every number: each fast path against the straightforward one it replaces.

- the window-limited mosaic (paint only what the warp samples, skip unseen images) against
  the full 2s x 2s canvas warped by random_perspective;
- the CHW conversion through cv2.split against numpy's transpose;
- the dataset's mosaic items against a reference __getitem__ built from build_mosaic and
  random_perspective, for several hyp settings, with and without known image sizes;
- evaluate(coco=False) gives the same YOLO metrics as the full evaluation;
- model_facts' cache returns what counting returns, and a different architecture misses.
"""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from yolo_core.data.augment import (hwc_bgr_to_chw_rgb, perspective_matrix, random_perspective, source_window,
                                    warp_with_matrix)
from yolo_core.data.dataset import YOLODataset
from yolo_core.data.mosaic import build_mosaic, build_mosaic_window, mosaic_centre_range
from yolo_core.data.records import DatasetSplit, ImageRecord


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    rs = np.random.RandomState(seed)
    return cv2.resize(rs.randint(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8), (w, h))


HYPS = [dict(degrees=0, translate=0.1, scale=0.5, shear=0),        # YOLOv5's defaults
        dict(degrees=10, translate=0.2, scale=0.9, shear=5),
        dict(degrees=0, translate=0.0, scale=0.0, shear=0)]


@pytest.mark.parametrize("hyp", HYPS)
def test_window_mosaic_equals_full_canvas(hyp):
    s = 96
    shapes = [(96, 72), (60, 96), (96, 96), (40, 96)]
    images = [_textured(h, w, k) for k, (h, w) in enumerate(shapes)]
    labels = [np.array([[k, 0.5, 0.5, 0.3, 0.4], [1, 0.2, 0.3, 0.1, 0.2]], np.float32) for k in range(4)]
    lo, hi = mosaic_centre_range(s)
    skipped = 0
    for seed in range(40):
        rng = random.Random(seed)
        xc, yc = rng.randint(lo, hi), rng.randint(lo, hi)
        state = rng.getstate()
        full, lab_full = build_mosaic(list(zip(images, labels)), s, xc, yc)
        ref_img, ref_lab = random_perspective(full, lab_full, border=(-s // 2, -s // 2), rng=rng, **hyp)

        rng.setstate(state)
        M, scale, size = perspective_matrix((2 * s, 2 * s), border=(-s // 2, -s // 2), rng=rng, **hyp)
        window = source_window(M, size, (2 * s, 2 * s))
        loaded = []
        canvas = np.random.RandomState(seed).randint(0, 256, (2 * s, 2 * s, 3)).astype(np.uint8)  # garbage
        def load(k, rows):  # hands out only the rows asked for, as the disk cache does
            loaded.append(k)
            r1, r2 = rows if rows is not None else (0, shapes[k][0])
            return images[k][r1:r2], r1, shapes[k]

        canvas, lab = build_mosaic_window(shapes, labels, load, s, xc, yc, window, canvas)
        img, lab = warp_with_matrix(canvas, lab, M, scale, size, border=(-s // 2, -s // 2))
        np.testing.assert_array_equal(img, ref_img)
        np.testing.assert_array_equal(lab, ref_lab)
        skipped += 4 - len(loaded)
    if hyp["scale"] >= 0.5:
        assert skipped > 0  # the test did exercise images that were never loaded


def test_window_mosaic_trusts_the_pixels_over_a_wrong_size():
    s = 64
    images = [_textured(64, 48, k) for k in range(4)]
    labels = [np.zeros((0, 5), np.float32)] * 4
    full, _ = build_mosaic(list(zip(images, labels)), s, 70, 50)
    wrong = [(64, 48), (30, 30), (64, 48), (64, 48)]  # image 1's stated size is wrong
    canvas, _ = build_mosaic_window(wrong, labels, lambda k, rows: (images[k], 0, images[k].shape[:2]), s, 70, 50,
                                    (0, 0, 2 * s, 2 * s))
    np.testing.assert_array_equal(canvas, full)


def test_chw_conversion_equals_numpy_transpose():
    im = _textured(37, 53, 0)
    for x in (im, cv2.flip(im, 1), np.fliplr(im), im[::2]):
        np.testing.assert_array_equal(hwc_bgr_to_chw_rgb(x), np.ascontiguousarray(x.transpose(2, 0, 1)[::-1]))


class _Reference(YOLODataset):
    """__getitem__'s mosaic as written before the window optimisation: load the 4 images,
    build the full canvas, random_perspective."""

    def _load_mosaic(self, index):
        rng, hyp, s = self._rng, self.hyp, self.imgsz
        lo, hi = mosaic_centre_range(s)
        yc, xc = (int(rng.uniform(lo, hi)) for _ in range(2))
        indices = [index] + rng.choices(range(len(self)), k=3)
        rng.shuffle(indices)
        items, hw0 = [], None
        for i in indices:
            img, h0w0, _ = self.load_image(i)
            if i == index and hw0 is None:
                hw0 = h0w0
            items.append((img, self.labels[i]))
        img4, labels4 = build_mosaic(items, s, xc, yc)
        img4, labels4 = random_perspective(img4, labels4, degrees=hyp["degrees"], translate=hyp["translate"],
                                           scale=hyp["scale"], shear=hyp["shear"], perspective=hyp["perspective"],
                                           border=(-s // 2, -s // 2), rng=rng)
        return img4, labels4, hw0


@pytest.fixture(scope="module")
def jpeg_split(tmp_path_factory) -> DatasetSplit:
    folder = tmp_path_factory.mktemp("jpegs")
    rs = np.random.RandomState(0)
    records = []
    for i in range(10):
        h, w = (120, 160) if i % 3 else (150, 100)
        path = folder / f"{i}.jpg"
        cv2.imwrite(str(path), _textured(h, w, i))
        lab = np.column_stack([rs.randint(0, 3, 4), rs.uniform(0.3, 0.7, (4, 2)), rs.uniform(0.1, 0.3, (4, 2))])
        records.append(ImageRecord(str(path), i, lab.astype(np.float32), width=w if i != 4 else None,
                                   height=h if i != 4 else None))  # one image of unknown size
    return DatasetSplit("train", records, ["a", "b", "c"], [0, 1, 2])


@pytest.mark.parametrize("hyp", [{}, {"degrees": 10, "shear": 5, "mixup": 0.5},
                                 {"perspective": 0.001, "flipud": 0.5}, {"mosaic": 0.5}])
@pytest.mark.parametrize("cache,imgsz", [(None, 128), ("ram", 128), ("disk", 128), ("disk", 160)])
def test_dataset_items_equal_the_reference(jpeg_split, hyp, cache, imgsz, tmp_path):
    """(disk at 160 px: the images' long side, so the disk cache reads only the rows it needs)"""
    fast = YOLODataset(jpeg_split, imgsz, augment=True, hyp=hyp, cache=cache, cache_dir=tmp_path)
    ref = _Reference(jpeg_split, imgsz, augment=True, hyp=hyp, cache=cache, cache_dir=tmp_path)
    for i in range(len(fast)):
        for seed in (i, 100 + i):
            a, b = fast[(i, seed)], ref[(i, seed)]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2:] == b[2:]


def test_per_epoch_evaluation_without_coco_keeps_the_yolo_metrics(jpeg_split):
    from yolo_core import build_model
    from yolo_core.data.loader import build_dataloader
    from yolo_core.eval import evaluate

    torch.manual_seed(0)
    model = build_model("yolov5s", 3).eval()
    for conv in model.head.m:  # make the untrained model emit boxes above conf
        conv.bias.data.zero_()
    ds = YOLODataset(jpeg_split, 64, rect=True, batch_size=4, pad=0.5)
    from dataclasses import replace

    split = replace(jpeg_split, records=ds.records)
    full = evaluate(model, build_dataloader(ds, 4, shuffle=False), split)
    fast = evaluate(model, build_dataloader(ds, 4, shuffle=False), split, coco=False)
    assert full.predictions and not fast.predictions
    assert set(fast.metrics) == {"precision", "recall", "map50_yolo", "map_yolo"}
    assert {k: full.metrics[k] for k in fast.metrics} == fast.metrics


def test_gflops_on_meta_equal_a_real_forward():
    import torch

    from yolo_core import build_model
    from yolo_core.models import facts

    m = build_model("yolov5n", 3)
    real = facts._count(m, torch.zeros(1, 3, 128, 96))
    assert real > 0 and facts.gflops(m, (128, 96)) == real
