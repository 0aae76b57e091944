"""What kind of errors a detector makes: TIDE's six error types and what fixing each is worth.

TIDE (Bolya et al., ECCV 2020) sorts every false positive at IoU t_f = 0.5 into one type
(tested in this order, as its reference code tidecv does) and every missed object into
one more:

- Loc: IoU with an object of its class in [t_b, t_f] (t_b = 0.1): found, badly placed.
- Cls: IoU >= t_f with an object of another class: placed well, wrong class.
- Dupe: IoU >= t_f with an object of its class that a higher-scoring detection matched.
- Bkg: IoU <= t_b with every object: fired on background.
- Both: none of the above (wrong class and badly placed).
- Miss: an object no detection matched and no Loc or Cls error points at.

An error type's dAP is how much AP@0.5 rises when only the errors of that type are
fixed by an oracle: Loc and Cls detections become the true positive of the object they
point at (when no other detection holds it; else they are removed), Dupe, Bkg and Both
detections are removed, missed objects are removed from the ground truth. tidecv itself
is not used: it needs opencv-python, which conflicts with this project's
opencv-python-headless; and here AP@0.5 is COCO's own (pycocotools), the same AP the
rest of the report gives, where tidecv computes its own.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from analysis.image_eval import coco_eval

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
POS_IOU = 0.5
BG_IOU = 0.1


@dataclass
class Errors:
    """One run's errors: the type of each false positive (by index into the detections),
    the missed objects, the AP@0.5 and each type's dAP (AP@0.5 points gained when fixed)."""

    ap50: float
    by_detection: dict[int, str] = field(default_factory=dict)
    targets: dict[int, int] = field(default_factory=dict)    # Loc/Cls detection -> annotation index
    missed: list[int] = field(default_factory=list)          # annotation indices
    dap: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {t: 0 for t in ERROR_TYPES}
        for t in self.by_detection.values():
            out[t] += 1
        out["Miss"] = len(self.missed)
        return out


def _ap50(gt: dict, dets: Sequence[dict]) -> tuple[float, object]:
    ev = coco_eval(gt, dets, iou_thrs=[POS_IOU])
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
        ev.summarize()
    return max(float(ev.stats[0]), 0.0), ev


def _matches(ev, n_dets: int) -> tuple[np.ndarray, set[int]]:
    """(per detection: matched annotation id or 0, the annotation ids matched) at IoU 0.5,
    area 'all', from COCOeval's per-image evaluation (detection ids are 1-based positions)."""
    det_match = np.zeros(n_dets, dtype=np.int64)
    a_all = ev.params.areaRngLbl.index("all")
    for e in ev.evalImgs:
        if e is None or e["aRng"] != ev.params.areaRng[a_all]:
            continue
        for did, m in zip(e["dtIds"], e["dtMatches"][0]):
            det_match[did - 1] = int(m)
    return det_match, {int(m) for m in det_match if m}


def _ious(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(list(a), list(b), [0] * len(b)))


def classify(gt: dict, dets: Sequence[dict]) -> Errors:
    """Every false positive's type and the missed objects (see the module docstring)."""
    anns = gt.get("annotations", [])
    ap50, ev = _ap50(gt, dets)
    det_match, matched = _matches(ev, len(dets))
    solid_by_img: dict[int, list[int]] = {}
    for k, a in enumerate(anns):
        if not a.get("iscrowd", 0) and not a.get("ignore", 0):
            solid_by_img.setdefault(int(a["image_id"]), []).append(k)
    dets_by_img: dict[int, list[int]] = {}
    for k, d in enumerate(dets):
        dets_by_img.setdefault(int(d["image_id"]), []).append(k)
    kept = {did - 1 for e in ev.evalImgs if e is not None for did in e["dtIds"]}  # within maxDets
    out = Errors(ap50)
    used_by_errors: set[int] = set()
    for img, idx in dets_by_img.items():
        objs = solid_by_img.get(img, [])
        iou = _ious([dets[k]["bbox"] for k in idx], [anns[j]["bbox"] for j in objs])
        cls = np.array([anns[j]["category_id"] for j in objs])
        used = np.array([int(anns[j]["id"]) in matched for j in objs], dtype=bool)
        for row, k in enumerate(idx):
            if det_match[k] or k not in kept:
                continue  # a true positive (or matched to a crowd region), or beyond maxDets
            if not objs:
                out.by_detection[k] = "Bkg"
                continue
            same = cls == dets[k]["category_id"]
            r = iou[row]
            cand = np.where(same, r, -1.0)
            j = int(cand.argmax())
            if same.any() and BG_IOU <= cand[j] <= POS_IOU:
                out.by_detection[k], out.targets[k] = "Loc", objs[j]
                used_by_errors.add(objs[j])
                continue
            other = np.where(~same, r, -1.0)
            j = int(other.argmax())
            if (~same).any() and other[j] >= POS_IOU:
                out.by_detection[k], out.targets[k] = "Cls", objs[j]
                used_by_errors.add(objs[j])
                continue
            dupe = np.where(same & used, r, -1.0)
            if (same & used).any() and dupe.max() >= POS_IOU:
                out.by_detection[k] = "Dupe"
                continue
            out.by_detection[k] = "Bkg" if r.max() <= BG_IOU else "Both"
    out.missed = [j for js in solid_by_img.values() for j in js
                  if int(anns[j]["id"]) not in matched and j not in used_by_errors]
    for t in ERROR_TYPES:
        fixed_gt, fixed_dets = fix(gt, dets, out, t, matched)
        out.dap[t] = _ap50(fixed_gt, fixed_dets)[0] - ap50
    return out


def fix(gt: dict, dets: Sequence[dict], errors: Errors, kind: str, matched: set[int]) -> tuple[dict, list[dict]]:
    """The ground truth and detections with every error of one kind fixed by the oracle."""
    anns = gt.get("annotations", [])
    if kind == "Miss":
        drop = {int(anns[j]["id"]) for j in errors.missed}
        return {**gt, "annotations": [a for a in anns if int(a["id"]) not in drop]}, [dict(d) for d in dets]
    taken = set(matched)
    order = sorted(range(len(dets)), key=lambda k: -float(dets[k]["score"]))
    keep: dict[int, dict] = {}
    for k in order:
        d = dets[k]
        t = errors.by_detection.get(k)
        if t != kind:
            keep[k] = dict(d)
        elif kind in ("Loc", "Cls"):
            a = anns[errors.targets[k]]
            if int(a["id"]) not in taken:  # becomes the object's true positive
                taken.add(int(a["id"]))
                keep[k] = {**d, "category_id": a["category_id"], "bbox": list(a["bbox"])}
        # Dupe, Bkg, Both (and Loc/Cls whose object is held): removed
    out = [keep[k] for k in range(len(dets)) if k in keep]
    return gt, out
