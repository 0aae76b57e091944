"""Paired bootstrap of the validation images: a confidence interval for a COCO-metric delta.

Why paired: both models are scored on one resampled image set per resample, so the
difficulty of the drawn images cancels out of their difference and the interval reflects
only how the two models differ across images. Each resample draws the I images with
replacement (multinomial counts, so an image drawn twice counts twice) and re-accumulates
every run's per-image COCO evaluation with those counts (analysis/image_eval.py), without
re-running COCOeval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from analysis.image_eval import Accumulated, ImageEval, accumulate, restrict

#: How many weightings accumulate() takes at once: bounds memory at ~B x detections x 8 bytes x 3.
BATCH = 25

Metric = Callable[[Accumulated], np.ndarray]


def resample_weights(n_images: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_images) counts of each image in each resample (each row sums to n_images)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples).astype(np.int64)


def metric_values(ev: ImageEval, weights: np.ndarray, metrics: dict[str, Metric],
                  batch: int = BATCH) -> dict[str, np.ndarray]:
    """Every metric for every row of weights (B,), accumulated `batch` rows at a time."""
    out: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for s in range(0, len(weights), batch):
        acc = accumulate(ev, weights[s:s + batch])
        for name, fn in metrics.items():
            out[name].append(fn(acc))
    return {m: np.concatenate(v) if v else np.zeros(0) for m, v in out.items()}


@dataclass
class BootstrapDelta:
    """One metric's candidate-minus-baseline delta: the observed value (all weights 1),
    the resampled values (mean over the run pairs, one per resample) and their 95 % interval."""

    observed: float
    resampled: np.ndarray

    @property
    def values(self) -> np.ndarray:
        """The resamples that have a value (a resample without ground truth for a metric has none)."""
        return self.resampled[np.isfinite(self.resampled)]

    @property
    def se(self) -> float:
        v = self.values
        return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The percentile interval (NaN when fewer than 2 resamples have a value)."""
        v = self.values
        if len(v) < 2:
            return float("nan"), float("nan")
        lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
        return float(lo), float(hi)


def paired_bootstrap(baseline: Sequence[ImageEval], candidate: Sequence[ImageEval], metrics: dict[str, Metric],
                     n_resamples: int = 1000, seed: int = 0, mask: np.ndarray | None = None) -> dict[str, BootstrapDelta]:
    """Delta of each metric, mean over the run pairs (baseline[i], candidate[i]: one seed
    each), with every run scored on the same resampled images in each resample.

    All evaluations must be of the same images in the same order (the same ground truth).
    mask: (I,) 0/1 restricting both the observed value and the resamples to some images
    (a density bin); images outside the mask are never drawn.
    """
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("paired_bootstrap needs one candidate evaluation per baseline evaluation")
    ref = baseline[0].img_ids
    for ev in (*baseline, *candidate):
        if not np.array_equal(ev.img_ids, ref):
            raise ValueError("the evaluations are not of the same images: a paired bootstrap needs one image set")
    if mask is not None:  # the masked images only: exact, and cheaper than zero weights
        baseline = [restrict(ev, mask) for ev in baseline]
        candidate = [restrict(ev, mask) for ev in candidate]
    n = baseline[0].n_images
    weights = np.ones((n_resamples + 1, n), dtype=np.int64)
    weights[1:] = resample_weights(n, n_resamples, seed)
    deltas = {m: np.zeros(n_resamples + 1) for m in metrics}
    for b_ev, c_ev in zip(baseline, candidate):
        vb, vc = metric_values(b_ev, weights, metrics), metric_values(c_ev, weights, metrics)
        for m in metrics:  # COCO's -1 (no ground truth in the drawn images) is no value
            deltas[m] += (np.where(vc[m] < 0, np.nan, vc[m]) - np.where(vb[m] < 0, np.nan, vb[m])) / len(baseline)
    return {m: BootstrapDelta(float(d[0]), d[1:]) for m, d in deltas.items()}
