"""The report's PNG plots, drawn with matplotlib's Agg backend (no display on a cluster node).

Every curve is a mean over seeds with its spread drawn as a band (min-max over seeds),
because with a few seeds the spread is the point: a gap between two curves means
little when their bands overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

MAP_COLUMN = "metrics/mAP_0.5:0.95"
LOSS_COLUMNS = ("train/box_loss", "train/obj_loss", "train/cls_loss")
SIZE_METRICS = {"map_small": "APs", "map_medium": "APm", "map_large": "APl"}


@dataclass
class PlotGroup:
    """One configuration as the plots see it: a label, its runs, its AP-by-size stats."""

    label: str
    run_dirs: list[str]
    ap_mean: dict[str, float]
    ap_std: dict[str, float]
    n: int


def _band(ax: plt.Axes, epochs: pd.DataFrame, run_dirs: Sequence[str], column: str,
          label: str, color: str) -> bool:
    """Mean line and min-max band of one column over the given runs; False when no data."""
    if column not in epochs.columns or epochs.empty:
        return False
    sub = epochs[epochs["run_dir"].isin(run_dirs)][["epoch", column]].dropna()
    if sub.empty:
        return False
    g = sub.groupby("epoch")[column].agg(["mean", "min", "max"]).sort_index()
    x = g.index.to_numpy(dtype=float)
    # markers where a line alone would not show (one or a few epochs)
    ax.plot(x, g["mean"].to_numpy(), color=color, label=label, lw=1.6, marker="o" if len(x) <= 5 else None, ms=4)
    if len(x) == 1:
        ax.set_xlim(x[0] - 1, x[0] + 1)
    ax.fill_between(x, g["min"].to_numpy(), g["max"].to_numpy(), color=color, alpha=0.2, lw=0)
    return True


def colors(k: int) -> list[str]:
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
    return [matplotlib.colors.to_hex(cmap(i % cmap.N)) for i in range(k)]


def finish(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _no_data(ax: plt.Axes) -> None:
    ax.text(0.5, 0.5, "no per-epoch data from completed runs", ha="center", va="center",
            transform=ax.transAxes)


def plot_map_vs_epoch(epochs: pd.DataFrame, groups: Sequence[PlotGroup], path: Path) -> Path:
    """mAP@0.5:0.95 per epoch per configuration (mean over seeds, min-max band)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = [_band(ax, epochs, g.run_dirs, MAP_COLUMN, f"{g.label} (n={g.n})", c)
             for g, c in zip(groups, colors(len(groups)))]
    if any(drawn):
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="YOLOv5's mAP@0.5:0.95 (val, results.csv)",
           title="YOLOv5's mAP@0.5:0.95 per epoch: mean, band = min-max over seeds")
    ax.grid(alpha=0.3)
    return finish(fig, path)


def plot_loss_curves(epochs: pd.DataFrame, groups: Sequence[PlotGroup], path: Path) -> Path:
    """Train box/obj/cls loss per configuration, one panel each (mean, min-max band)."""
    fig, axes = plt.subplots(1, len(LOSS_COLUMNS), figsize=(13, 4))
    palette = colors(len(groups))
    for ax, col in zip(axes, LOSS_COLUMNS):
        drawn = [_band(ax, epochs, g.run_dirs, col, f"{g.label} (n={g.n})", c) for g, c in zip(groups, palette)]
        if not any(drawn):
            _no_data(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", title=col)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=8)
    return finish(fig, path)


def plot_ap_by_size(groups: Sequence[PlotGroup], path: Path) -> Path:
    """Grouped bars of APs/APm/APl per configuration; error bars = std over seeds
    (none drawn where n = 1, as there is no spread estimate)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    k = max(len(groups), 1)
    width = 0.8 / k
    x = np.arange(len(SIZE_METRICS))
    for i, (g, c) in enumerate(zip(groups, colors(len(groups)))):
        means = [g.ap_mean.get(m, math.nan) for m in SIZE_METRICS]
        stds = [g.ap_std.get(m, math.nan) for m in SIZE_METRICS]
        heights = [0.0 if math.isnan(v) else v for v in means]
        errs = [0.0 if math.isnan(s) else s for s in stds]
        ax.bar(x + (i - (k - 1) / 2) * width, heights, width, yerr=errs, capsize=3, color=c,
               label=f"{g.label} (n={g.n})")
    ax.set_xticks(x, list(SIZE_METRICS.values()))
    ax.set(ylabel="COCO AP@0.5:0.95 (best.pt)", title="COCO AP by object size: mean over seeds, error bar = std")
    if groups:
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.grid(axis="y", alpha=0.3)
    return finish(fig, path)


def pr_band(curves: Mapping[str, pd.DataFrame], run_dirs: Sequence[str]) -> pd.DataFrame | None:
    """Mean, min and max over runs of the all-classes PR curve (precision per recall), on the
    recall grid 0..1 in steps of 0.01 (curves on another grid are interpolated). None when
    none of the runs has a curve."""
    grid = np.linspace(0, 1, 101)
    ys = [np.interp(grid, c["recall"].to_numpy(float), c["all"].to_numpy(float))
          for c in (curves.get(d) for d in run_dirs) if c is not None]
    if not ys:
        return None
    y = np.stack(ys)
    return pd.DataFrame({"recall": grid, "mean": y.mean(0), "min": y.min(0), "max": y.max(0), "n": len(ys)})


def plot_pr_curves(curves: Mapping[str, pd.DataFrame], groups: Sequence[PlotGroup], path: Path) -> Path:
    """The final evaluation's all-classes PR curve at IoU 0.5 per configuration (mean, band)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    drawn = False
    for g, c in zip(groups, colors(len(groups))):
        band = pr_band(curves, g.run_dirs)
        if band is None:
            continue
        ap50 = float(np.trapezoid(band["mean"], band["recall"]))
        ax.plot(band["recall"], band["mean"], color=c, lw=1.6,
                label=f"{g.label} (n={int(band['n'].iloc[0])}, area {ap50:.3f} = YOLOv5 mAP@0.5)")
        ax.fill_between(band["recall"], band["min"], band["max"], color=c, alpha=0.2, lw=0)
        drawn = True
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no pr_curve.csv in completed runs", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title="YOLOv5's PR curve at IoU 0.5, all classes (best.pt on val)")
    ax.grid(alpha=0.3)
    return finish(fig, path)


def plot_pr_per_class(curves: Mapping[str, pd.DataFrame], groups: Sequence[PlotGroup], path: Path) -> Path:
    """pr_curve.csv's per-class curves (IoU 0.5), one panel per configuration, each class the
    mean over the configuration's runs: which classes carry or hold back the all-classes curve."""
    k = max(len(groups), 1)
    cols = min(k, 3)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    grid = np.linspace(0, 1, 101)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, g in zip(axes.flat, groups):
        runs = [c for c in (curves.get(d) for d in g.run_dirs) if c is not None]
        classes = [c for c in (runs[0].columns if runs else []) if c not in ("recall", "all")]
        for name, color in zip(classes, colors(len(classes))):
            ys = [np.interp(grid, r["recall"].to_numpy(float), r[name].to_numpy(float)) for r in runs if name in r]
            ax.plot(grid, np.mean(ys, axis=0), color=color, lw=1.2, label=name)
        if classes:
            ax.legend(fontsize=7, ncol=2 if len(classes) > 8 else 1)
        else:
            ax.text(0.5, 0.5, "no per-class pr_curve.csv", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{g.label} (n={len(runs)})")
        ax.grid(alpha=0.3)
    fig.suptitle("YOLOv5's per-class PR curves at IoU 0.5 (best.pt on val; mean over seeds)", fontsize=10)
    return finish(fig, path)
