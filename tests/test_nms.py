"""non_max_suppression against a per-image loop written like the official YOLOv5 v7.0 one."""
from __future__ import annotations

import pytest
import torch
import torchvision

from yolo_core.eval.nms import non_max_suppression


def reference_nms(prediction, conf_thres=0.25, iou_thres=0.45, classes=None, agnostic=False,
                  multi_label=False, max_det=300, max_nms=30000):
    """The official v7.0 loop (utils/general.py) without masks, apriori labels and time limit."""
    bs, nc = prediction.shape[0], prediction.shape[2] - 5
    xc = prediction[..., 4] > conf_thres
    multi_label &= nc > 1
    output = [torch.zeros((0, 6), device=prediction.device)] * bs
    for xi, x in enumerate(prediction):
        x = x[xc[xi]].clone()
        if not x.shape[0]:
            continue
        x[:, 5:] *= x[:, 4:5]
        box = torch.cat((x[:, :2] - x[:, 2:4] / 2, x[:, :2] + x[:, 2:4] / 2), 1)
        if multi_label:
            i, j = (x[:, 5:] > conf_thres).nonzero(as_tuple=False).T
            x = torch.cat((box[i], x[i, 5 + j, None], j[:, None].float()), 1)
        else:
            conf, j = x[:, 5:].max(1, keepdim=True)
            x = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
        if classes is not None:
            x = x[(x[:, 5:6] == torch.tensor(classes, device=x.device)).any(1)]
        if not x.shape[0]:
            continue
        x = x[x[:, 4].argsort(descending=True)[:max_nms]]
        c = x[:, 5:6] * (0 if agnostic else 7680)
        i = torchvision.ops.nms(x[:, :4] + c, x[:, 4], iou_thres)[:max_det]
        output[xi] = x[i]
    return output


def random_prediction(bs: int, n: int, nc: int, seed: int, size: float = 160.0) -> torch.Tensor:
    """Boxes clustered around a few centres (so NMS really suppresses), random obj/cls."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(bs, 6, 2, generator=g) * size
    pick = torch.randint(0, 6, (bs, n), generator=g)
    xy = centres.gather(1, pick[..., None].expand(bs, n, 2)) + torch.randn(bs, n, 2, generator=g) * 4
    wh = 10 + torch.rand(bs, n, 2, generator=g) * 40
    obj = torch.rand(bs, n, 1, generator=g)
    cls = torch.rand(bs, n, nc, generator=g)
    return torch.cat((xy, wh, obj, cls), 2)


def assert_same(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


CASES = [
    dict(conf_thres=0.25, iou_thres=0.45),
    dict(conf_thres=0.001, iou_thres=0.6, multi_label=True, max_det=300),
    dict(conf_thres=0.05, iou_thres=0.5, multi_label=True, max_det=7),
    dict(conf_thres=0.05, iou_thres=0.5, agnostic=True, max_det=20),
    dict(conf_thres=0.01, iou_thres=0.3, multi_label=True, agnostic=True),
    dict(conf_thres=0.02, iou_thres=0.6, multi_label=True, classes=[1, 3]),
    dict(conf_thres=0.001, iou_thres=0.6, multi_label=True, max_nms=100, max_det=50),
]


@pytest.mark.parametrize("kw", CASES)
def test_matches_official_loop(kw):
    pred = random_prediction(bs=3, n=500, nc=5, seed=len(str(kw)))
    assert_same(non_max_suppression(pred, **kw), reference_nms(pred, **kw))


def test_buckets_and_chunks_match(monkeypatch):
    """Force many small NMS buckets and one image per candidate chunk: same answer."""
    import yolo_core.eval.nms as nms_mod
    pred = random_prediction(bs=4, n=600, nc=6, seed=7)
    kw = dict(conf_thres=0.001, iou_thres=0.6, multi_label=True)
    ref = reference_nms(pred, **kw)
    monkeypatch.setattr(nms_mod, "_CPU_BUCKET", 16)
    monkeypatch.setattr(nms_mod, "_CHUNK_ELEMENTS", 600 * 6)
    assert_same(non_max_suppression(pred, **kw), ref)


def test_sorted_capped_and_suppressed():
    pred = random_prediction(bs=2, n=400, nc=3, seed=3)
    out = non_max_suppression(pred, conf_thres=0.001, iou_thres=0.5, multi_label=True, max_det=40)
    for det in out:
        assert 0 < len(det) <= 40
        assert torch.all(det[:-1, 4] >= det[1:, 4])
        for c in det[:, 5].unique():
            b = det[det[:, 5] == c, :4]
            iou = torchvision.ops.box_iou(b, b).fill_diagonal_(0)
            assert iou.max() <= 0.5


def test_hand_case():
    """Two overlapping boxes of class 0 (IoU 0.6) and one of class 1 on top of them."""
    p = torch.zeros(1, 4, 7)
    p[0, 0] = torch.tensor([50, 50, 20, 20, 0.9, 0.9, 0.1])    # score 0.81, class 0
    p[0, 1] = torch.tensor([54, 50, 20, 20, 0.8, 0.9, 0.2])    # IoU 320/480 = 0.667 with box 0, score 0.72
    p[0, 2] = torch.tensor([50, 50, 20, 20, 0.5, 0.1, 0.8])    # class 1, 0.4
    p[0, 3] = torch.tensor([10, 10, 4, 4, 0.2, 0.9, 0.9])      # obj 0.2 <= conf 0.2: not a candidate
    det = non_max_suppression(p, conf_thres=0.2, iou_thres=0.6)[0]
    expected = torch.tensor([[40, 40, 60, 60, 0.81, 0], [40, 40, 60, 60, 0.4, 1]])
    torch.testing.assert_close(det, expected)
    det = non_max_suppression(p, conf_thres=0.2, iou_thres=0.7)[0]  # 0.667 < 0.7: both kept
    torch.testing.assert_close(det[:, 4], torch.tensor([0.81, 0.72, 0.4]))
    det = non_max_suppression(p, conf_thres=0.2, iou_thres=0.6, agnostic=True)[0]
    torch.testing.assert_close(det[:, 4], torch.tensor([0.81]))


def test_empty_and_single_class():
    pred = random_prediction(bs=2, n=50, nc=1, seed=1)
    out = non_max_suppression(pred, conf_thres=0.999, iou_thres=0.5)
    assert [d.shape for d in out] == [torch.Size([0, 6])] * 2
    kw = dict(conf_thres=0.1, iou_thres=0.5, multi_label=True)
    assert_same(non_max_suppression(pred, **kw), reference_nms(pred, **kw))
    assert_same(non_max_suppression((pred, None), **kw), reference_nms(pred, **kw))
