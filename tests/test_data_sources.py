"""load_dataset on datasets the tests write themselves: YOLOv5 layouts and COCO-json sets.

Expected labels are the values written (or hand-converted from pixel boxes); every bad
input must fail with a message naming the file, or be skipped and counted.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_core.data import coco80_to_coco91_class, load_dataset


def _img(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = np.full((h, w, 3), 100, np.uint8)
    im[5:15, 5:20] = (0, 200, 50)
    assert cv2.imwrite(str(path), im)
    return path


def _label(img_path: Path, text: str) -> Path:
    p = Path(str(img_path).replace("/images/", "/labels/")).with_suffix(".txt")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _yolo_set(tmp_path: Path) -> tuple[Path, Path]:
    """ds/images/{train,val}; the yaml sits in cfg/ and points at ../ds (relative to its folder)."""
    ds = tmp_path / "ds"
    a = _img(ds / "images/train/000000000009.jpg", 40, 30)
    _label(a, "0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.1 0.2\n")
    _img(ds / "images/train/000000000025.png", 64, 48)  # no label file: background
    v = _img(ds / "images/val/000000000139.jpg", 50, 20)
    _label(v, "1 0.25 0.75 0.5 0.5\n")
    y = _yaml(tmp_path / "cfg/data.yaml", {"path": "../ds", "train": "images/train", "val": "images/val",
                                            "names": {0: "cat", 1: "dog"}})
    return ds, y


def test_yolo_dir_form_exact_labels(tmp_path):
    ds_root, y = _yolo_set(tmp_path)
    ds = load_dataset(y)
    assert ds.name == "data" and ds.names == ["cat", "dog"] and ds.nc == 2
    tr = {Path(r.path).name: r for r in ds.train.records}
    assert sorted(tr) == ["000000000009.jpg", "000000000025.png"]
    r = tr["000000000009.jpg"]
    np.testing.assert_allclose(r.labels, [[0, 0.5, 0.5, 0.25, 0.5], [1, 0.1, 0.2, 0.1, 0.2]], rtol=0, atol=1e-7)
    assert r.labels.dtype == np.float32 and r.image_id == 9 and (r.width, r.height) == (40, 30)
    bg = tr["000000000025.png"]
    assert bg.labels.shape == (0, 5) and bg.image_id == 25 and (bg.width, bg.height) == (64, 48)
    assert ds.train.skipped == {"missing_label": 1}
    assert ds.val.skipped == {} and ds.val.records[0].image_id == 139
    assert ds.train.category_ids == [0, 1] and ds.val.coco_json is None
    assert Path(r.path).is_file()


def test_dict_spec_and_absolute_path(tmp_path):
    ds_root, _ = _yolo_set(tmp_path)
    ds = load_dataset({"path": str(ds_root), "train": "images/train", "val": "images/val",
                       "names": ["cat", "dog"], "nc": 2})
    assert len(ds.train.records) == 2 and ds.names == ["cat", "dog"]


def test_txt_list_form_and_list_of_entries(tmp_path):
    ds_root, _ = _yolo_set(tmp_path)
    extra = _img(tmp_path / "elsewhere/images/x/cow.jpg")
    _label(extra, "0 0.5 0.5 0.2 0.2\n")
    (ds_root / "train.txt").write_text(f"./images/train/000000000009.jpg\nimages/train/000000000025.png\n"
                                       f"{extra}\nnotes.md\n")
    y = _yaml(ds_root / "list.yaml", {"path": ".", "train": "train.txt",
                                      "val": ["images/val", "train.txt"], "names": ["cat", "dog"]})
    ds = load_dataset(y)
    assert [Path(r.path).name for r in ds.train.records] == ["000000000009.jpg", "000000000025.png", "cow.jpg"]
    # the non-numeric stem gets the first free running index (9 and 25 are taken by numeric stems)
    assert [r.image_id for r in ds.train.records] == [9, 25, 0]
    np.testing.assert_allclose(ds.train.records[2].labels, [[0, 0.5, 0.5, 0.2, 0.2]])
    assert len(ds.val.records) == 4


def test_polygon_rows_become_boxes(tmp_path):
    ds_root, y = _yolo_set(tmp_path)
    a = ds_root / "images/train/000000000009.jpg"
    # triangle (0.1,0.2) (0.5,0.2) (0.3,0.6) -> x 0.1..0.5, y 0.2..0.6 -> centre (0.3,0.4), wh (0.4,0.4)
    _label(a, "1 0.1 0.2 0.5 0.2 0.3 0.6\n0 0.5 0.5 0.2 0.2\n")
    r = next(r for r in load_dataset(y).train.records if r.image_id == 9)
    np.testing.assert_allclose(r.labels, [[1, 0.3, 0.4, 0.4, 0.4], [0, 0.5, 0.5, 0.2, 0.2]], atol=1e-6)


def test_coco_layout_uses_val_json_and_91_ids(tmp_path):
    ds_root, _ = _yolo_set(tmp_path)
    (ds_root / "annotations").mkdir()
    (ds_root / "annotations/instances_val2017.json").write_text(
        json.dumps({"images": [{"id": 139, "file_name": "000000000139.jpg"}], "annotations": [], "categories": []}))
    names = [f"c{i}" for i in range(80)]
    ds = load_dataset(_yaml(ds_root / "coco.yaml", {"path": ".", "train": "images/train", "val": "images/val",
                                                      "names": names}))
    assert ds.val.coco_json == str(ds_root / "annotations/instances_val2017.json")
    assert ds.train.coco_json is None
    ids = ds.val.category_ids
    assert ids == coco80_to_coco91_class() and len(ids) == 80
    assert (ids[0], ids[10], ids[11], ids[24], ids[25], ids[79]) == (1, 11, 13, 27, 28, 90)
    assert not {12, 26, 29, 30, 45, 66, 68, 69, 71, 83} & set(ids)


def _coco_set(tmp_path: Path, mutate=None) -> Path:
    root = tmp_path / "cj"
    _img(root / "imgs/train/a.jpg", 100, 50)
    _img(root / "imgs/train/b.png", 20, 40)
    _img(root / "imgs/val/c.jpg", 60, 60)
    cats = [{"id": 7, "name": "zebra"}, {"id": 3, "name": "ant"}]  # unordered on purpose
    train = {"images": [{"id": 11, "file_name": "a.jpg", "width": 100, "height": 50},
                        {"id": 12, "file_name": "b.png", "width": 20, "height": 40}],
             "annotations": [{"id": 1, "image_id": 11, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0},
                             {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 100, 50], "iscrowd": 0},
                             {"id": 3, "image_id": 11, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1}],
             "categories": cats}
    val = {"images": [{"id": 5, "file_name": "c.jpg", "width": 60, "height": 60}],
           "annotations": [{"id": 9, "image_id": 5, "category_id": 3, "bbox": [30, 30, 15, 6]}],
           "categories": cats}
    if mutate:
        mutate(train, val)
    (root / "ann").mkdir(parents=True, exist_ok=True)
    (root / "ann/train.json").write_text(json.dumps(train))
    (root / "ann/val.json").write_text(json.dumps(val))
    return _yaml(root / "d.yaml", {"path": ".", "train": "imgs/train", "val": "imgs/val",
                                   "train_json": "ann/train.json", "val_json": "ann/val.json"})


def test_coco_json_form_matches_what_was_written(tmp_path):
    ds = load_dataset(_coco_set(tmp_path))
    assert ds.names == ["ant", "zebra"] and ds.train.category_ids == [3, 7] and ds.val.category_ids == [3, 7]
    a, b = ds.train.records
    assert (a.image_id, a.width, a.height, b.image_id, b.width, b.height) == (11, 100, 50, 12, 20, 40)
    # [10,5,20,10] in 100x50 -> centre (20,10)/(100,50), wh (20,10)/(100,50); zebra (id 7) -> class 1
    np.testing.assert_allclose(a.labels, [[1, 0.2, 0.2, 0.2, 0.2], [0, 0.5, 0.5, 1.0, 1.0]], atol=1e-7)
    assert b.labels.shape == (0, 5)
    assert ds.train.skipped == {"crowd_annotation": 1}
    np.testing.assert_allclose(ds.val.records[0].labels, [[0, 37.5 / 60, 33 / 60, 15 / 60, 6 / 60]], atol=1e-7)
    assert ds.val.coco_json.endswith("ann/val.json") and ds.train.coco_json.endswith("ann/train.json")


@pytest.mark.parametrize("mutate, match", [
    (lambda t, v: t["images"].append({"id": 11, "file_name": "b.png"}), r"train\.json: duplicate image id 11"),
    (lambda t, v: t["annotations"].append({"id": 8, "image_id": 99, "category_id": 3, "bbox": [0, 0, 1, 1]}),
     r"train\.json: annotation 8 refers to unknown image_id 99"),
    (lambda t, v: v["annotations"].append({"id": 4, "image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1]}),
     r"val\.json: annotation 4 refers to unknown category_id 1"),
    (lambda t, v: v.update(categories=[{"id": 3, "name": "ant"}]), r"different categories"),
])
def test_coco_json_structural_errors(tmp_path, mutate, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(_coco_set(tmp_path, mutate))


def test_coco_json_missing_and_mismatched_images_are_counted(tmp_path):
    def mutate(t, v):
        t["images"].append({"id": 13, "file_name": "gone.jpg", "width": 10, "height": 10})
        t["images"][1]["width"] = 21  # b.png is 20x40
    ds = load_dataset(_coco_set(tmp_path, mutate))
    assert [r.image_id for r in ds.train.records] == [11]
    assert ds.train.skipped == {"crowd_annotation": 1, "missing_image": 1, "size_mismatch": 1}


def test_missing_paths_name_key_and_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_dataset(tmp_path / "nope.yaml")
    _, y = _yolo_set(tmp_path)
    bad_root = _yaml(tmp_path / "cfg/r.yaml", {"path": "../missing", "train": "a", "val": "b", "names": ["x"]})
    with pytest.raises(FileNotFoundError, match=r"path: .*missing"):
        load_dataset(bad_root)
    bad_val = _yaml(tmp_path / "cfg/v.yaml", {"path": "../ds", "train": "images/train", "val": "images/test",
                                              "names": ["x", "y"]})
    with pytest.raises(FileNotFoundError, match=r"v\.yaml: val: .*ds/images/test does not exist"):
        load_dataset(bad_val)


def test_empty_split_and_names_errors(tmp_path):
    ds_root, _ = _yolo_set(tmp_path)
    (ds_root / "images/empty").mkdir()
    with pytest.raises(ValueError, match="split 'val' is empty"):
        load_dataset(_yaml(ds_root / "e.yaml", {"train": "images/train", "val": "images/empty", "names": ["a", "b"]}))
    with pytest.raises(ValueError, match="nc=3 but names has 2"):
        load_dataset(_yaml(ds_root / "n.yaml", {"train": "images/train", "val": "images/val",
                                                "names": ["a", "b"], "nc": 3}))


def test_class_out_of_range_is_a_config_error_naming_file_line_nc(tmp_path):
    ds_root, y = _yolo_set(tmp_path)
    lab = _label(ds_root / "images/val/000000000139.jpg", "1 0.5 0.5 0.1 0.1\n\n2 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError) as e:
        load_dataset(y)
    assert str(lab) in str(e.value) and "line 3" in str(e.value) and "nc=2" in str(e.value)


@pytest.mark.parametrize("row", ["0 0.5 1.2 0.1 0.1", "0 0.5 0.5 0 0.1", "0 0.5 0.5 0.1", "0 0.5 x 0.1 0.1",
                                 "-1 0.5 0.5 0.1 0.1", "0 0.1 0.1 0.2 0.2 0.3", "0 nan 0.5 0.1 0.1"])
def test_bad_rows_skip_the_image_with_one_warning(tmp_path, caplog, row):
    ds_root, y = _yolo_set(tmp_path)
    lab = _label(ds_root / "images/train/000000000009.jpg", f"0 0.5 0.5 0.1 0.1\n{row}\n")
    _label(_img(ds_root / "images/train/000000000040.jpg"), "0 0.5 0.5 0.2 0.2\n")  # a split needs labels
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        ds = load_dataset(y)
    assert [r.image_id for r in ds.train.records] == [25, 40]
    assert ds.train.skipped == {"bad_label": 1, "missing_label": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(lab) in warnings[0] and "line 2" in warnings[0]
    assert "bad_label=1" in warnings[0]


def test_duplicate_rows_removed_and_counted(tmp_path):
    ds_root, y = _yolo_set(tmp_path)
    _label(ds_root / "images/train/000000000009.jpg",
           "0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.1 0.1\n0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n")
    ds = load_dataset(y)
    r = next(r for r in ds.train.records if r.image_id == 9)
    np.testing.assert_allclose(r.labels, [[0, 0.5, 0.5, 0.1, 0.1], [1, 0.2, 0.2, 0.1, 0.1]])
    assert ds.train.skipped["duplicate_label"] == 2


def test_corrupt_and_truncated_images_are_counted(tmp_path, caplog):
    ds_root, y = _yolo_set(tmp_path)
    good = _img(ds_root / "images/train/000000000030.jpg", 80, 60)
    data = good.read_bytes()
    assert data[-2:] == b"\xff\xd9"
    trunc = ds_root / "images/train/000000000031.jpg"
    trunc.write_bytes(data[:-50])  # header intact, scan data cut short, end marker gone
    (ds_root / "images/train/000000000032.jpg").write_text("not an image")
    png = _img(ds_root / "images/train/000000000033.png", 80, 60)
    png.write_bytes(png.read_bytes()[:-20])
    _img(ds_root / "images/train/000000000034.png", 8, 60)  # < 10 px
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        ds = load_dataset(y)
    assert sorted(r.image_id for r in ds.train.records) == [9, 25, 30]
    assert ds.train.skipped["corrupt_image"] == 4
    msg = "\n".join(r.getMessage() for r in caplog.records)
    assert "000000000031.jpg" in msg and "truncated JPEG" in msg and "corrupt_image=4" in msg


def test_all_images_skipped_is_an_error(tmp_path):
    ds_root, _ = _yolo_set(tmp_path)
    (ds_root / "images/bad").mkdir()
    (ds_root / "images/bad/1.jpg").write_text("x")
    with pytest.raises(ValueError, match=r"split 'val' has no usable images.*corrupt_image"):
        load_dataset(_yaml(ds_root / "b.yaml", {"train": "images/train", "val": "images/bad", "names": ["a", "b"]}))
