"""The files of a run directory (docs/run_directory.md): results.csv, summary.json, pr_curve.csv.

All are rewritten whole and atomically, from state the trainer keeps (and saves in
last.pt), so a kill at any moment leaves consistent files and a resumed run continues
them without duplicate rows.
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, atomic_write_text

RESULTS_COLUMNS = (
    "epoch", "train/box_loss", "train/obj_loss", "train/cls_loss",
    "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
    "val/box_loss", "val/obj_loss", "val/cls_loss",
)
COCO_STAT_NAMES = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                   "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")
SUMMARY_METRICS = COCO_STAT_NAMES + ("precision", "recall")
STATUSES = ("running", "completed", "failed", "preempted")


def results_header(n_lr_groups: int) -> list[str]:
    return [*RESULTS_COLUMNS, *(f"x/lr{i}" for i in range(n_lr_groups)), "time/epoch_s", "train/images_per_s",
            "train/nonfinite_steps"]


def write_results_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    atomic_write_text(buf.getvalue(), path)


def write_pr_curve_csv(path: str | Path, recall: Sequence[float], curves: Sequence[Sequence[float]],
                       class_names: Sequence[str]) -> None:
    """Precision at each recall of the grid: columns recall, all (the mean over classes, YOLOv5's
    "all classes" line) and one per class that has labels. curves: (n_classes, len(recall))."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["recall", "all", *class_names])
    for i, r in enumerate(recall):
        column = [float(c[i]) for c in curves]
        mean = sum(column) / len(column) if column else 0.0
        writer.writerow([f"{r:.2f}", *(f"{v:.6g}" for v in (mean, *column))])
    atomic_write_text(buf.getvalue(), path)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def clean_metric(v: Any) -> float | None:
    """COCOeval's -1 (no objects in that range) and NaN become null in JSON."""
    if v is None:
        return None
    v = float(v)
    return None if (math.isnan(v) or v < 0) else v


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "timm", "numpy", "opencv-python-headless", "pycocotools",
                "faster-coco-eval", "hydra-core", "submitit", "comet_ml"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision(cwd: str | Path | None = None) -> str | None:
    """Commit of the code that trained (with '-dirty' when the tree has changes), if in a checkout."""
    here = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """A summary.json as a dict; None when absent or unreadable (a half-written file cannot
    exist: writes are atomic, so unreadable means damaged or not ours)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> None:
    if summary.get("status") not in STATUSES:
        raise ValueError(f"summary status must be one of {STATUSES}, got {summary.get('status')!r}")
    atomic_write_json(dict(summary), path)
