"""analysis/image_eval.py against pycocotools itself: the per-image re-accumulation gives
COCOeval's 12 numbers exactly (all weights 1), COCOeval restricted to some images (0/1
weights), and refuses weights it cannot honour."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from analysis.image_eval import STAT_NAMES, accumulate, coco_eval, coco_stats, from_cocoeval, mean_ap, restrict


def random_case(seed: int, n_img: int = 60, n_cat: int = 5, crowd: float = 0.05) -> tuple[dict, list[dict]]:
    """Boxes of three sizes (crowd regions among them), detections near them (some of the
    wrong class, duplicates) and far from them, scores rounded to 2 decimals so ties occur."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_img + 1):
        images.append({"id": i, "width": 640, "height": 480})
        for _ in range(rng.integers(0, 8)):
            w, h = rng.uniform(5, 200, 2)
            x, y = rng.uniform(0, 400, 2)
            c = int(rng.integers(1, n_cat + 1))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "bbox": [x, y, w, h],
                         "area": w * h * rng.uniform(0.5, 1), "iscrowd": int(rng.random() < crowd)})
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 0.1 * w, 4)
                cls = c if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
                dets.append({"image_id": i, "category_id": cls, "bbox": [x + j[0], y + j[1], max(1, w + j[2]),
                             max(1, h + j[3])], "score": round(float(rng.random()), 2)})
        for _ in range(rng.integers(0, 5)):
            w, h = rng.uniform(5, 200, 2)
            x, y = rng.uniform(0, 400, 2)
            dets.append({"image_id": i, "category_id": int(rng.integers(1, n_cat + 1)), "bbox": [x, y, w, h],
                         "score": round(float(rng.random()), 2)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cat + 1)]}, dets


def pycocotools_stats(gt: dict, dets: list[dict], img_ids=None) -> np.ndarray:
    ev = coco_eval(gt, dets, img_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def ours(ev, weights) -> np.ndarray:
    st = coco_stats(accumulate(ev, weights))
    return np.array([[st[n][b] for n in STAT_NAMES] for b in range(len(weights))])


@pytest.mark.parametrize("seed", range(5))
def test_all_weights_one_equal_pycocotools_exactly(seed):
    gt, dets = random_case(seed)
    ev = from_cocoeval(coco_eval(gt, dets))
    mine = ours(ev, np.ones((1, ev.n_images), dtype=np.int64))[0]
    assert mine.tolist() == pycocotools_stats(gt, dets).tolist()  # bit for bit, all 12


@pytest.mark.parametrize("seed", range(3))
def test_zero_one_weights_equal_cocoeval_on_those_images(seed):
    gt, dets = random_case(seed + 10)
    ev = from_cocoeval(coco_eval(gt, dets))
    rng = np.random.default_rng(seed)
    masks = (rng.random((3, ev.n_images)) < [[0.5], [0.2], [0.9]]).astype(np.int64)
    mine = ours(ev, masks)  # three weightings in one call
    for b, mask in enumerate(masks):
        want = pycocotools_stats(gt, dets, ev.img_ids[mask > 0].tolist())
        assert mine[b].tolist() == want.tolist()
        # the same from the evaluation restricted to those images
        sub = restrict(ev, mask)
        assert ours(sub, np.ones((1, sub.n_images), dtype=np.int64))[0].tolist() == want.tolist()


def test_weight_two_counts_an_image_twice():
    """Without tied scores, doubling an image's weight is a copy of the image in the data."""
    gt, dets = random_case(3, n_img=20, crowd=0.0)
    for k, d in enumerate(dets):
        d["score"] = 0.5 + k * 1e-5  # all distinct
    ev = from_cocoeval(coco_eval(gt, dets))
    weights = np.ones(ev.n_images, dtype=np.int64)
    weights[:5] = 2
    images = gt["images"] + [{**im, "id": 1000 + im["id"]} for im in gt["images"][:5]]
    anns = gt["annotations"] + [{**a, "id": 10000 + a["id"], "image_id": 1000 + a["image_id"]}
                                for a in gt["annotations"] if a["image_id"] <= 5]
    copies = dets + [{**d, "image_id": 1000 + d["image_id"]} for d in dets if d["image_id"] <= 5]
    want = pycocotools_stats({**gt, "images": images, "annotations": anns}, copies)
    assert np.allclose(ours(ev, weights[None])[0], want, atol=1e-12)


def test_no_detections_and_empty_categories():
    gt, _ = random_case(0, n_img=10)
    ev = from_cocoeval(coco_eval(gt, []))
    assert ours(ev, np.ones((1, ev.n_images), dtype=np.int64))[0].tolist() == pycocotools_stats(gt, []).tolist()
    # an image set holding no object of any category: COCO's -1
    empty = np.zeros((1, ev.n_images), dtype=np.int64)
    assert mean_ap(accumulate(ev, empty))[0] == -1.0


def test_bad_weights_are_refused():
    gt, dets = random_case(0, n_img=5)
    ev = from_cocoeval(coco_eval(gt, dets))
    with pytest.raises(ValueError, match="columns"):
        accumulate(ev, np.ones((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="non-negative integers"):
        accumulate(ev, np.full((1, 5), 0.5))
    with pytest.raises(ValueError, match="non-negative integers"):
        accumulate(ev, -np.ones((1, 5), dtype=np.int64))
