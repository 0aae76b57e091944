"""Images whose header is fine but whose pixels are not: garbage pixel data, decompression
bombs. Skipped and counted at scan time where the header or a decode tells (bombs; val
images), worked around and counted at load time otherwise (train images); never a crash
mid-epoch, never a failure repeated at every resume.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolo_core.data import load_dataset
from yolo_core.data.dataset import YOLODataset
from yolo_core.data.image_check import DEFAULT_MAX_IMAGE_PIXELS, check_image
from yolo_core.data.loader import build_dataloader
from yolo_core.data.records import DatasetSplit, ImageRecord


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(path: Path, w: int, h: int, idat: bytes) -> Path:
    """A PNG with a valid signature, IHDR (8-bit RGB), CRCs and IEND around `idat`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def garbage_png(path: Path, w: int = 64, h: int = 48) -> Path:
    """Header and end marker valid, pixel data random bytes: only a decode finds it."""
    return _png(path, w, h, np.random.default_rng(0).bytes(1500))


def bomb_png(path: Path) -> Path:
    """A ~100-byte file declaring 30000 x 30000 px (2.7 GB as 8-bit BGR). Never decode it."""
    return _png(path, 30000, 30000, zlib.compress(b"\0" * 4096))


def _img(path: Path, w: int = 64, h: int = 48, colour=(0, 200, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = np.full((h, w, 3), 100, np.uint8)
    im[5:25, 5:30] = colour
    assert cv2.imwrite(str(path), im)
    return path


def _label(img: Path, text: str = "0 0.3 0.3 0.4 0.4\n") -> Path:
    p = Path(str(img).replace("/images/", "/labels/")).with_suffix(".txt")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _yolo_set(root: Path, n: int = 3) -> Path:
    for split in ("train", "val"):
        for k in range(n):
            _label(_img(root / f"images/{split}/{k}.png"))
    y = root / "d.yaml"
    y.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": ["a"]}))
    return y


def test_the_crafted_files_are_what_they_claim():
    """Guards the helpers: the header check accepts the garbage PNG, cv2 cannot decode it."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        g = garbage_png(Path(d) / "g.png")
        assert check_image(str(g)) == (64, 48) and cv2.imread(str(g)) is None


# ---------------------------------------------------------------- scan time


def test_decompression_bomb_is_skipped_at_scan_naming_the_file(tmp_path, caplog):
    y = _yolo_set(tmp_path / "ds")
    bomb = bomb_png(tmp_path / "ds/images/train/bomb.png")
    _label(bomb)
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        ds = load_dataset(y)
    assert ds.train.skipped == {"corrupt_image": 1} and len(ds.train.records) == 3
    assert str(bomb) in caplog.text and "900000000 pixels" in caplog.text and "max_image_pixels" in caplog.text


def test_pixel_limit_is_configurable(tmp_path, caplog):
    y = _yolo_set(tmp_path / "ds")
    _label(_img(tmp_path / "ds/images/train/big.png", 128, 96))
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        ds = load_dataset(y, max_image_pixels=64 * 48)
    assert ds.train.skipped == {"corrupt_image": 1}
    assert "128x96 = 12288 px exceeds max_image_pixels=3072" in caplog.text
    assert load_dataset(y, max_image_pixels=None).train.skipped == {}
    assert DEFAULT_MAX_IMAGE_PIXELS == 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS


def test_garbage_val_image_is_decoded_at_scan_and_skipped(tmp_path, caplog):
    """Val images are decoded in full at scan: a bad one leaves the ground truth too."""
    y = _yolo_set(tmp_path / "ds")
    bad = garbage_png(tmp_path / "ds/images/val/9.png")
    _label(bad)
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        ds = load_dataset(y)
    assert ds.val.skipped == {"corrupt_image": 1} and len(ds.val.records) == 3
    assert str(bad) in caplog.text and "pixel data cannot be decoded" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        assert load_dataset(y).val.skipped == {"corrupt_image": 1}  # the same from the index cache
    assert str(bad) in caplog.text


def test_garbage_val_image_of_a_coco_json_set_is_skipped(tmp_path):
    root = tmp_path / "cj"
    images, anns = [], []
    for split in ("train", "val"):
        for k in range(2):
            _img(root / f"{split}/{k}.png")
    garbage_png(root / "val/2.png")
    for k in range(3):
        images.append({"id": k + 1, "file_name": f"{k}.png", "width": 64, "height": 48})
        anns.append({"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [5, 5, 20, 20]})
    cats = [{"id": 1, "name": "a"}]
    (root / "train.json").write_text(json.dumps({"images": images[:2], "annotations": anns[:2], "categories": cats}))
    (root / "val.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    ds = load_dataset({"path": str(root), "train": "train", "val": "val", "train_json": "train.json",
                       "val_json": "val.json"})
    assert ds.val.skipped == {"corrupt_image": 1} and [r.image_id for r in ds.val.records] == [1, 2]


# ---------------------------------------------------------------- load time (train)


def _split_with_garbage(folder: Path, bad_at: int = 2, n: int = 6) -> DatasetSplit:
    recs = []
    for k in range(n):
        p = folder / f"{k}.png"
        if k == bad_at:
            garbage_png(p)
        else:
            _img(p, colour=(0, 40 * k, 255 - 40 * k))
        recs.append(ImageRecord(str(p), k, np.array([[0, 0.3, 0.3, 0.4, 0.4]], np.float32), 64, 48))
    return DatasetSplit("train", recs, ["a"], [0])


def _batches(loader) -> list:
    return [(imgs.clone(), targets.clone(), list(idx)) for imgs, targets, idx, _ in loader]


@pytest.mark.parametrize("cache, workers", [(None, 0), (None, 2), ("ram", 0), ("disk", 0)])
def test_undecodable_train_image_is_replaced_and_counted_not_a_crash(tmp_path, caplog, cache, workers):
    split = _split_with_garbage(tmp_path / "images")
    hyp = {"mosaic": 0.5}
    ds = YOLODataset(split, 64, augment=True, hyp=hyp, cache=cache, cache_dir=tmp_path / "npy", seed=1)
    loader = build_dataloader(ds, 2, shuffle=True, workers=workers, seed=1, persistent_workers=False)
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        first = _batches(loader)
    assert sum(len(b[2]) for b in first) == 6  # a whole epoch, no exception
    assert split.skipped == {"corrupt_image": 1}  # counted once, in this (the main) process
    assert "2.png" in caplog.text and "replaced" in caplog.text
    again = _batches(loader)
    assert split.skipped == {"corrupt_image": 1}
    # the same seed gives the same batches in a fresh dataset (a resumed run replays them)
    split2 = _split_with_garbage(tmp_path / "images2")
    ds2 = YOLODataset(split2, 64, augment=True, hyp=hyp, cache=cache, cache_dir=tmp_path / "npy2", seed=1)
    loader2 = build_dataloader(ds2, 2, shuffle=True, workers=0, seed=1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, _batches(loader2)))
    assert len(again) == len(first)


def test_good_data_gives_the_same_items_as_before(tmp_path):
    """The retry loop must not change the items of decodable images (attempt 0 = the old seed)."""
    split = _split_with_garbage(tmp_path / "images", bad_at=-1)
    ds = YOLODataset(split, 64, augment=True, hyp={"mosaic": 1.0}, seed=3)
    ds.reseed(12345)
    want = ds._item(4)
    got = ds[(4, 12345)]
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_undecodable_image_at_evaluation_is_a_blank_image_and_counted(tmp_path, caplog):
    """Val images are decoded at scan, so this only happens when a file changed mid-run."""
    split = _split_with_garbage(tmp_path / "images")
    split.name = "val"
    ds = YOLODataset(split, 64, rect=True, batch_size=2, pad=0.5)
    loader = build_dataloader(ds, 2, shuffle=False)
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        n = sum(len(idx) for _, _, idx, _ in loader)
    assert n == 6 and split.skipped == {"corrupt_image": 1} and "blank" in caplog.text


def test_missing_file_at_load_time_still_raises(tmp_path):
    """A file that vanished is not a property of the file (storage may be unmounted): no
    silent blanks or replacements for a whole dataset."""
    split = _split_with_garbage(tmp_path / "images", bad_at=-1)
    os.unlink(split.records[1].path)
    ds = YOLODataset(split, 64, augment=True, hyp={"mosaic": 0.0})
    with pytest.raises(OSError, match="1.png.*file not found"):
        ds[(1, 0)]


# ---------------------------------------------------------------- the whole run


@pytest.mark.slow
@pytest.mark.parametrize("cache", [None, "ram"])
def test_run_with_an_undecodable_train_image_completes_and_counts_it(tmp_path, cache):
    import shutil

    from yolo_core.data import ensure_synthetic_dataset
    from yolo_core.train.config import TrainConfig
    from yolo_core.train.trainer import train

    src = Path(ensure_synthetic_dataset(tmp_path / "synthetic", n_train=12, n_val=6)).parent
    dst = tmp_path / "set"
    shutil.copytree(src, dst)
    victims = sorted((dst / "images" / "train").iterdir())
    garbage_png(victims[0], 192, 192)  # valid header and IEND: the scan accepts it
    bomb_png(victims[1])  # skipped at scan
    out = tmp_path / "run"
    summary = train(TrainConfig(out_dir=str(out), data=str(dst / "data.yaml"), epochs=1, imgsz=64, batch_size=4,
                                workers=0, warmup_min_iters=2, cache=cache))
    assert summary["status"] == "completed"
    assert summary["data_warnings"]["train"].get("corrupt_image") == 2
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["data_warnings"]["train"]["corrupt_image"] == 2
    log = (out / "train.log").read_text()
    assert victims[0].name in log and victims[1].name in log
