"""coco_evaluate against pycocotools run directly; faster-coco-eval identical; gt from records."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolo_core.data.records import DatasetSplit, ImageRecord
from yolo_core.eval.coco import COCO_STAT_NAMES, coco_evaluate, records_to_coco_gt


def _ann(i, img, cat, box, crowd=0):
    return {"id": i, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}


def small_gt() -> dict:
    """3 images, categories 1 and 3; small (<32^2), medium and large (>96^2) boxes; a crowd."""
    anns = [
        _ann(1, 10, 1, [10, 10, 20, 20]),            # small
        _ann(2, 10, 1, [50, 50, 60, 40]),            # medium
        _ann(3, 10, 3, [100, 100, 150, 120]),        # large
        _ann(4, 11, 3, [5, 5, 40, 40]),              # medium
        _ann(5, 11, 1, [200, 10, 100, 100], crowd=1),
        _ann(6, 12, 1, [30, 40, 25, 25]),            # small
        _ann(7, 12, 3, [60, 60, 80, 70]),            # medium
    ]
    images = [{"id": i, "width": 320, "height": 240, "file_name": f"{i}.jpg"} for i in (10, 11, 12)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]}


def small_dets() -> list[dict]:
    d = lambda img, cat, box, s: {"image_id": img, "category_id": cat, "bbox": box, "score": s}  # noqa: E731
    return [
        d(10, 1, [11, 10, 20, 21], 0.9),     # good small
        d(10, 1, [50, 55, 60, 40], 0.8),     # IoU ~.78 medium
        d(10, 1, [50, 50, 60, 40], 0.3),     # duplicate of the medium: FP
        d(10, 3, [110, 100, 150, 120], 0.7),  # IoU ~.88 large
        d(11, 3, [0, 0, 40, 40], 0.6),       # IoU ~.62
        d(11, 1, [210, 20, 80, 80], 0.95),   # on the crowd: ignored, not FP
        d(11, 1, [0, 200, 30, 30], 0.5),     # FP
        d(12, 3, [60, 60, 80, 70], 0.4),     # perfect
        d(12, 1, [200, 150, 20, 20], 0.85),  # FP; the small gt of image 12 is missed
    ]


def pycocotools_direct(gt_path, dt_path, img_ids=None) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        ev = COCOeval(gt, dt, "bbox")
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


@pytest.fixture()
def files(tmp_path):
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps(small_gt()))
    dt.write_text(json.dumps(small_dets()))
    return gt, dt


def test_matches_pycocotools_directly(files):
    gt_path, dt_path = files
    expected = pycocotools_direct(gt_path, dt_path)
    assert 0 < expected[0] < 1 and expected[5] > 0  # a non-trivial case with every size present
    for gt in (gt_path, str(gt_path), small_gt()):
        got = coco_evaluate(gt, small_dets())
        assert list(got) == list(COCO_STAT_NAMES)
        assert list(got.values()) == expected
    got = coco_evaluate(gt_path, small_dets(), img_ids=[10, 12])
    assert list(got.values()) == pycocotools_direct(gt_path, dt_path, [10, 12])
    assert got["map"] != expected[0]


@pytest.mark.parametrize("img_ids", [None, [11, 12]])
def test_faster_backend_identical(files, img_ids):
    gt_path, _ = files
    a = coco_evaluate(gt_path, small_dets(), img_ids=img_ids)
    b = coco_evaluate(gt_path, small_dets(), img_ids=img_ids, backend="faster_coco_eval")
    np.testing.assert_allclose(list(b.values()), list(a.values()), rtol=0, atol=1e-12)


def test_faster_backend_identical_generated():
    """60 images, 4 classes, jittered and random detections, some crowds: same 12 numbers."""
    rng = np.random.default_rng(0)
    images, anns, dets = [], [], []
    for img in range(1, 61):
        images.append({"id": img, "width": 640, "height": 480})
        for _ in range(rng.integers(0, 8)):
            w, h = rng.uniform(4, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.integers(1, 5))
            anns.append(_ann(len(anns) + 1, img, cat, [x, y, w, h], crowd=int(rng.random() < 0.05)))
            if rng.random() < 0.8:
                j = rng.normal(0, 0.1, 4) * [w, h, w, h]
                dets.append({"image_id": img, "category_id": cat, "score": float(rng.random()),
                             "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]})
        for _ in range(rng.integers(0, 4)):
            dets.append({"image_id": img, "category_id": int(rng.integers(1, 5)), "score": float(rng.random()),
                         "bbox": list(rng.uniform(0, 200, 4) + [0, 0, 5, 5])})
    gt = {"images": images, "annotations": anns, "categories": [{"id": i, "name": str(i)} for i in range(1, 5)]}
    a = coco_evaluate(gt, dets)
    b = coco_evaluate(gt, dets, backend="faster_coco_eval")
    assert 0.1 < a["map"] < 0.9
    np.testing.assert_allclose(list(b.values()), list(a.values()), rtol=0, atol=1e-12)


def test_empty_detections_give_zero_not_crash():
    gt = small_gt()
    gt["annotations"] = [a for a in gt["annotations"] if a["area"] <= 96 ** 2]  # no large object
    for backend in ("pycocotools", "faster_coco_eval"):
        s = coco_evaluate(gt, [], backend=backend)
        assert s["map_large"] == -1 and s["ar_large"] == -1   # no gt in that range
        assert all(v == 0 for k, v in s.items() if not k.endswith("_large")), s


def test_unknown_backend():
    with pytest.raises(ValueError, match="faster_coco_eval"):
        coco_evaluate(small_gt(), [], backend="nope")


def test_records_to_coco_gt(tmp_path):
    Image.new("RGB", (50, 40)).save(tmp_path / "b.png")  # size read from the header
    recs = [ImageRecord(path=str(tmp_path / "a.jpg"), image_id=7, width=200, height=100,
                        labels=np.array([[1, 0.5, 0.5, 0.2, 0.4], [0, 0.1, 0.2, 0.1, 0.2]], np.float32)),
            ImageRecord(path=str(tmp_path / "b.png"), image_id=8, labels=np.zeros((0, 5), np.float32)),
            ImageRecord(path=str(tmp_path / "c.jpg"), image_id=9, width=10, height=10,
                        labels=np.array([[0, 0.5, 0.5, 1.0, 1.0]], np.float32))]
    split = DatasetSplit(name="val", records=recs, names=["cat", "dog"], category_ids=[17, 18])
    gt = records_to_coco_gt(split)
    assert [(i["id"], i["width"], i["height"]) for i in gt["images"]] == [(7, 200, 100), (8, 50, 40), (9, 10, 10)]
    assert gt["categories"] == [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]
    a = gt["annotations"]
    assert [x["category_id"] for x in a] == [18, 17, 17] and all(x["iscrowd"] == 0 for x in a)
    np.testing.assert_allclose(a[0]["bbox"], [80, 30, 40, 40], atol=1e-4)  # (.5-.1)*200, (.5-.2)*100
    np.testing.assert_allclose(a[1]["bbox"], [10, 10, 20, 20], atol=1e-4)
    assert a[0]["area"] == pytest.approx(1600, abs=1e-3)
    assert len({x["id"] for x in a}) == 3
    perfect = [{"image_id": x["image_id"], "category_id": x["category_id"], "bbox": x["bbox"], "score": 0.9}
               for x in a]
    s = coco_evaluate(gt, perfect)
    assert s["map"] == pytest.approx(1.0) and s["map_large"] == -1
