"""labels.jpg: the statistics of a split's boxes, as YOLOv5's plot_labels draws them: instances
per class, the boxes' shapes (up to 1000, centred), their centres and their sizes
(normalised to the image). The panels a small-object study looks at first."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.records import DatasetSplit


def plot_labels(split: DatasetSplit, names: Sequence[str], path: str | Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    labels = [np.asarray(r.labels, dtype=np.float64).reshape(-1, 5) for r in split.records]
    lab = np.concatenate(labels) if labels else np.zeros((0, 5))
    c, b = lab[:, 0].astype(int), lab[:, 1:]
    nc = len(names)
    fig = Figure(figsize=(9, 9), tight_layout=True)
    ax = fig.subplots(2, 2).ravel()
    counts = np.bincount(c, minlength=nc)[:nc]
    ax[0].bar(range(nc), counts, color=[_colour(i) for i in range(nc)])
    ax[0].set_ylabel(f"instances ({len(lab)} in {len(split.records)} images)")
    if nc < 30:
        ax[0].set_xticks(range(nc), names, rotation=90 if nc > 8 else 0, fontsize=10)
    else:
        ax[0].set_xlabel("classes")
    ax[1].set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title="box shapes (1000 at most, centred)")
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(b))[:1000]:
        w, h = b[i, 2], b[i, 3]
        ax[1].add_patch(Rectangle((0.5 - w / 2, 0.5 - h / 2), w, h, fill=False, linewidth=0.5,
                                  edgecolor=_colour(c[i]), alpha=0.6))
    ax[1].axis("off")
    for a, (i, j, xl, yl) in zip(ax[2:], ((0, 1, "x", "y"), (2, 3, "width", "height"))):
        if len(b):
            a.hist2d(b[:, i], b[:, j], bins=50, range=((0, 1), (0, 1)), cmap="Blues", cmin=1)
        a.set(xlim=(0, 1), ylim=(0, 1), xlabel=xl, ylabel=yl)
    ax[3].set_title("box size (fraction of the image)")
    ax[2].set_title("box centres")
    fig.savefig(path, dpi=150)


def _colour(i: int) -> tuple[float, float, float]:
    from matplotlib import colormaps

    return colormaps["tab20"](int(i) % 20)[:3]
