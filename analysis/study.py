"""The study's answer for one baseline-vs-candidate pair of configurations, from run directories.

For the runs of the two rows that share a seed (a seed pair), each run's predictions.json
is re-evaluated per image against the ground truth it was scored on (eval_gt.json.gz):
COCO's own per-image evaluation, then re-accumulated for the paired image bootstrap
(analysis/bootstrap.py), the scene-density bins and the crowding bins (analysis/subsets.py).
What it gives: the verdict (analysis/verdict.py), the small-object metrics, AP per density
and crowding bin, and the per-class AP changes, each delta with its image-bootstrap
interval.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from analysis import subsets, tide
from analysis.bootstrap import BootstrapDelta, Metric, paired_bootstrap
from analysis.image_eval import ImageEval, accumulate, coco_eval, from_cocoeval, mean_ap, mean_ar
from analysis.tables import Config, Pair, _norm, fmt_value
from analysis.verdict import MARGIN_POINTS, Verdict, decide, points

GT_FILE = "eval_gt.json.gz"
PREDICTIONS = "predictions.json"
#: The small-object view (and the overall numbers beside it): name -> (title, metric).
OBJECT_METRICS: dict[str, tuple[str, Metric]] = {
    "map": ("mAP@0.5:0.95 (COCO)", mean_ap),
    "map50": ("mAP@0.5 (COCO)", lambda a: mean_ap(a, iou=0.5)),
    "map_small": ("APs (COCO)", lambda a: mean_ap(a, "small")),
    "map50_small": ("AP@0.5 small (COCO)", lambda a: mean_ap(a, "small", iou=0.5)),
    "ar_small": ("AR@100 small (COCO)", lambda a: mean_ar(a, "small")),
    "map_medium": ("APm (COCO)", lambda a: mean_ap(a, "medium")),
    "map_large": ("APl (COCO)", lambda a: mean_ap(a, "large")),
}


#: A density bin with fewer images gets no bootstrap interval: resampling 1 or 2 images gives
#: a near-zero spread that would read as certainty.
MIN_BIN_IMAGES = 10


class RunFilesMissing(FileNotFoundError):
    """A run lacks predictions.json or eval_gt.json.gz (older code, or an unfinished run)."""


def load_run_files(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """(evaluated ground truth, detections) of a completed run."""
    run_dir = Path(run_dir)
    gt_path, det_path = run_dir / GT_FILE, run_dir / PREDICTIONS
    for p in (gt_path, det_path):
        if not p.is_file():
            raise RunFilesMissing(f"{p} is missing (runs of code older than the per-image statistics have none)")
    try:
        with gzip.open(gt_path, "rt", encoding="utf-8") as f:
            gt = json.load(f)
        dets = json.loads(det_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, EOFError) as e:
        raise RunFilesMissing(f"{run_dir}: unreadable {GT_FILE} or {PREDICTIONS} ({e})") from e
    if not isinstance(gt, dict) or not isinstance(dets, list):
        raise RunFilesMissing(f"{run_dir}: {GT_FILE} is not a COCO dict or {PREDICTIONS} not a list")
    return gt, dets


@dataclass
class RunEval:
    """One run re-evaluated: standard areas, crowding bins, and its ground truth."""

    run_dir: str
    gt: dict
    detections: list[dict]
    standard: ImageEval
    crowding: ImageEval
    crowding_bins: list[subsets.Bin]


def evaluate_run(run_dir: str | Path, crowding_edges: Sequence[float] = subsets.CROWDING_EDGES) -> RunEval:
    gt, dets = load_run_files(run_dir)
    img_ids = [int(im["id"]) for im in gt.get("images", [])]
    standard = from_cocoeval(coco_eval(gt, dets, img_ids))
    crowd, bins = subsets.crowding_eval(gt, dets, img_ids, crowding_edges)
    return RunEval(str(run_dir), gt, dets, standard, crowd, bins)


@dataclass
class DeltaRow:
    """One metric or bin: baseline and candidate means over the pairs, the delta, its interval."""

    name: str
    title: str
    baseline: float
    candidate: float
    delta: BootstrapDelta
    n_images: int | None = None
    n_objects: int | None = None


@dataclass
class Study:
    """Everything the report says about the pair. `missing`: why something could not be computed."""

    pair: Pair
    seeds: list[Any]
    unpaired: dict[str, list[Any]]
    verdict: Verdict | None
    objects: list[DeltaRow] = field(default_factory=list)
    density: list[DeltaRow] = field(default_factory=list)
    crowding: list[DeltaRow] = field(default_factory=list)
    per_class: list[tuple[str, float, float, float]] = field(default_factory=list)
    errors: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # type, dAP b/c, count b/c
    n_images: int = 0
    n_objects: int = 0
    n_resamples: int = 0
    notes: list[str] = field(default_factory=list)
    missing: str = ""


def _runs_by_seed(c: Config) -> dict[Any, str]:
    if "seed" not in c.runs.columns:
        return {None: str(c.runs["run_dir"].iloc[0])} if c.n == 1 else {}
    out: dict[Any, str] = {}
    for _, r in c.runs.sort_values("run_dir").iterrows():
        out.setdefault(_norm(r["seed"]), str(r["run_dir"]))
    return out


def _value(acc_fn: Metric, ev: ImageEval, mask: np.ndarray | None = None) -> float:
    w = np.ones((1, ev.n_images), dtype=np.int64) if mask is None else np.asarray(mask, dtype=np.int64)[None]
    v = float(acc_fn(accumulate(ev, w))[0])
    return math.nan if v < 0 else v


def _row(name: str, title: str, fn: Metric, base: list[ImageEval], cand: list[ImageEval], boot: BootstrapDelta,
         mask: np.ndarray | None = None, **counts: int) -> DeltaRow:
    vb = float(np.mean([_value(fn, e, mask) for e in base]))
    vc = float(np.mean([_value(fn, e, mask) for e in cand]))
    return DeltaRow(name, title, vb, vc, boot, **counts)


def _same_ground_truth(evals: Sequence[RunEval]) -> bool:
    first = evals[0].gt
    return all(e.gt == first for e in evals[1:])


def per_class_changes(base: list[ImageEval], cand: list[ImageEval], names: dict[int, str]) -> list[tuple[str, float, float, float]]:
    """(class, baseline AP, candidate AP, delta) per category with ground truth, mean over pairs,
    sorted by delta (COCO AP@0.5:0.95 of that category)."""
    def per_cat(ev: ImageEval) -> np.ndarray:
        p = accumulate(ev, np.ones((1, ev.n_images), dtype=np.int64)).precision[0, :, :, :, ev.area_index("all")]
        valid = (p > -1).all(axis=(0, 1))
        return np.where(valid, p.mean(axis=(0, 1)), np.nan)

    pb = np.nanmean([per_cat(e) for e in base], axis=0) if base else np.zeros(0)
    pc = np.nanmean([per_cat(e) for e in cand], axis=0) if cand else np.zeros(0)
    rows = [(names.get(int(cid), str(cid)), float(b), float(c), float(c - b))
            for cid, b, c in zip(base[0].cat_ids, pb, pc) if math.isfinite(b) and math.isfinite(c)]
    return sorted(rows, key=lambda r: r[3])


def study_pair(pair: Pair, n_resamples: int = 1000, seed: int = 0, margin_points: float = MARGIN_POINTS,
               density_edges: Sequence[int] = subsets.DENSITY_EDGES,
               crowding_edges: Sequence[float] = subsets.CROWDING_EDGES) -> Study:
    """The verdict and the views of small and densely packed objects for one pair."""
    sb, sc = _runs_by_seed(pair.baseline), _runs_by_seed(pair.other)
    seeds = [s for s in sb if s in sc]
    unpaired = {pair.baseline.name: [s for s in sb if s not in sc],
                pair.other.name: [s for s in sc if s not in sb]}
    study = Study(pair, seeds, unpaired, None, n_resamples=n_resamples)
    if not seeds:
        study.missing = "no seed was run for both rows, so there is no pair to compare"
        return study
    try:
        base = [evaluate_run(sb[s], crowding_edges) for s in seeds]
        cand = [evaluate_run(sc[s], crowding_edges) for s in seeds]
    except RunFilesMissing as e:
        study.missing = f"per-image statistics need every paired run's files: {e}"
        return study
    if not _same_ground_truth(base + cand):
        study.missing = ("the paired runs were evaluated on different ground truth (eval_gt.json.gz differs): "
                         "their per-image statistics cannot be paired")
        return study
    gt = base[0].gt
    b_std, c_std = [e.standard for e in base], [e.standard for e in cand]
    study.n_images = b_std[0].n_images
    study.n_objects = int(subsets.objects_per_image(gt, b_std[0].img_ids).sum())

    metrics = {k: fn for k, (_, fn) in OBJECT_METRICS.items()}
    boot = paired_bootstrap(b_std, c_std, metrics, n_resamples, seed)
    study.objects = [_row(k, title, fn, b_std, c_std, boot[k]) for k, (title, fn) in OBJECT_METRICS.items()]
    maps = {r.run_dir: _value(mean_ap, r.standard) for r in (*base, *cand)}  # weights 1, once per run
    pair_deltas = [maps[c.run_dir] - maps[b.run_dir] for b, c in zip(base, cand)]
    study.verdict = decide(pair_deltas, boot["map"], margin_points / 100)
    for b, c in zip(base, cand):
        for ev, conf in ((b, pair.baseline), (c, pair.other)):
            row = conf.runs[conf.runs["run_dir"] == ev.run_dir]
            stored = float(row["map"].iloc[0]) if len(row) else math.nan
            mine = maps[ev.run_dir]
            if math.isfinite(stored) and abs(stored - mine) > 1e-6:
                study.notes.append(f"{ev.run_dir}: mAP recomputed from its files is {mine:.6f}, "
                                   f"summary.json says {stored:.6f}")

    for b in subsets.density_bins(gt, b_std[0].img_ids, density_edges):
        if not b.n_images:
            study.density.append(DeltaRow(b.label, b.label, math.nan, math.nan, BootstrapDelta(math.nan, np.zeros(0)),
                                          0, 0))
            continue
        if b.n_images < MIN_BIN_IMAGES:
            d = BootstrapDelta(math.nan, np.zeros(0))
        else:
            d = paired_bootstrap(b_std, c_std, {"map": mean_ap}, n_resamples, seed, mask=b.mask)["map"]
        study.density.append(_row(b.label, b.label, mean_ap, b_std, c_std, d, b.mask,
                                  n_images=b.n_images, n_objects=b.n_objects))

    b_cr, c_cr = [e.crowding for e in base], [e.crowding for e in cand]
    bins = base[0].crowding_bins
    fns = {b.label: (lambda a, lab=b.label: mean_ap(a, lab)) for b in bins}
    cboot = paired_bootstrap(b_cr, c_cr, fns, n_resamples, seed)
    study.crowding = [_row(b.label, b.label, fns[b.label], b_cr, c_cr, cboot[b.label], n_objects=b.n_objects)
                      for b in bins]
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in gt.get("categories", [])}
    study.per_class = per_class_changes(b_std, c_std, names)
    study.errors = error_changes(base, cand)
    return study


def error_changes(base: Sequence[RunEval], cand: Sequence[RunEval]) -> list[tuple[str, float, float, float, float]]:
    """TIDE's error types for both sides (analysis/tide.py): (type, baseline dAP, candidate
    dAP, baseline count, candidate count), each a mean over the runs."""
    eb = [tide.classify(r.gt, r.detections) for r in base]
    ec = [tide.classify(r.gt, r.detections) for r in cand]
    out = []
    for t in tide.ERROR_TYPES:
        out.append((t, float(np.mean([e.dap[t] for e in eb])), float(np.mean([e.dap[t] for e in ec])),
                    float(np.mean([e.counts()[t] for e in eb])), float(np.mean([e.counts()[t] for e in ec]))))
    return out


def fmt_ci(d: BootstrapDelta) -> str:
    lo, hi = d.interval()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "–"
    return f"[{points(lo)}, {points(hi)}]"


def fmt_ap(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.3f}"


def seeds_text(seeds: Sequence[Any]) -> str:
    return ", ".join(fmt_value(s) for s in seeds) or "none"
