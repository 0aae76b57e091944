"""COCO's bbox evaluation kept per image, so that any weighting of the images re-accumulates it.

Why: a confidence interval over the validation images (a paired bootstrap) and AP on a
subset of images (scenes of a given density) both need COCO's metrics for many image
weightings. Re-running COCOeval for each costs minutes per resample on COCO val. Here
pycocotools' own per-image evaluation (COCOeval.evaluate: the matching of every detection
at every IoU threshold, per image, category and area range) runs once; `accumulate`
then repeats COCOeval.accumulate with an integer weight per image, vectorised over many
weightings at once. With every weight 1 the 12 stats equal pycocotools' bit for bit
(tests/test_image_eval.py); with 0/1 weights they equal COCOeval restricted to those
images (params.imgIds). A weight of 2 counts an image twice, as a bootstrap resample does.

How it stays exact and fast: within a category, COCO's precision at recall threshold r is
the largest precision at or after the first detection reaching recall r, and that is
always a true positive's. So only true positives' cumulative counts are kept, and the
false positives before each one are the weighted detections before it minus the true
positives and the ignored ones (both few) before it.
"""
from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: COCOeval's summarize(): (name, is AP, IoU threshold or None, area label, maxDets).
STATS: tuple[tuple[str, bool, float | None, str, int], ...] = (
    ("map", True, None, "all", 100), ("map50", True, 0.5, "all", 100), ("map75", True, 0.75, "all", 100),
    ("map_small", True, None, "small", 100), ("map_medium", True, None, "medium", 100),
    ("map_large", True, None, "large", 100),
    ("ar1", False, None, "all", 1), ("ar10", False, None, "all", 10), ("ar100", False, None, "all", 100),
    ("ar_small", False, None, "small", 100), ("ar_medium", False, None, "medium", 100),
    ("ar_large", False, None, "large", 100),
)
STAT_NAMES = tuple(s[0] for s in STATS)
_EPS = np.spacing(1)


@dataclass
class _TpList:
    """One area range and IoU threshold: the true positives and ignored detections in
    COCO's ranking order (positions into the area's detection list)."""

    tp_pos: np.ndarray      # (n_tp,) positions of true positives, ascending
    tp_in_s: np.ndarray     # (n_tp,) index of each true positive within s_pos
    s_pos: np.ndarray       # (n_s,) positions of true positives and ignored detections, ascending
    tp_cat: np.ndarray      # (K+1,) offsets of each category's true positives in tp_pos
    s_cat: np.ndarray       # (K+1,) offsets of each category's entries in s_pos
    tp_of_cat: np.ndarray   # (n_tp,) category index of each true positive


@dataclass
class _AreaList:
    """The detections of one area range that count at some IoU threshold, sorted by
    category and within it in COCOeval.accumulate's order (mergesort on -score over the
    images in id order)."""

    img: np.ndarray          # (D,) image index of each detection
    cat: np.ndarray          # (D,) category index of each detection
    tp: np.ndarray           # (T, D) true positive at each IoU threshold
    ig: np.ndarray           # (T, D) ignored at each IoU threshold
    cat_start: np.ndarray    # (K+1,) offsets of each category
    thresholds: list[_TpList]


@dataclass
class ImageEval:
    """One model's per-image COCO evaluation on one set of images (see the module docstring).

    npig: (I, K, A) non-ignored ground truths per image, category and area range;
    top_tp: maxDets m < max -> (I, K, T) true positives among the first m detections
    of each image and category, in area range 'all' (what AR@1 and AR@10 need).
    """

    img_ids: np.ndarray
    cat_ids: np.ndarray
    area_labels: tuple[str, ...]
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    max_dets: tuple[int, ...]
    npig: np.ndarray
    areas: list[_AreaList]
    top_tp: dict[int, np.ndarray]

    @property
    def n_images(self) -> int:
        return int(len(self.img_ids))

    def area_index(self, label: str) -> int:
        try:
            return self.area_labels.index(label)
        except ValueError:
            raise KeyError(f"no area range {label!r}; have {', '.join(self.area_labels)}") from None


def coco_eval(gt: dict, detections: Sequence[dict], img_ids: Sequence[int] | None = None,
              area_rng: Sequence[Sequence[float]] | None = None, area_labels: Sequence[str] | None = None,
              iou_thrs: Sequence[float] | None = None):
    """pycocotools' COCOeval('bbox') after evaluate() (per image), before accumulate().

    gt is a COCO dict (not modified). area_rng/area_labels replace COCO's four area ranges
    (the ranges apply to each annotation's and detection's 'area', which a caller may have
    set to another quantity, such as crowding). img_ids: default every image of gt.
    iou_thrs: other IoU thresholds than COCO's ten (TIDE's AP@0.5 needs only 0.5).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO()
        gt_api.dataset = {**gt, "annotations": [dict(a) for a in gt.get("annotations", [])]}
        gt_api.createIndex()
        dets = [dict(d) for d in detections]
        if dets:
            keep_area = [d.get("area") for d in dets]
            dt_api = gt_api.loadRes(dets)
            for ann, area in zip(dt_api.dataset["annotations"], keep_area):
                if area is not None:  # loadRes sets area = w*h; a caller's own value wins
                    ann["area"] = area
        else:
            dt_api = COCO()
            dt_api.dataset = {"images": list(gt["images"]), "categories": copy.deepcopy(gt["categories"]),
                              "annotations": []}
            dt_api.createIndex()
        ev = COCOeval(gt_api, dt_api, "bbox")
        ev.params.imgIds = sorted(int(i) for i in (img_ids if img_ids is not None else gt_api.getImgIds()))
        if area_rng is not None:
            ev.params.areaRng = [list(map(float, r)) for r in area_rng]
            ev.params.areaRngLbl = list(area_labels)
        if iou_thrs is not None:
            ev.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        ev.evaluate()
    return ev


def from_cocoeval(ev, background: set[int] | None = None) -> ImageEval:
    """The per-image evaluation of a COCOeval after evaluate().

    background: ids of detections that count as false positives in every area range when
    unmatched (COCO ignores an unmatched detection outside the range; for crowding ranges
    a detection far from every object belongs to none, and is kept in all).
    """
    p = ev.params
    img_ids = np.asarray(p.imgIds, dtype=np.int64)
    cat_ids = np.asarray(p.catIds, dtype=np.int64)
    I, K, A, T = len(img_ids), len(cat_ids), len(p.areaRng), len(p.iouThrs)
    max_det = p.maxDets[-1]
    npig = np.zeros((I, K, A), dtype=np.int64)
    top_tp = {m: np.zeros((I, K, T), dtype=np.int64) for m in p.maxDets[:-1]}
    a_all = next((a for a, r in enumerate(p.areaRngLbl) if r == "all"), 0)
    lists: list[dict[str, list]] = [{"img": [], "score": [], "tp": [], "ig": [], "cat": []} for _ in range(A)]
    for k in range(K):
        for a in range(A):
            base = k * A * I + a * I
            imgs, scores, tps, igs = [], [], [], []
            for i in range(I):
                e = ev.evalImgs[base + i]
                if e is None:
                    continue
                npig[i, k, a] = int(np.count_nonzero(e["gtIgnore"] == 0))
                d = len(e["dtScores"][:max_det])
                if not d:
                    continue
                dtm = e["dtMatches"][:, :max_det] > 0
                dtig = e["dtIgnore"][:, :max_det].astype(bool)
                if background:
                    bg = np.fromiter((i_ in background for i_ in e["dtIds"][:max_det]), bool, d)
                    dtig = dtig & ~(bg[None, :] & ~dtm)
                tp = dtm & ~dtig
                if a == a_all:
                    for m in top_tp:
                        top_tp[m][i, k] = tp[:, :m].sum(1)
                imgs.append(np.full(d, i, dtype=np.int32))
                scores.append(np.asarray(e["dtScores"][:max_det], dtype=np.float64))
                tps.append(tp)
                igs.append(dtig)
            if not imgs:
                continue
            sc = np.concatenate(scores)
            order = np.argsort(-sc, kind="mergesort")  # COCOeval.accumulate's order
            tp = np.concatenate(tps, axis=1)[:, order]
            ig = np.concatenate(igs, axis=1)[:, order]
            counts = ~ig.all(0)  # a detection ignored at every threshold plays no part
            lst = lists[a]
            lst["img"].append(np.concatenate(imgs)[order][counts])
            lst["tp"].append(tp[:, counts])
            lst["ig"].append(ig[:, counts])
            lst["cat"].append(np.full(int(counts.sum()), k, dtype=np.int32))
    areas = [_area_list(lst, K, T) for lst in lists]
    return ImageEval(img_ids, cat_ids, tuple(p.areaRngLbl), np.asarray(p.iouThrs, dtype=np.float64),
                     np.asarray(p.recThrs, dtype=np.float64), tuple(p.maxDets), npig, areas, top_tp)


def _area_list(lst: dict[str, list], K: int, T: int) -> _AreaList:
    if lst["img"]:
        img = np.concatenate(lst["img"])
        tp = np.concatenate(lst["tp"], axis=1)
        ig = np.concatenate(lst["ig"], axis=1)
        cat = np.concatenate(lst["cat"])
    else:
        img, cat = np.zeros(0, np.int32), np.zeros(0, np.int32)
        tp = ig = np.zeros((T, 0), bool)
    # detections after a category's last true positive (at any threshold) change no
    # precision COCO reads: dropped, which keeps the resampling cost near the true positives'
    hit = tp.any(0)
    last = np.full(K, -1, dtype=np.int64)
    np.maximum.at(last, cat[hit], np.flatnonzero(hit))
    keep = np.flatnonzero(np.arange(len(cat)) <= last[cat]) if len(cat) else np.zeros(0, np.int64)
    img, cat, tp, ig = img[keep], cat[keep], tp[:, keep], ig[:, keep]
    cat_start = np.searchsorted(cat, np.arange(K + 1)).astype(np.int64)
    thresholds = []
    for t in range(T):
        tp_pos = np.flatnonzero(tp[t])
        s_pos = np.flatnonzero(tp[t] | ig[t])
        tp_cat = np.searchsorted(tp_pos, cat_start)
        thresholds.append(_TpList(tp_pos, np.searchsorted(s_pos, tp_pos), s_pos, tp_cat,
                                  np.searchsorted(s_pos, cat_start), cat[tp_pos].astype(np.int64)))
    return _AreaList(img, cat, tp, ig, cat_start, thresholds)


def restrict(ev: ImageEval, mask: np.ndarray) -> ImageEval:
    """The evaluation of the images where mask is non-zero only: the same numbers as weights
    mask (0/1) on the whole set, at a cost proportional to the images kept."""
    keep = np.flatnonzero(np.asarray(mask) != 0)
    new_index = np.full(ev.n_images, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    K, T = len(ev.cat_ids), len(ev.iou_thrs)
    areas = []
    for lst in ev.areas:
        sel = new_index[lst.img] >= 0
        areas.append(_area_list({"img": [new_index[lst.img[sel]].astype(np.int32)], "tp": [lst.tp[:, sel]],
                                 "ig": [lst.ig[:, sel]], "cat": [lst.cat[sel]]}, K, T))
    return ImageEval(ev.img_ids[keep], ev.cat_ids, ev.area_labels, ev.iou_thrs, ev.rec_thrs, ev.max_dets,
                     ev.npig[keep], areas, {m: c[keep] for m, c in ev.top_tp.items()})


@dataclass
class Accumulated:
    """COCOeval.accumulate's arrays for B image weightings: precision (B, T, R, K, A) at
    maxDets max; recall (B, T, K, A) at maxDets max; recall_top m -> (B, T, K) in area
    'all'. -1 where a category has no (weighted) ground truth, as COCO's."""

    precision: np.ndarray
    recall: np.ndarray
    recall_top: dict[int, np.ndarray]
    source: ImageEval


def _cum_excl(x: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 1 with a leading 0 column: out[:, j] = sum of x[:, :j]."""
    out = np.zeros((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def accumulate(ev: ImageEval, weights: np.ndarray) -> Accumulated:
    """COCOeval.accumulate for each row of weights (B, I) of non-negative integers.

    Per category, COCO's precision at recall threshold r is the largest precision among
    the true positives whose recall reaches r (the first one and every later one). With
    c(j) = the number of thresholds at or below true positive j's recall, that is the
    largest precision over c >= r + 1: a maximum per (category, c) run, then a reverse
    running maximum over the 102 values of c. Everything is exact (sums of integers,
    the same divisions as pycocotools, maxima).
    """
    w = np.atleast_2d(np.asarray(weights))
    if w.ndim != 2 or w.shape[1] != ev.n_images:
        raise ValueError(f"weights have {w.shape[-1]} columns for {ev.n_images} images")
    if not np.issubdtype(w.dtype, np.integer) or (w < 0).any():
        raise ValueError("image weights must be non-negative integers")
    if w.sum(1).max(initial=0) * max(ev.max_dets) * len(ev.cat_ids) >= 2**31:  # detections per image <= K x maxDets
        raise ValueError("image weights too large for 32-bit detection counts")
    w = w.astype(np.int32)  # counts of detections stay far below 2**31: half the memory traffic
    B, I = w.shape
    _, K, A = ev.npig.shape
    T, R = len(ev.iou_thrs), len(ev.rec_thrs)
    npig = (w.astype(np.float64) @ ev.npig.reshape(I, K * A).astype(np.float64)).reshape(B, K, A)
    precision = np.full((B, T, R, K, A), -1.0)
    recall = np.full((B, T, K, A), -1.0)
    row_key = np.arange(B, dtype=np.int64)[:, None] * (K * (R + 1))
    for a, lst in enumerate(ev.areas):
        valid = npig[:, :, a] > 0                                  # (B, K)
        wd = w[:, lst.img]
        wc = _cum_excl(wd)                                         # weighted detections before each position
        for t, tl in enumerate(lst.thresholds):
            q = np.zeros((B, K, R + 1))
            total = np.zeros((B, K))
            if len(tl.tp_pos):
                cat = tl.tp_of_cat
                ws = wd[:, tl.s_pos]
                sc = _cum_excl(ws)
                tc = _cum_excl(ws[:, tl.tp_in_s])
                tp = tc[:, 1:] - tc[:, tl.tp_cat[cat]]
                fp = (wc[:, tl.tp_pos + 1] - wc[:, lst.cat_start[cat]]) - (sc[:, tl.tp_in_s + 1] - sc[:, tl.s_cat[cat]])
                tp, fp = tp.astype(np.float64), fp.astype(np.float64)
                n = npig[:, cat, a]
                with np.errstate(divide="ignore", invalid="ignore"):
                    rc = tp / n
                pr = tp / (fp + tp + _EPS)
                c = np.searchsorted(ev.rec_thrs, np.where(n > 0, rc, 0.0), side="right")
                key = (row_key + cat[None, :] * (R + 1) + c).ravel()
                starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
                flat = q.reshape(-1)
                flat[key[starts]] = np.maximum.reduceat(pr.ravel(), starts)
                q = np.maximum.accumulate(q[:, :, ::-1], axis=2)[:, :, ::-1]
                total = (tc[:, tl.tp_cat[1:]] - tc[:, tl.tp_cat[:-1]]).astype(np.float64)
            precision[:, t, :, :, a] = np.where(valid[:, None, :], q[:, :, 1:].transpose(0, 2, 1), -1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                recall[:, t, :, a] = np.where(valid, total / npig[:, :, a], -1.0)
    recall_top = {}
    a_all = ev.area_index("all") if "all" in ev.area_labels else 0
    for m, counts in ev.top_tp.items():
        hits = (w.astype(np.float64) @ counts.reshape(I, K * T).astype(np.float64)).reshape(B, K, T)
        n = npig[:, :, a_all]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = hits / n[:, :, None]
        recall_top[m] = np.where((n > 0)[:, :, None], r, -1.0).transpose(0, 2, 1)
    return Accumulated(precision, recall, recall_top, ev)


def _masked_mean(s: np.ndarray) -> float:
    """COCOeval.summarize's mean over the entries > -1 (-1 when there is none)."""
    v = s[s > -1]
    return -1.0 if len(v) == 0 else float(np.mean(v))


def mean_ap(acc: Accumulated, area: str = "all", iou: float | None = None) -> np.ndarray:
    """AP per weighting (B,) as COCOeval.summarize: mean over IoU thresholds (or one),
    recall thresholds and categories with ground truth."""
    a = acc.source.area_index(area)
    s = acc.precision[..., a]
    if iou is not None:
        s = s[:, np.where(iou == acc.source.iou_thrs)[0]]
    return np.array([_masked_mean(s[b]) for b in range(len(s))])


def mean_ar(acc: Accumulated, area: str = "all", max_det: int | None = None) -> np.ndarray:
    """AR per weighting (B,) as COCOeval.summarize."""
    src = acc.source
    if max_det is None or max_det == src.max_dets[-1]:
        s = acc.recall[..., src.area_index(area)]
    elif area == "all" and max_det in acc.recall_top:
        s = acc.recall_top[max_det]
    else:
        raise KeyError(f"AR at maxDets {max_det} is kept for area 'all' only")
    return np.array([_masked_mean(s[b]) for b in range(len(s))])


def coco_stats(acc: Accumulated) -> dict[str, np.ndarray]:
    """The 12 numbers of COCOeval.summarize() per weighting, by STAT_NAMES."""
    out = {}
    for name, is_ap, iou, area, max_det in STATS:
        out[name] = mean_ap(acc, area, iou) if is_ap else mean_ar(acc, area, max_det)
    return out
