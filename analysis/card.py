"""study_card.png: the study's answer on one page.

Top: the verdict and the mAP delta's intervals against the non-inferiority margin. Middle:
the deltas by object size, scene density and crowding, each with its image-bootstrap
interval. Bottom: mAP against GFLOPs, parameters and inference time for every configuration (the
Pareto view: is the candidate better than a baseline of its compute?). Inference times
are the final evaluation's (summary.json final_eval.speed_ms): comparable only between runs
on the same kind of device, which the card cannot check.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.plots import colors, plt
from analysis.study import DeltaRow, Study
from analysis.tables import Config, fmt_value

DECISION_COLORS = {"supported": "#2e7d32", "not supported": "#c62828", "inconclusive": "#ef6c00"}


def _interval_panel(ax: plt.Axes, rows: Sequence[tuple[str, float, float, float]], margin: float | None,
                    title: str) -> None:
    """Horizontal intervals (label, delta, low, high), in mAP points, 0 and -margin marked."""
    y = np.arange(len(rows))[::-1]
    for yi, (label, d, lo, hi) in zip(y, rows):
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([100 * lo, 100 * hi], [yi, yi], color="#1565c0", lw=2.5, solid_capstyle="butt")
        if math.isfinite(d):
            ax.plot([100 * d], [yi], "o", color="#0d47a1", ms=5)
    ax.axvline(0, color="0.3", lw=0.8)
    if margin is not None:
        ax.axvline(-100 * margin, color="#c62828", lw=1, ls="--", label=f"−margin ({100 * margin:.2f})")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("Δ candidate − baseline (COCO AP points)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(-0.7, len(rows) - 0.3)


def _delta_rows(items: Sequence[DeltaRow], prefix: str = "") -> list[tuple[str, float, float, float]]:
    out = []
    for r in items:
        lo, hi = r.delta.interval()
        label = f"{prefix}{r.title if not prefix else r.name}"
        d = r.candidate - r.baseline
        out.append((label if math.isfinite(d) else f"{label} (no value)", d, lo, hi))
    return out


def _pareto(ax: plt.Axes, configs: Sequence[Config], column: str, label: str, scale: float) -> None:
    by_backbone: dict[str, list[tuple[float, float, float]]] = {}
    for c in configs:
        x = c.fact(column)
        st = c.stat("map")
        if math.isfinite(x) and st.n:
            by_backbone.setdefault(fmt_value(c.axes.get("backbone")), []).append((x / scale, st.mean, 0.0 if math.isnan(st.std) else st.std))
    for (bb, pts), color in zip(sorted(by_backbone.items()), colors(len(by_backbone))):
        xs, ys, es = zip(*pts)
        ax.errorbar(xs, ys, yerr=es, fmt="o", color=color, capsize=3, label=bb)
    if by_backbone:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no {column} in the runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(label, fontsize=8)
    ax.set_ylabel("COCO mAP@0.5:0.95", fontsize=8)
    ax.set_title(f"mAP vs {label.split(' (')[0]}\n(each configuration: mean ± std over seeds)", fontsize=9)
    ax.grid(alpha=0.3)


def plot_study_card(study: Study | None, configs: Sequence[Config], baseline: str, candidate: str,
                    path: Path, headline_text: str) -> Path:
    """The one-page card; without a verdict it says why and still draws the Pareto panels."""
    fig = plt.figure(figsize=(12, 12.5))
    grid = fig.add_gridspec(3, 2, height_ratios=[1.0, 1.0, 1.1], hspace=0.45, wspace=0.5,
                            left=0.17, right=0.97, top=0.86, bottom=0.05)
    v = study.verdict if study is not None else None
    color = DECISION_COLORS.get(v.decision, "0.2") if v is not None else "0.2"
    fig.text(0.03, 0.985, f"{candidate} vs {baseline}: study card", fontsize=15, weight="bold", va="top")
    fig.text(0.03, 0.955, "\n".join(textwrap.wrap(headline_text, 125)), fontsize=10, va="top", color=color)
    if v is not None:
        facts = (f"{v.n_pairs} seed pair(s) · {study.n_images} val images, {study.n_objects} objects · "
                 f"{study.n_resamples} bootstrap resamples · {v.method}")
        fig.text(0.03, 0.91, "\n".join(textwrap.wrap(facts, 150)), fontsize=8, va="top", color="0.3")
    if v is not None:
        rows = [("combined", v.delta, v.low, v.high)]
        if v.seed_interval is not None:
            rows.append(("seeds (t)", v.delta, *v.seed_interval))
        rows.append(("images (bootstrap)", v.delta, *v.image_interval))
        rows += [(f"seed {fmt_value(s)}", d, math.nan, math.nan) for s, d in zip(study.seeds, v.pair_deltas)]
        _interval_panel(fig.add_subplot(grid[0, 0]), rows, v.margin, "mAP@0.5:0.95 (COCO): the verdict's interval")
        _interval_panel(fig.add_subplot(grid[0, 1]), _delta_rows(study.objects), None,
                        "By object size (COCO's ranges), 95 % image intervals")
        _interval_panel(fig.add_subplot(grid[1, 0]), _delta_rows(study.density, "objects/image "), None,
                        "By scene density: AP over the images of each bin")
        _interval_panel(fig.add_subplot(grid[1, 1]), _delta_rows(study.crowding, "largest IoU "), None,
                        "By crowding: AP of the objects in each bin")
    else:
        for cell in (grid[0, :], grid[1, :]):
            ax = fig.add_subplot(cell)
            ax.axis("off")
        fig.text(0.5, 0.6, "no verdict: see report.md", ha="center", fontsize=12, color="0.3")
    bottom = grid[2, :].subgridspec(1, 3, wspace=0.45)
    _pareto(fig.add_subplot(bottom[0, 0]), configs, "gflops", "GFLOPs (at the runs' gflops_imgsz)", 1.0)
    _pareto(fig.add_subplot(bottom[0, 1]), configs, "params", "parameters (millions)", 1e6)
    _pareto(fig.add_subplot(bottom[0, 2]), configs, "inference_ms",
            "inference ms/image (final eval, each run's device)", 1.0)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
