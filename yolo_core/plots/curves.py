"""results.png (the results.csv columns per epoch, in YOLOv5's 2 x 5 panels) and the PR, F1,
P and R curves of an evaluation (YOLOv5's metrics: ap_per_class at IoU 0.5)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..eval.metrics import CONF_GRID, PR_RECALL, APResult, smooth

RESULTS_PANELS = ("train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision", "metrics/recall",
                  "val/box_loss", "val/obj_loss", "val/cls_loss", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95")


def plot_results(results_csv: str | Path, path: str | Path) -> None:
    """Each panel: the column per epoch (markers) and, from 4 epochs on, a smoothed line."""
    from matplotlib.figure import Figure
    from scipy.ndimage import gaussian_filter1d

    rows = list(csv.DictReader(Path(results_csv).open()))
    epochs = np.array([int(r["epoch"]) for r in rows])
    fig = Figure(figsize=(12, 6), tight_layout=True)
    axes = fig.subplots(2, 5).ravel()
    for ax, key in zip(axes, RESULTS_PANELS):
        y = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
        ax.plot(epochs, y, marker=".", linewidth=2, markersize=8, label="results")
        if len(y) >= 4 and np.isfinite(y).all():
            ax.plot(epochs, gaussian_filter1d(y, sigma=3), ":", label="smooth", linewidth=2)
        ax.set_title(key + ("\n(YOLOv5's)" if key.startswith("metrics/") else ""), fontsize=10)
        ax.set_xlabel("epoch")
    axes[0].legend()
    fig.savefig(path, dpi=150)


def plot_curves(result: APResult | None, names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """PR_curve.png, F1_curve.png, P_curve.png, R_curve.png; per class (up to 20 named in
    the legend) and all classes; the confidence of the best mean F1 (where val.py reads P
    and R) marked. Empty axes when nothing was scored."""
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    classes = [] if result is None else [names[int(c)] for c in result.classes]
    written = []

    def new_axes(title: str, xlabel: str, ylabel: str):
        fig = Figure(figsize=(9, 6), tight_layout=True)
        ax = fig.subplots()
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=xlabel, ylabel=ylabel, title=title)
        return fig, ax

    fig, ax = new_axes("Precision-Recall at IoU 0.5 (YOLOv5's AP)", "Recall", "Precision")
    if result is not None and result.pr_curve is not None and len(classes):
        for name, curve, ap in zip(classes, result.pr_curve, result.ap50):
            ax.plot(PR_RECALL, curve, linewidth=1, label=f"{name} {ap:.3f}" if len(classes) <= 20 else None)
        ax.plot(PR_RECALL, result.pr_curve.mean(0), linewidth=3, color="blue",
                label=f"all classes {result.map50:.3f} mAP@0.5")
        ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
    written.append(_save(fig, out_dir / "PR_curve.png"))

    for key, ylabel in (("f1_curve", "F1"), ("p_curve", "Precision"), ("r_curve", "Recall")):
        fig, ax = new_axes(f"{ylabel}-Confidence (YOLOv5's)", "Confidence", ylabel)
        curves = None if result is None else getattr(result, key)
        if curves is not None and len(classes):
            for name, curve in zip(classes, curves):
                ax.plot(CONF_GRID, curve, linewidth=1, label=name if len(classes) <= 20 else None)
            mean = smooth(curves.mean(0), 0.05)
            i = int(smooth(result.f1_curve.mean(0), 0.1).argmax())
            ax.plot(CONF_GRID, mean, linewidth=3, color="blue",
                    label=f"all classes {mean[i]:.2f} at {CONF_GRID[i]:.3f}")
            ax.axvline(CONF_GRID[i], color="grey", linestyle="--", linewidth=1,
                       label=f"best mean F1: conf {CONF_GRID[i]:.3f}")
            ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left")
        written.append(_save(fig, out_dir / f"{ylabel if ylabel == 'F1' else ylabel[0]}_curve.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=150)
    return path
