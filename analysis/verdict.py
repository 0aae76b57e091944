"""The study's verdict: is the candidate's COCO mAP at least the baseline's, within a margin?

Why a non-inferiority test: the success criterion is "equal or higher mAP than the
baseline under identical training conditions", so what must be shown is that the
candidate is not worse by more than a margin (default 0.5 mAP points), not that it is
better. The delta's 95 % interval combines the two sources of chance a reviewer asks
about:

- seeds: runs of the same configuration with another seed land elsewhere. Runs with the
  same seed form a pair; the seed standard error is sd(per-pair deltas)/sqrt(n pairs).
- images: another validation set of the same size would give other numbers. The paired
  bootstrap over the images (analysis/bootstrap.py) gives the image standard error of
  the mean delta.

Combined: mean delta ± t(0.975, n-1) · sqrt(se_seed² + se_image²), the two being
independent sources (t with n-1 degrees of freedom: the seed part is estimated from n
pairs). With a single pair the seed part cannot be estimated: the interval is the image
bootstrap's alone and the verdict is at most "inconclusive".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from analysis.bootstrap import BootstrapDelta

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
#: Default non-inferiority margin, in mAP points (0.5 points = 0.005 mAP).
MARGIN_POINTS = 0.5


@dataclass
class Verdict:
    """The decision and every number it rests on (deltas in metric units, not points)."""

    decision: str
    delta: float
    low: float
    high: float
    margin: float
    n_pairs: int
    pair_deltas: list[float]
    se_seed: float
    se_image: float
    image_interval: tuple[float, float]
    seed_interval: tuple[float, float] | None
    method: str
    reasons: list[str] = field(default_factory=list)


def seed_interval(deltas: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the paired t interval over per-seed deltas (NaN bounds for n < 2)."""
    d = np.asarray(deltas, dtype=float)
    mean = float(d.mean()) if len(d) else math.nan
    if len(d) < 2:
        return mean, math.nan, math.nan
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * se
    return mean, mean - half, mean + half


def decide(pair_deltas: list[float], image: BootstrapDelta, margin: float = MARGIN_POINTS / 100,
           level: float = 0.95) -> Verdict:
    """Non-inferiority of the candidate at `margin` (metric units) from the per-pair deltas
    (weights 1, one per seed pair) and the paired image bootstrap of their mean."""
    n = len(pair_deltas)
    if n == 0:
        raise ValueError("no run pairs: nothing to decide")
    mean = float(np.mean(pair_deltas))
    se_img = image.se
    img_iv = image.interval(level)
    reasons = []
    if n >= 2:
        d = np.asarray(pair_deltas, dtype=float)
        se_seed = float(d.std(ddof=1) / math.sqrt(n))
        _, s_lo, s_hi = seed_interval(pair_deltas, level)
        se = math.sqrt(se_seed ** 2 + (se_img if math.isfinite(se_img) else 0.0) ** 2)
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
        low, high = mean - half, mean + half
        method = (f"{level:.0%} interval: mean over {n} seed pairs ± t({0.5 + level / 2:.3f}, {n - 1} df) "
                  f"× √(se_seed² + se_image²)")
        seed_iv: tuple[float, float] | None = (s_lo, s_hi)
    else:
        se_seed = math.nan
        low, high = img_iv
        method = f"{level:.0%} interval: paired image bootstrap only (1 seed pair: seed variance not measured)"
        seed_iv = None
        reasons.append("one seed per backbone: the seed-to-seed spread, often larger than the image "
                       "spread on short runs, is not in the interval")
    if not (math.isfinite(low) and math.isfinite(high)):
        decision = INCONCLUSIVE
        reasons.append("the interval could not be computed")
    elif low > -margin:
        decision = SUPPORTED if n >= 2 else INCONCLUSIVE
    elif high < -margin:
        decision = NOT_SUPPORTED if n >= 2 else INCONCLUSIVE
    else:
        decision = INCONCLUSIVE
        reasons.append(f"the interval [{points(low)}, {points(high)}] points contains −margin ({points(-margin)})")
    return Verdict(decision, mean, low, high, margin, n, list(map(float, pair_deltas)), se_seed, se_img,
                   img_iv, seed_iv, method, reasons)


def points(x: float) -> str:
    """A delta in mAP points: 0.0123 -> '+1.23'; – without a value."""
    return "–" if not math.isfinite(x) else f"{100 * x:+.2f}"


def verdict_sentence(v: Verdict, candidate: str, baseline: str) -> str:
    """The one line at the top of report.md."""
    head = f"**{candidate} ≥ {baseline} (COCO mAP@0.5:0.95, non-inferiority margin {100 * v.margin:.2f} points): {v.decision}.**"
    body = (f" Δ = {points(v.delta)} points, 95 % CI [{points(v.low)}, {points(v.high)}] "
            f"from {v.n_pairs} seed pair(s).")
    return head + body
