"""Bad datasets a user really had: each must fail naming the file and how to go on, or be
skipped/fixed and counted. Nothing here may silently change a reported number.

Tiny sets written into tmp_path (a handful of 40-100 px images).
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_core.data import load_dataset
from yolo_core.eval.coco import coco_evaluate


def _img(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = np.full((h, w, 3), 100, np.uint8)
    im[5:15, 5:20] = (0, 200, 50)
    assert cv2.imwrite(str(path), im)
    return path


def _label(img_path: Path, text: str, folder: str = "labels") -> Path:
    p = Path(str(img_path).replace("/images/", f"/{folder}/")).with_suffix(".txt")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _coco_set(tmp_path: Path, mutate=None) -> tuple[Path, Path]:
    """Two train and two val images, two boxes each; returns (yaml, val json)."""
    root = tmp_path / "cj"
    for split in ("train", "val"):
        _img(root / f"imgs/{split}/a.jpg", 100, 100)
        _img(root / f"imgs/{split}/b.jpg", 100, 100)
    cats = [{"id": 1, "name": "thing"}]

    def js(first_id: int) -> dict:
        images = [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                  {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}]
        boxes = [(1, [10, 10, 30, 30]), (1, [50, 50, 20, 20]), (2, [5, 5, 40, 40]), (2, [60, 60, 30, 30])]
        anns = [{"id": first_id + k, "image_id": iid, "category_id": 1, "bbox": b, "area": b[2] * b[3],
                 "iscrowd": 0} for k, (iid, b) in enumerate(boxes)]
        return {"images": images, "annotations": anns, "categories": cats}

    train, val = js(1), js(1)
    if mutate:
        mutate(train, val)
    (root / "ann").mkdir(parents=True, exist_ok=True)
    (root / "ann/train.json").write_text(json.dumps(train))
    (root / "ann/val.json").write_text(json.dumps(val))
    y = _yaml(root / "d.yaml", {"path": ".", "train": "imgs/train", "val": "imgs/val",
                                "train_json": "ann/train.json", "val_json": "ann/val.json"})
    return y, root / "ann/val.json"


# ---------------------------------------------------------------- duplicate annotation ids


def _merged_ids(train: dict, val: dict) -> None:
    """What concatenating two jsons gives: each half numbers its annotations from 1."""
    for k, a in enumerate(val["annotations"]):
        a["id"] = 1 + k % 2


def test_duplicate_annotation_ids_are_refused_naming_file_and_ids(tmp_path):
    y, val_json = _coco_set(tmp_path, _merged_ids)
    with pytest.raises(ValueError) as e:
        load_dataset(y)
    msg = str(e.value)
    assert str(val_json) in msg and "2 annotations reuse an id" in msg and "[1, 2]" in msg
    assert "Renumber" in msg and "pycocotools" in msg


def test_why_refused_duplicate_ids_change_the_coco_map_of_the_same_detections(tmp_path):
    """The evidence for refusing: COCOeval reading such a file scores perfect detections low."""
    _, val_json = _coco_set(tmp_path)
    gt = json.loads(val_json.read_text())
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9}
            for a in gt["annotations"]]
    merged = copy.deepcopy(gt)
    _merged_ids({}, merged)
    assert coco_evaluate(copy.deepcopy(gt), dets, [1, 2])["map50"] == pytest.approx(1.0)
    assert coco_evaluate(merged, dets, [1, 2])["map50"] < 0.5


def test_annotation_without_id_is_refused(tmp_path):
    y, val_json = _coco_set(tmp_path, lambda t, v: v["annotations"][2].pop("id"))
    with pytest.raises(ValueError, match=r"val\.json: annotation #2 .* has id None"):
        load_dataset(y)


def test_coco_layout_val_json_with_duplicate_annotation_ids_is_refused(tmp_path):
    """YOLOv5's COCO layout: YOLO-txt labels, but evaluation reads annotations/instances_val2017.json."""
    ds = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        _label(_img(ds / f"images/{split}/000000000001.jpg"), "0 0.5 0.5 0.2 0.2\n")
    gt = {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 64, "height": 48}],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
                          {"id": 7, "image_id": 1, "category_id": 1, "bbox": [9, 9, 5, 5]}],
          "categories": [{"id": 1, "name": "person"}]}
    (ds / "annotations").mkdir()
    (ds / "annotations/instances_val2017.json").write_text(json.dumps(gt))
    y = _yaml(ds / "coco.yaml", {"path": ".", "train": "images/train2017", "val": "images/val2017",
                                 "names": [f"c{i}" for i in range(80)]})
    with pytest.raises(ValueError, match=r"instances_val2017\.json: 1 annotations reuse an id .*\[7\]"):
        load_dataset(y)


# ---------------------------------------------------------------- no labels at all


def test_misnamed_labels_folder_is_refused_naming_split_and_folder(tmp_path):
    ds = tmp_path / "ds"
    for split in ("train", "val"):
        for k in range(3):
            _label(_img(ds / f"images/{split}/{k}.jpg"), "0 0.5 0.5 0.2 0.2\n", folder="label")  # not 'labels'
    y = _yaml(ds / "d.yaml", {"path": ".", "train": "images/train", "val": "images/val", "names": ["a"]})
    with pytest.raises(ValueError) as e:
        load_dataset(y)
    msg = str(e.value)
    assert "split 'train' has no labels" in msg and "none of its 3 images has a label file" in msg
    assert str(ds / "labels/train") in msg and "No labels found" in msg


def test_val_without_labels_is_refused_too(tmp_path):
    """A val split of background images only ends a run `completed` with mAP null: refused."""
    ds = tmp_path / "ds"
    _label(_img(ds / "images/train/0.jpg"), "0 0.5 0.5 0.2 0.2\n")
    _label(_img(ds / "images/val/0.jpg"), "")  # a label file, but empty
    y = _yaml(ds / "d.yaml", {"path": ".", "train": "images/train", "val": "images/val", "names": ["a"]})
    with pytest.raises(ValueError, match=r"split 'val' has no labels: the 1 label files found .* hold no boxes"):
        load_dataset(y)


@pytest.mark.parametrize("mutate, why", [
    (lambda t, v: t.pop("annotations"), "has no 'annotations' list"),
    (lambda t, v: t.update(annotations=[]), "has an empty 'annotations' list"),
    (lambda t, v: [a.update(iscrowd=1) for a in t["annotations"]], "has 4 annotations but none is a usable box"),
])
def test_coco_json_without_annotations_is_refused(tmp_path, mutate, why):
    y, _ = _coco_set(tmp_path, mutate)
    with pytest.raises(ValueError) as e:
        load_dataset(y)
    msg = str(e.value)
    assert "split 'train' has no labels" in msg and str(tmp_path / "cj/ann/train.json") in msg and why in msg


# ---------------------------------------------------------------- non-number boxes


@pytest.mark.parametrize("bbox", [["a", 1, 2, 3], [1, 2, None, 3], [1, 2, 3], [True, 1, 2, 3], "1 2 3 4"])
def test_coco_bbox_that_is_not_four_numbers_names_file_and_annotation(tmp_path, bbox):
    y, val_json = _coco_set(tmp_path, lambda t, v: v["annotations"][1].update(bbox=bbox))
    with pytest.raises(ValueError) as e:
        load_dataset(y)
    msg = str(e.value)
    assert str(val_json) in msg and "annotation 2 (image 1)" in msg and "four finite numbers" in msg


def test_coco_bbox_nan_names_file(tmp_path):
    y, val_json = _coco_set(tmp_path)
    val_json.write_text(val_json.read_text().replace("[50, 50, 20, 20]", "[50, NaN, 20, 20]"))
    with pytest.raises(ValueError, match=r"val\.json: annotation 2 \(image 1\) has bbox \[50, nan, 20, 20\]"):
        load_dataset(y)


@pytest.mark.parametrize("row", ["0 0.5 nan 0.1 0.1", "0 0.5 x 0.1 0.1", "x 0.5 0.5 0.1 0.1", "0 0.5 0.5 inf 0.1"])
def test_yolo_row_with_a_non_number_skips_the_image_naming_the_file(tmp_path, caplog, row):
    ds = tmp_path / "ds"
    _label(_img(ds / "images/train/0.jpg"), "0 0.5 0.5 0.2 0.2\n")
    bad = _label(_img(ds / "images/train/1.jpg"), f"0 0.5 0.5 0.2 0.2\n{row}\n")
    _label(_img(ds / "images/val/0.jpg"), "0 0.5 0.5 0.2 0.2\n")
    y = _yaml(ds / "d.yaml", {"path": ".", "train": "images/train", "val": "images/val", "names": ["a"]})
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        d = load_dataset(y)
    assert d.train.skipped == {"bad_label": 1} and len(d.train.records) == 1
    assert str(bad) in caplog.text and "line 2" in caplog.text


# ---------------------------------------------------------------- clipped boxes are counted


def test_clipped_coco_boxes_are_counted_as_label_fixes(tmp_path, caplog):
    def mutate(t, v):
        t["annotations"][0]["bbox"] = [-10, 10, 30, 30]   # 10 px past the left edge
        t["annotations"][3]["bbox"] = [60, 60, 50, 30]    # 10 px past the right edge
        t["annotations"][1]["bbox"] = [50, 50, 50.0000001, 20]  # float noise at the edge: not a fix
    y, _ = _coco_set(tmp_path, mutate)
    with caplog.at_level(logging.WARNING, logger="yolo_core"):
        d = load_dataset(y)
    assert d.train.skipped == {"clipped_box": 2}
    assert "clipped_box=2" in caplog.text and "train.json" in caplog.text
    a = next(r for r in d.train.records if r.image_id == 1)
    np.testing.assert_allclose(a.labels[0], [0, 0.1, 0.25, 0.2, 0.3], atol=1e-6)  # x 0..20, y 10..40
