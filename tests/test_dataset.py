"""YOLODataset, image caches and loaders on tiny images drawn by the test.

Objects are filled rectangles whose colour encodes their class, saved as PNG (lossless),
so every check compares labels against the pixels actually returned.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolo_core.data.dataset import YOLODataset, rect_batches
from yolo_core.data.image_cache import ImageReadError
from yolo_core.data.loader import build_dataloader
from yolo_core.data.records import DatasetSplit, ImageRecord

BG = 90
PALETTE_BGR = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255)]  # class -> colour
NO_AUG = dict(hsv_h=0, hsv_s=0, hsv_v=0, degrees=0, translate=0, scale=0, shear=0, perspective=0,
              flipud=0, fliplr=0, mosaic=0, mixup=0)

# (h, w, [(cls, x1, y1, x2, y2), ...]) in original pixels; one image has no objects
LAYOUT = [
    (96, 128, [(0, 10, 10, 60, 50), (1, 70, 40, 120, 90)]),
    (128, 96, [(2, 20, 30, 80, 100)]),
    (80, 80, [(3, 5, 5, 45, 70)]),
    (75, 130, [(4, 33, 11, 101, 61)]),   # long side 130: int(w0 * r) truncation path
    (96, 128, []),
    (64, 112, [(0, 60, 8, 104, 56), (2, 4, 20, 40, 60)]),
]


def _write_set(folder: Path) -> DatasetSplit:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (h, w, objs) in enumerate(LAYOUT):
        im = np.full((h, w, 3), BG, np.uint8)
        labels = []
        for c, x1, y1, x2, y2 in objs:
            im[y1:y2, x1:x2] = PALETTE_BGR[c]
            labels.append([c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])
        path = folder / f"{i}.png"
        cv2.imwrite(str(path), im)
        records.append(ImageRecord(str(path), 100 + i, np.array(labels, np.float32).reshape(-1, 5)))
    return DatasetSplit("train", records, [f"c{k}" for k in range(5)], list(range(5)))


@pytest.fixture()
def split(tmp_path) -> DatasetSplit:
    return _write_set(tmp_path / "images")


def _bgr(img: torch.Tensor) -> np.ndarray:
    """Back to HWC BGR to compare with the drawn colours."""
    return np.ascontiguousarray(img.numpy().transpose(1, 2, 0)[..., ::-1])


def _pixel_boxes(labels: torch.Tensor, h: int, w: int) -> np.ndarray:
    xc, yc, bw, bh = labels[:, 2:6].numpy().T.astype(float)
    return np.stack([(xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h], 1)


def _mask(im: np.ndarray, c: int, tol: int = 60) -> np.ndarray:
    return np.abs(im.astype(int) - np.array(PALETTE_BGR[c])).max(-1) < tol


def _check_labels_on_objects(img: torch.Tensor, labels: torch.Tensor, min_inside: float = 0.5,
                             outside: str = "strict") -> None:
    """Each box is mostly its class colour, and no pixel of a colour lies outside that class's boxes.

    outside="border" allows uncovered pieces that touch the image border (objects cut there
    whose remaining area box_candidates found too small); "none" skips that check.
    """
    im = _bgr(img)
    h, w = im.shape[:2]
    boxes = _pixel_boxes(labels, h, w)
    for c in range(len(PALETTE_BGR)):
        m = _mask(im, c)
        covered = np.zeros((h, w), bool)
        for (x1, y1, x2, y2), cls in zip(boxes, labels[:, 1].int().tolist()):
            if cls != c:
                continue
            xi1, yi1, xi2, yi2 = int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))
            assert m[yi1:yi2, xi1:xi2].mean() > min_inside, f"class {c} box {x1, y1, x2, y2} not on its object"
            covered[max(yi1 - 2, 0):yi2 + 2, max(xi1 - 2, 0):xi2 + 2] = True
        stray = m & ~covered
        if outside == "strict":
            assert not stray.any(), f"class {c} pixels outside its boxes"
        elif outside == "border":
            n, comp = cv2.connectedComponents(stray.astype(np.uint8))
            for k in range(1, n):
                ys, xs = np.nonzero(comp == k)
                assert ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1, \
                    f"class {c}: an uncut piece of object has no box"


# ---------------------------------------------------------------- item format

def test_item_types_and_shapes_plain(split):
    ds = YOLODataset(split, 64)
    assert ds.records is split.records and len(ds) == 6 and ds.batch_shapes is None
    for i in range(len(ds)):
        img, labels, index, shapes = ds[i]
        assert img.dtype == torch.uint8 and img.shape == (3, 64, 64) and img.is_contiguous()
        assert labels.dtype == torch.float32 and labels.shape == (len(LAYOUT[i][2]), 6)
        assert index == i and isinstance(index, int)
        (h0, w0), ((gh, gw), (pw, ph)) = shapes
        assert (h0, w0) == LAYOUT[i][:2]
        assert all(isinstance(v, float) for v in (gh, gw, pw, ph))
        if len(labels):
            assert (labels[:, 0] == 0).all() and (labels[:, 2:] >= 0).all() and (labels[:, 2:] <= 1).all()
        _check_labels_on_objects(img, labels, min_inside=0.9)
    img, _, _, _ = ds[0]  # RGB order: class 0 is pure red, its centre pixel has R high and B low
    cy, cx = 15, 17
    assert img[0, cy, cx] > 200 and img[2, cy, cx] < 50


def test_item_types_augmented_and_collate(split):
    ds = YOLODataset(split, 64, augment=True)
    batch = [ds[(i, 1000 + i)] for i in range(len(ds))]
    for img, labels, index, shapes in batch:
        assert img.shape == (3, 64, 64) and img.dtype == torch.uint8 and img.is_contiguous()
        assert labels.dtype == torch.float32 and labels.shape[1] == 6
        assert shapes == (LAYOUT[index][:2], ((1.0, 1.0), (0.0, 0.0)))  # mosaic (p = 1.0)
    imgs, targets, indices, shapes = YOLODataset.collate_fn(batch)
    assert imgs.shape == (6, 3, 64, 64) and imgs.dtype == torch.uint8
    assert targets.shape == (sum(len(b[1]) for b in batch), 6)
    assert targets[:, 0].tolist() == [float(i) for i, b in enumerate(batch) for _ in range(len(b[1]))]
    assert indices == list(range(6)) and len(shapes) == 6


def test_zero_label_image(split):
    for aug, hyp in ((False, None), (True, {**NO_AUG, "translate": 0.1, "scale": 0.5})):
        img, labels, _, _ = YOLODataset(split, 64, augment=aug, hyp=hyp)[4]
        assert labels.shape == (0, 6) and img.shape == (3, 64, 64)


# ---------------------------------------------------------------- augmentation keeps labels on objects

@pytest.mark.parametrize("geometry, outside", [
    ({}, "none"),                                # scale-low defaults: scaled, translated
    ({"translate": 0, "scale": 0}, "border"),    # a pure centre crop: every cut is at the border
    ({"degrees": 10, "shear": 3}, "none"),
])
def test_mosaic_items_labels_on_objects(split, geometry, outside):
    ds = YOLODataset(split, 128, augment=True, hyp={"hsv_h": 0, "hsv_s": 0, "hsv_v": 0, **geometry})
    n_labels = 0
    for k in range(12):
        img, labels, _, _ = ds[(k % len(ds), k)]
        assert img.shape == (3, 128, 128)
        assert (labels[:, 2:] > 0).all() and (labels[:, 2:] <= 1).all()
        _check_labels_on_objects(img, labels, min_inside=0.5 if not geometry.get("degrees") else 0.25,
                                 outside=outside)
        n_labels += len(labels)
    assert n_labels > 12


def test_letterbox_path_with_perspective_labels_on_objects(split):
    ds = YOLODataset(split, 128, augment=True, hyp={**NO_AUG, "degrees": 5, "translate": 0.1, "scale": 0.3})
    for k in range(8):
        img, labels, index, shapes = ds[(k % len(ds), k)]
        assert shapes[0] == LAYOUT[index][:2] and shapes[1] != ((1.0, 1.0), (0.0, 0.0))
        _check_labels_on_objects(img, labels)


def test_fliplr_mirrors_image_and_x(split):
    ds0 = YOLODataset(split, 64, augment=True, hyp={"fliplr": 0.0})
    ds1 = YOLODataset(split, 64, augment=True, hyp={"fliplr": 1.0})
    for k in range(4):
        img0, lab0, _, _ = ds0[(k, 77 + k)]
        img1, lab1, _, _ = ds1[(k, 77 + k)]
        assert torch.equal(img1, img0.flip(-1))
        assert torch.allclose(lab1[:, 2], 1 - lab0[:, 2]) and torch.equal(lab1[:, [0, 1, 3, 4, 5]],
                                                                            lab0[:, [0, 1, 3, 4, 5]])


def test_hsv_changes_colours_not_boxes(split):
    plain = YOLODataset(split, 64, augment=True, hyp={"hsv_h": 0, "hsv_s": 0, "hsv_v": 0})
    hsv = YOLODataset(split, 64, augment=True)
    for k in range(4):
        img0, lab0, _, _ = plain[(k, 5 + k)]
        img1, lab1, _, _ = hsv[(k, 5 + k)]
        assert torch.equal(lab0, lab1)
        assert not torch.equal(img0, img1)
        grey = (img0 == 114).all(0)  # the canvas grey changes value but stays grey: same geometry
        assert (img1[0][grey] == img1[1][grey]).all() and (img1[1][grey] == img1[2][grey]).all()


# ---------------------------------------------------------------- rect batches and scale back

def test_rect_batch_shapes_formula():
    _, _, shapes = rect_batches(np.array([[480, 640]] * 2), 2, 640, 32, 0.5)  # 4:3 landscape, val pad
    assert shapes.tolist() == [[512, 672]]
    _, _, shapes = rect_batches(np.array([[480, 640]]), 1, 640, 32, 0.0)  # train pad
    assert shapes.tolist() == [[480, 640]]
    hw = np.array([[640, 480], [480, 640], [500, 500], [640, 480], [480, 640]])  # mixed
    order, bi, shapes = rect_batches(hw, 2, 640, 32, 0.5)
    ar = hw[order, 0] / hw[order, 1]
    assert (np.diff(ar) >= 0).all() and bi.tolist() == [0, 0, 1, 1, 2]
    assert shapes.tolist() == [[512, 672], [672, 672], [672, 512]]


def test_rect_dataset_sorts_records_without_reading_images(tmp_path):
    sizes = [(480, 640), (640, 480), (480, 640), (640, 480)]  # (h, w), files do not exist
    recs = [ImageRecord(str(tmp_path / f"missing{i}.jpg"), i, np.array([[i, .5, .5, .2, .2]], np.float32),
                        width=w, height=h) for i, (h, w) in enumerate(sizes)]
    ds = YOLODataset(DatasetSplit("val", recs, ["a"] * 4, [0] * 4), 640, rect=True, batch_size=2, pad=0.5)
    assert [r.image_id for r in ds.records] == [0, 2, 1, 3]
    assert ds.batch_shapes.tolist() == [[512, 672], [672, 512]]
    assert [int(lb[0, 0]) for lb in ds.labels] == [0, 2, 1, 3]
    with pytest.raises(ImageReadError, match="missing0.jpg"):
        ds[0]


@pytest.mark.parametrize("rect", [False, True])
def test_shapes_scale_back_to_original(split, rect):
    ds = YOLODataset(split, 64, rect=rect, batch_size=2, pad=0.5 if rect else 0.0)
    for i in range(len(ds)):
        img, labels, index, shapes = ds[i]
        rec = ds.records[index]
        if rect:
            assert tuple(img.shape[1:]) == tuple(ds.batch_shapes[ds.batch[i]])
        (h0, w0), ((gh, gw), (padw, padh)) = shapes
        boxes = _pixel_boxes(labels, img.shape[1], img.shape[2])
        # per-axis gains: v7.0's int() resize can make h/h0 and w/w0 differ by a pixel's worth
        back = (boxes - [padw, padh, padw, padh]) / [gw, gh, gw, gh]
        truth = [(x1, y1, x2, y2) for _, x1, y1, x2, y2 in LAYOUT[rec.image_id - 100][2]]
        np.testing.assert_allclose(back, np.array(truth, float).reshape(-1, 4), atol=1.0)


# ---------------------------------------------------------------- caches and errors

def test_disk_cache_writes_npy_and_is_reused(split):
    first = YOLODataset(split, 64, cache="disk")
    for r in split.records:
        npy = Path(r.path).with_suffix(".npy")
        assert npy.is_file()
        np.testing.assert_array_equal(np.load(npy), cv2.imread(r.path))
    expected = [first[i][0] for i in range(len(first))]
    for r in split.records:  # the second dataset can only get its pixels from the .npy files
        os.unlink(r.path)
    second = YOLODataset(split, 64, cache="disk")
    for i in range(len(second)):
        assert torch.equal(second[i][0], expected[i])
    assert not list(Path(split.records[0].path).parent.glob("*.tmp"))


def test_disk_cache_dir_and_ram_cache(split, tmp_path):
    plain = YOLODataset(split, 64)
    cached = YOLODataset(split, 64, cache="disk", cache_dir=tmp_path / "npy")
    assert len(list((tmp_path / "npy").glob("*.npy"))) == len(split.records)
    assert not list(Path(split.records[0].path).parent.glob("*.npy"))
    ram = YOLODataset(split, 64, cache="ram")
    assert all(im is not None for im in ram.store.ims)
    for i in range(len(plain)):
        assert torch.equal(plain[i][0], cached[i][0]) and torch.equal(plain[i][0], ram[i][0])


def test_load_image_resizes_long_side_like_v70(split):
    for augment, interp in ((False, cv2.INTER_AREA), (True, cv2.INTER_LINEAR)):
        ds = YOLODataset(split, 64, augment=augment)
        for i, (h0, w0, _) in enumerate(LAYOUT):
            im, hw0, hw = ds.load_image(i)
            r = 64 / max(h0, w0)
            expected = cv2.resize(cv2.imread(split.records[i].path), (int(w0 * r), int(h0 * r)), interpolation=interp)
            assert hw0 == (h0, w0) and hw == expected.shape[:2]
            np.testing.assert_array_equal(im, expected)
    big = YOLODataset(split, 256)  # enlarging always interpolates linearly
    im, _, _ = big.load_image(2)
    np.testing.assert_array_equal(im, cv2.resize(cv2.imread(split.records[2].path), (256, 256),
                                                 interpolation=cv2.INTER_LINEAR))


def test_ram_cache_memory_check(split, monkeypatch, caplog):
    import yolo_core.data.image_cache as ic

    assert ic.ram_bytes_needed(["a", "b"], 320, [(480, 640), (640, 640)]) == 240 * 320 * 3 + 320 * 320 * 3
    monkeypatch.setattr(ic, "available_memory", lambda: 1000)
    with caplog.at_level("INFO", logger="yolo_core.data.image_cache"):
        ds = YOLODataset(split, 64, cache="ram")
    assert "needed" in caplog.text and "NOT be cached" in caplog.text
    assert ds.store.mode is None and all(im is None for im in ds.store.ims)
    assert ds[0][0].shape == (3, 64, 64)


def test_unreadable_image_names_the_file(tmp_path, caplog):
    """Undecodable images never raise mid-epoch (tests/test_bad_input_images.py); only a split
    where no image at all decodes does, naming the file."""
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    split = DatasetSplit("t", [ImageRecord(str(bad), 0, np.zeros((0, 5), np.float32), 64, 48)], ["a"], [0])
    with pytest.raises(ImageReadError, match="broken.jpg"):
        YOLODataset(split, 64, augment=True)[0]
    img, labels, _, _ = YOLODataset(split, 64, cache="disk")[0]  # evaluation: a blank image, counted
    assert img.shape == (3, 64, 64) and len(labels) == 0
    assert split.skipped == {"corrupt_image": 1} and "broken.jpg" in caplog.text


# ---------------------------------------------------------------- loaders and reproducibility

def _epochs(split, seed, workers=0, epochs=2, start_epoch=None):
    ds = YOLODataset(split, 64, augment=True)
    dl = build_dataloader(ds, 3, shuffle=True, workers=workers, seed=seed)
    if start_epoch is not None:
        dl.sampler.set_epoch(start_epoch)
    out = [[b for b in dl] for _ in range(epochs)]
    return out


def _same(a, b) -> bool:
    return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2]
               for ea, eb in zip(a, b) for x, y in zip(ea, eb))


def test_same_seed_same_batches_different_seed_different(split):
    a, b, c = _epochs(split, 0), _epochs(split, 0), _epochs(split, 1)
    assert len(a) == 2 and len(a[0]) == 2 and a[0][0][0].shape == (3, 3, 64, 64)
    assert _same(a, b)
    assert not _same(a, c)
    assert not _same([a[0]], [a[1]])  # epochs differ
    resumed = _epochs(split, 0, epochs=1, start_epoch=1)
    assert _same([a[1]], resumed)  # resume at epoch 1 replays the uninterrupted epoch 1


def test_two_workers_match_single_process(split):
    single = _epochs(split, 3, workers=0)
    multi = _epochs(split, 3, workers=2)
    assert _same(single, multi)


def test_rect_loader_turns_shuffle_off(split):
    ds = YOLODataset(split, 64, rect=True, batch_size=2, pad=0.5)
    dl = build_dataloader(ds, 2, shuffle=True)
    batches = list(dl)
    assert [i for b in batches for i in b[2]] == list(range(len(ds)))
    for k, (imgs, targets, _, _) in enumerate(batches):
        assert tuple(imgs.shape[2:]) == tuple(ds.batch_shapes[k])
    with pytest.raises(ValueError, match="batch_size"):
        build_dataloader(ds, 3, shuffle=False)
