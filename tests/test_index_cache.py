"""The index cache of YOLO-txt splits: reused when nothing changed, rebuilt when anything did,
and the results identical to a fresh scan (labels, sizes, skips)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_core.data import load_dataset
from yolo_core.data import index_cache
from yolo_core.data.image_check import scan_map
from yolo_core.data.yolo_txt import load_yolo_split


def _img(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))
    return path


def _label(img: Path, text: str) -> Path:
    p = Path(str(img).replace("/images/", "/labels/")).with_suffix(".txt")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture()
def dataset(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("YOLO_CORE_CACHE", str(tmp_path / "usercache"))
    ds = tmp_path / "ds"
    for i in range(6):
        im = _img(ds / f"images/train/{i:012d}.jpg", 40 + i, 30)
        if i != 2:  # one background image
            _label(im, f"{i % 2} 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.1 0.2\n" + ("1 0.1 0.2 0.1 0.2\n" if i == 3 else ""))
    (ds / "images/train/000000000004.jpg").write_bytes(b"not an image")  # skipped, counted
    y = tmp_path / "data.yaml"
    y.write_text(yaml.safe_dump({"path": str(ds), "train": "images/train", "val": "images/train",
                                 "names": ["a", "b"]}))
    return y


def _summary(ds):
    return [(r.path, r.image_id, r.width, r.height, r.labels.tolist()) for r in ds.train.records], ds.train.skipped


def _caches(root: Path) -> list[Path]:
    return sorted(root.rglob("*.cache"))


def test_second_load_comes_from_the_cache_and_is_identical(dataset, caplog):
    caplog.set_level(logging.INFO, logger="yolo_core")
    first = _summary(load_dataset(dataset))
    assert len(_caches(dataset.parent / "ds" / "labels")) == 1  # train and val share one split cache
    assert first[1] == {"corrupt_image": 1, "missing_label": 1, "duplicate_label": 1}
    caplog.clear()
    second = _summary(load_dataset(dataset))
    assert second == first
    assert "from the index cache" in caplog.text
    assert "corrupt_image" in caplog.text  # skips are reported again from the cache


@pytest.mark.parametrize("change", ["edit_label", "add_label", "remove_label", "add_image", "replace_image"])
def test_any_change_invalidates_the_cache(dataset, change, caplog):
    load_dataset(dataset)
    ds = dataset.parent / "ds"
    if change == "edit_label":
        (ds / "labels/train/000000000000.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    elif change == "add_label":
        (ds / "labels/train/000000000002.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    elif change == "remove_label":
        os.unlink(ds / "labels/train/000000000001.txt")
    elif change == "add_image":
        _img(ds / "images/train/000000000099.jpg")
    else:
        _img(ds / "images/train/000000000000.jpg", 80, 60)
    caplog.set_level(logging.INFO, logger="yolo_core")
    fresh = _summary(load_dataset(dataset))
    assert "train: 6 images from the index cache" not in caplog.text  # (val, same files, may hit)
    for c in _caches(ds):
        c.unlink()
    assert fresh == _summary(load_dataset(dataset))


def test_other_nc_rescans_and_raises_for_out_of_range_classes(dataset):
    load_dataset(dataset)
    data = yaml.safe_load(dataset.read_text())
    data["names"] = ["a"]
    dataset.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"000000000000\.txt, line 2: class 1 >= nc=1"):
        load_dataset(dataset)


def test_damaged_cache_is_ignored_and_rewritten(dataset, caplog):
    first = _summary(load_dataset(dataset))
    (cache,) = _caches(dataset.parent / "ds" / "labels")
    cache.write_bytes(b"garbage")
    caplog.set_level(logging.WARNING, logger="yolo_core")
    assert _summary(load_dataset(dataset)) == first
    assert "unreadable" in caplog.text
    caplog.clear()
    caplog.set_level(logging.INFO, logger="yolo_core")
    load_dataset(dataset)
    assert "from the index cache" in caplog.text


def test_read_only_labels_folder_falls_back_to_the_user_cache(dataset, tmp_path, monkeypatch):
    labels = dataset.parent / "ds" / "labels"
    real_paths = index_cache.cache_paths

    def paths(label_paths):
        beside, user = real_paths(label_paths)
        return [labels / "missing-dir" / "x" / beside.name, user]  # first location not creatable

    monkeypatch.setattr(index_cache, "cache_paths", paths)
    (labels / "missing-dir").write_text("a file, so no folder can be made here")
    first = _summary(load_dataset(dataset))
    assert _caches(tmp_path / "usercache") and _summary(load_dataset(dataset)) == first


def test_cache_can_be_turned_off(dataset):
    ds = load_dataset(dataset)
    for c in _caches(dataset.parent / "ds"):
        c.unlink()
    paths = [r.path for r in ds.train.records]
    load_yolo_split("train", paths, ["a", "b"], [0, 1], source="t", cache=False)
    assert not _caches(dataset.parent / "ds")


def _square(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x * x


def test_scan_map_keeps_order_and_raises_the_first_error_in_order():
    items = list(range(3000))
    assert list(scan_map(_square, [i for i in items if i != 7], workers=2, chunk=64, min_items=100)) == \
        [i * i for i in items if i != 7]
    with pytest.raises(ValueError, match="seven"):
        list(scan_map(_square, items, workers=2, chunk=64, min_items=100))
