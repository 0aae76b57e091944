"""evaluate() end to end with a scripted fake model, plus a smoke run of a real yolov5n."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolo_core import YOLOv5Loss, build_model
from yolo_core.data.records import DatasetSplit, ImageRecord
from yolo_core.eval import COCO_STAT_NAMES, evaluate, records_to_coco_gt

S = 128  # network input (square letterbox)
NC = 2


def letterbox(h0: int, w0: int, size: int = S):
    gain = min(size / h0, size / w0)
    pad = ((size - round(w0 * gain)) / 2, (size - round(h0 * gain)) / 2)
    return (h0, w0), ((gain, gain), pad)


class ScriptedModel:
    """Returns, call after call, the decoded outputs it was given (a model-like callable)."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.training = False

    def __call__(self, imgs):
        assert imgs.dtype == torch.float32 and float(imgs.max()) <= 1.0
        return self.outputs.pop(0), [imgs.mean()]


def decoded(rows, n: int = 8) -> torch.Tensor:
    """rows of (x1, y1, x2, y2 in original px, conf, cls) + the letterbox -> one image's
    (n, 5+NC) decoded output in input px; unused anchors get obj 0."""
    out = torch.zeros(n, 5 + NC)
    for k, (box, conf, cls, (g, (pw, ph))) in enumerate(rows):
        x1, y1, x2, y2 = box[0] * g + pw, box[1] * g + ph, box[2] * g + pw, box[3] * g + ph
        out[k, :4] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        out[k, 4] = 1.0
        out[k, 5 + cls] = conf
    return out


def make_case(records, dets_per_image, batch_size=2):
    """Fake loader (list of batches) and model from records and per-image (xyxy, conf, cls)."""
    batches, outputs = [], []
    for start in range(0, len(records), batch_size):
        idx = list(range(start, min(start + batch_size, len(records))))
        shapes = [letterbox(records[i].height, records[i].width) for i in idx]
        imgs = torch.full((len(idx), 3, S, S), 114, dtype=torch.uint8)
        targets = torch.zeros(0, 6)
        outputs.append(torch.stack([decoded([(b, c, k, (sh[1][0][0], sh[1][1])) for b, c, k in dets_per_image[i]])
                                    for i, sh in zip(idx, shapes)]))
        batches.append((imgs, targets, idx, shapes))
    return batches, ScriptedModel(outputs)


def xyxy(rec, j):
    c, x, y, w, h = rec.labels[j]
    return [(x - w / 2) * rec.width, (y - h / 2) * rec.height, (x + w / 2) * rec.width, (y + h / 2) * rec.height]


@pytest.fixture()
def split():
    recs = [
        ImageRecord("a.jpg", 11, np.array([[0, 0.3, 0.4, 0.2, 0.3], [0, 0.7, 0.6, 0.3, 0.5]], np.float32), 200, 100),
        ImageRecord("b.jpg", 12, np.array([[1, 0.5, 0.5, 0.4, 0.2]], np.float32), 150, 300),
        ImageRecord("c.jpg", 13, np.zeros((0, 5), np.float32), 120, 120),
    ]
    return DatasetSplit(name="val", records=recs, names=["cat", "dog"], category_ids=[5, 9])


def test_perfect_detections(split):
    r = split.records
    dets = [[(xyxy(r[0], 0), 0.9, 0), (xyxy(r[0], 1), 0.8, 0)], [(xyxy(r[1], 0), 0.7, 1)], []]
    loader, model = make_case(r, dets)
    calls = []

    def loss_fn(raw, targets):
        calls.append(1)
        return None, torch.tensor([1.0, 2.0, 3.0]) * len(calls)  # batch 1: [1,2,3], batch 2: [2,4,6]

    res = evaluate(model, loader, split, loss_fn=loss_fn)
    m = res.metrics
    assert list(m) == ["precision", "recall", "map50_yolo", "map_yolo", *COCO_STAT_NAMES]
    assert m["precision"] == pytest.approx(1.0) and m["recall"] == pytest.approx(1.0)
    # YOLOv5's 101-point AP of a perfect class is 0.995 (its curve ends at precision 0 at recall 1)
    assert m["map50_yolo"] == pytest.approx(0.995) and m["map_yolo"] == pytest.approx(0.995)
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)
    torch.testing.assert_close(res.losses, torch.tensor([1.5, 3.0, 4.5]))
    assert len(res.predictions) == 3 and res.seconds > 0
    p = res.predictions[0]
    assert p["image_id"] == 11 and p["category_id"] == 5 and p["score"] == 0.9
    np.testing.assert_allclose(p["bbox"], [40, 25, 40, 30], atol=2e-3)  # original pixels, top-left xywh
    assert res.predictions[2]["category_id"] == 9


def test_empty_detections(split):
    loader, model = make_case(split.records, [[], [], []])
    res = evaluate(model, loader, split)
    assert res.predictions == [] and res.losses is None
    assert res.metrics["precision"] == 0 and res.metrics["map_yolo"] == 0
    assert res.metrics["map"] == 0 and res.metrics["ar100"] == 0


def test_hand_case_and_coco_against_pycocotools(split):
    """The hand case of test_metrics with perfect boxes (TP at every IoU):
    class 0: 0.9 TP, 0.8 FP, 0.7 TP (2 labels); class 1: 0.6 FP, 0.5 TP (1 label).
    -> P = (2/3 + 1/2)/2 = 7/12, R = 1, AP50 = (0.8283333 + 0.4975)/2 = mAP50-95."""
    r = split.records
    fp0 = [150, 5, 190, 20]      # far from every label of image a
    fp1 = [0, 0, 30, 30]         # far from the label of image b
    dets = [[(xyxy(r[0], 0), 0.9, 0), (fp0, 0.8, 0), (xyxy(r[0], 1), 0.7, 0)],
            [(fp1, 0.6, 1), (xyxy(r[1], 0), 0.5, 1)], []]
    loader, model = make_case(r, dets)
    res = evaluate(model, loader, split)
    m = res.metrics
    assert m["precision"] == pytest.approx(7 / 12) and m["recall"] == pytest.approx(1.0)
    assert m["map50_yolo"] == pytest.approx((0.8283333 + 0.4975) / 2, abs=1e-6)
    assert m["map_yolo"] == pytest.approx(m["map50_yolo"])
    # COCO stats equal pycocotools run directly on the same predictions and gt
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = records_to_coco_gt(split)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(res.predictions), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert [m[k] for k in COCO_STAT_NAMES] == list(ev.stats)
    loader, model = make_case(r, dets)
    fast = evaluate(model, loader, split, coco_backend="faster_coco_eval")
    np.testing.assert_allclose([fast.metrics[k] for k in COCO_STAT_NAMES], list(ev.stats), atol=1e-12)


def test_real_model_smoke_restores_mode(split):
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=NC)
    model.train()
    r = split.records
    shapes = [letterbox(rec.height, rec.width, 64) for rec in r[:2]]
    imgs = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    targets = torch.tensor([[0, 0, 0.3, 0.4, 0.2, 0.3], [1, 1, 0.5, 0.5, 0.4, 0.2]])
    head = model.head
    loss = YOLOv5Loss(head.anchors, NC)
    res = evaluate(model, [(imgs, targets, [0, 1], shapes)], split, loss_fn=loss)
    assert model.training
    assert res.losses.shape == (3,) and torch.isfinite(res.losses).all()
    assert set(COCO_STAT_NAMES) <= set(res.metrics)
