"""AutoAnchor: the official check_anchors / kmean_anchors (utils/autoanchor.py, v7.0).

Before a fresh run trains, the head's anchors are scored against the training labels
(best possible recall: the share of boxes within anchor_t of some anchor, with YOLOv5's
0.9-1.1 scale jitter). Below 0.98 new anchors are fitted (k-means on whitened box sizes,
then 1,000 generations of mutation) and kept only if they raise the recall. The numbers
follow the official code; its global RNGs are replaced by generators seeded from the
run's seed, so a run's anchors are a function of its config like everything else.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.cluster.vq import kmeans

LOG = logging.getLogger("yolo_core.train")
BPR_THRESHOLD = 0.98  # the official's: below it, anchors are recomputed


def label_wh(image_wh: np.ndarray, labels: Sequence[np.ndarray], imgsz: int) -> np.ndarray:
    """Box (w, h) in pixels at training size: each image scaled so its long side is imgsz.

    image_wh: (n, 2) original (w, h); labels: per image (m, 5) [cls, x, y, w, h] normalised.
    """
    shapes = imgsz * image_wh / image_wh.max(1, keepdims=True)
    rows = [lb[:, 3:5] * s for s, lb in zip(shapes, labels) if len(lb)]
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 2))


def _ratio_metric(wh: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per box and anchor the worse of the w and h ratios (<= 1), and each box's best anchor."""
    r = wh[:, None] / k[None]
    x = torch.min(r, 1 / r).min(2)[0]
    return x, x.max(1)[0]


def fit_metrics(wh: np.ndarray, anchors: np.ndarray, thr: float) -> tuple[float, float]:
    """(best possible recall, anchors above threshold per box) of anchors (n, 2) in pixels."""
    x, best = _ratio_metric(torch.as_tensor(wh, dtype=torch.float32), torch.as_tensor(anchors, dtype=torch.float32))
    return float((best > 1 / thr).float().mean()), float((x > 1 / thr).float().sum(1).mean())


def kmean_anchors(wh0: np.ndarray, n: int, thr: float, img_size: int, rng: np.random.RandomState,
                  py_rng: random.Random, gen: int = 1000) -> np.ndarray:
    """The official kmean_anchors on box sizes wh0 (pixels): k-means, then genetic evolution.

    Returns n anchors (w, h) in pixels, sorted by area (small to large)."""
    thr = 1 / thr
    wh = wh0[(wh0 >= 2.0).any(1)].astype(np.float32)  # the official ignores boxes under 2 px
    tiny = int((wh0 < 3.0).any(1).sum())
    if tiny:
        LOG.info("AutoAnchor: %d of %d labels are < 3 pixels at imgsz %d", tiny, len(wh0), img_size)
    k = None
    if n <= len(wh):
        s = wh.std(0)
        if np.all(s > 0):
            k = kmeans(wh / s, n, iter=30, rng=np.random.default_rng(rng.randint(2**31)))[0] * s
            if len(k) != n:  # k-means returns fewer centres when sizes repeat
                k = None
    if k is None:
        LOG.warning("AutoAnchor: k-means could not give %d anchors from %d boxes; random init instead", n, len(wh))
        k = np.sort(rng.rand(n * 2)).reshape(n, 2) * img_size
    wh_t = torch.tensor(wh, dtype=torch.float32)

    def fitness(anchors: np.ndarray) -> float:
        _, best = _ratio_metric(wh_t, torch.tensor(anchors, dtype=torch.float32))
        return float((best * (best > thr).float()).mean())

    k = k[np.argsort(k.prod(1))]
    f, shape, mp, sigma = fitness(k), k.shape, 0.9, 0.1
    for _ in range(gen):
        v = np.ones(shape)
        while (v == 1).all():  # mutate until something changes
            v = ((rng.random_sample(shape) < mp) * py_rng.random() * rng.randn(*shape) * sigma + 1).clip(0.3, 3.0)
        kg = (k.copy() * v).clip(min=2.0)
        fg = fitness(kg)
        if fg > f:
            f, k = fg, kg.copy()
    return k[np.argsort(k.prod(1))].astype(np.float32)


@torch.no_grad()
def check_anchors(head: torch.nn.Module, image_wh: np.ndarray, labels: Sequence[np.ndarray], imgsz: int,
                  thr: float, seed: int = 0) -> dict[str, Any]:
    """Score the head's anchors on the training labels and replace them (in place) when the
    best possible recall is below 0.98 and evolved anchors do better.

    head: a Detect (anchors buffer (nl, na, 2) in stride units, stride buffer). Returns a
    JSON-able report: bpr/aat before, whether anchors were replaced, the anchors in pixels.
    """
    rng, py_rng = np.random.RandomState(seed % 2**32), random.Random(seed)
    stride = head.stride.to(head.anchors.device).view(-1, 1, 1)
    current = (head.anchors * stride).cpu().view(-1, 2).numpy()
    wh0 = label_wh(np.asarray(image_wh, dtype=np.float64), labels, imgsz)
    if not len(wh0):
        raise ValueError("AutoAnchor: the training split has no labelled boxes")
    wh = wh0 * rng.uniform(0.9, 1.1, size=(len(wh0), 1))  # the official's scale jitter
    bpr, aat = fit_metrics(wh, current, thr)
    report: dict[str, Any] = {"bpr": round(bpr, 4), "anchors_per_target": round(aat, 3), "replaced": False}
    msg = f"AutoAnchor: {aat:.2f} anchors/target, {bpr:.3f} Best Possible Recall (BPR)"
    if bpr > BPR_THRESHOLD:
        LOG.info("%s. Current anchors are a good fit to the dataset", msg)
    else:
        LOG.info("%s. Anchors are a poor fit to the dataset, evolving new ones", msg)
        new = kmean_anchors(wh0, len(current), thr, imgsz, rng, py_rng)
        new_bpr = fit_metrics(wh, new, thr)[0]
        report["new_bpr"] = round(new_bpr, 4)
        if new_bpr > bpr:
            anchors = torch.tensor(new, device=head.anchors.device).type_as(head.anchors).view_as(head.anchors)
            area = anchors.prod(-1).mean(-1).view(-1)
            if (area[-1] - area[0]).sign() != (stride.view(-1)[-1] - stride.view(-1)[0]).sign():
                anchors = anchors.flip(0)  # check_anchor_order: small anchors on the fine level
            head.anchors[:] = anchors / stride
            report["replaced"] = True
            LOG.info("AutoAnchor: new anchors (BPR %.4f) replace the default ones", new_bpr)
        else:
            LOG.info("AutoAnchor: evolved anchors are no better (BPR %.4f); keeping the original ones", new_bpr)
    report["anchors_px"] = [[round(float(v), 2) for v in a] for a in (head.anchors * stride).cpu().view(-1, 2)]
    return report
