"""Configurations, baseline pairs, seed statistics and the text tables made of them.

Why this shape: the question is "does ConvNeXt beat CSPDarknet under the same
conditions", and a sweep mostly measures seed noise unless it shows it. So rows are
configurations (every axis except the seed), each a mean ± std over its completed
seeds; a candidate row is compared with the baseline row that shares all its other
axes, and where no such row exists the closest one is used and every difference is
named, never silently compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.collect import Runs

#: Metrics of the main table, with their column titles.
TABLE_METRICS: dict[str, str] = {
    "map": "mAP", "map50": "mAP@0.5", "map75": "mAP@0.75", "map_small": "APs",
    "map_medium": "APm", "map_large": "APl", "precision": "P", "recall": "R",
}
#: Rows of the headline table, in the seed project's order.
HEADLINE_METRICS: dict[str, str] = {
    "map": "mAP@0.5:0.95", "map50": "mAP@0.5", "precision": "Precision", "recall": "Recall",
    "map_small": "APs", "map_medium": "APm", "map_large": "APl",
}
#: Axes that always name a configuration (when present), in this order.
PRIMARY_AXES: tuple[str, ...] = ("backbone", "neck_init", "schedule", "optimizer")
SEED = "seed"
AXIS_LABELS = {"neck_init": "neck_init (initialisation)"}
DASH = "–"


def is_missing(v: Any) -> bool:
    """None or a float NaN (pandas' marker for an axis a run did not write)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_value(v: Any) -> str:
    """An axis value for display: 18.0 -> '18', 0.001 -> '0.001', NaN -> '?'."""
    if is_missing(v):
        return "?"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:g}"
    return str(v)


def _sort_key(v: Any) -> tuple[int, Any]:
    v = _norm(v)
    if v is None:
        return (2, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v))
    return (1, str(v))


def _norm(v: Any) -> Any:
    """Hashable, comparable key value: NaN -> None, 18.0 -> 18, numpy scalars -> Python."""
    if isinstance(v, np.generic):
        v = v.item()
    if is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


@dataclass
class Stat:
    """mean, sample std (ddof=1; NaN when n < 2) and n over the non-NaN values."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat":
        s = pd.Series(list(values), dtype=float).dropna()
        n = int(len(s))
        mean = float(s.mean()) if n else math.nan
        std = float(s.std(ddof=1)) if n >= 2 else math.nan
        return cls(mean, std, n)


@dataclass
class Config:
    """One configuration: the axis values that define it and its completed runs."""

    axes: dict[str, Any]
    runs: pd.DataFrame

    @property
    def n(self) -> int:
        return int(len(self.runs))

    @property
    def backbone(self) -> str:
        return fmt_value(self.axes.get("backbone"))

    def stat(self, metric: str) -> Stat:
        if metric not in self.runs.columns:
            return Stat(math.nan, math.nan, 0)
        return Stat.of(self.runs[metric])

    def fact(self, column: str, how: str = "median") -> float:
        """A model fact or timing over the runs (median for facts, mean for throughput)."""
        if column not in self.runs.columns:
            return math.nan
        s = pd.to_numeric(self.runs[column], errors="coerce").dropna()
        if s.empty:
            return math.nan
        return float(s.mean() if how == "mean" else s.median())

    def seeds(self) -> list[Any]:
        if SEED not in self.runs.columns:
            return []
        return sorted({_norm(v) for v in self.runs[SEED]}, key=_sort_key)

    def context(self, axes: Sequence[str]) -> str:
        """'neck_init=random, schedule=linear' over the given axes (the backbone left out)."""
        parts = [f"{a}={fmt_value(self.axes.get(a))}" for a in axes if a != "backbone"]
        return ", ".join(parts) if parts else "the only setting"


@dataclass
class Pair:
    """A candidate configuration and the baseline configuration it is compared with.

    strict: the two share every configuration axis but the backbone. differences: what
    else differs between their runs (axes, the set of seeds, code revision, device).
    """

    baseline: Config
    other: Config
    strict: bool
    differences: list[str] = field(default_factory=list)

    def delta(self, metric: str) -> float:
        return self.other.stat(metric).mean - self.baseline.stat(metric).mean


def config_axes(runs: Runs) -> list[str]:
    """Axes that name a configuration: the primary four (when present) plus any other
    axis that varies among completed runs; never the seed (seeds are what we average)."""
    done = runs.completed
    out = [a for a in PRIMARY_AXES if a in runs.axes]
    for a in runs.axes:
        if a in out or a == SEED or a not in done.columns:
            continue
        if len({_norm(v) for v in done[a]}) > 1:
            out.append(a)
    return out


def common_settings(runs: Runs, axes: Sequence[str]) -> dict[str, Any]:
    """Axes (other than seed) with one value across all completed runs, for a header line."""
    done = runs.completed
    out: dict[str, Any] = {}
    for a in runs.axes:
        if a in axes or a == SEED or a not in done.columns or done.empty:
            continue
        vals = {_norm(v) for v in done[a]}
        if len(vals) == 1:
            out[a] = next(iter(vals))
    return out


def group_configs(runs: Runs, axes: Sequence[str], baseline: str) -> list[Config]:
    """Completed runs grouped by the configuration axes, sorted so that a baseline row
    comes right before the candidate rows that share its other axes."""
    done = runs.completed
    groups: dict[tuple[Any, ...], list[int]] = {}
    for idx, row in done.iterrows():
        key = tuple(_norm(row.get(a)) for a in axes)
        groups.setdefault(key, []).append(idx)
    configs = [Config(dict(zip(axes, key)), done.loc[idx]) for key, idx in groups.items()]

    def order(c: Config) -> tuple[Any, ...]:
        rest = tuple(_sort_key(c.axes.get(a)) for a in axes if a != "backbone")
        bb = c.axes.get("backbone")
        return (*rest, bb != baseline, _sort_key(bb))

    return sorted(configs, key=order)


def find_pairs(configs: Sequence[Config], runs: Runs, axes: Sequence[str], baseline: str) -> list[Pair]:
    """For every non-baseline configuration, the baseline row it is compared with.

    The baseline row with all other axes equal when there is one (strict); otherwise the
    one differing on the fewest axes (ties: table order), flagged as not like-for-like.
    """
    others = [a for a in axes if a != "backbone"]
    bases = [c for c in configs if c.axes.get("backbone") == baseline]
    pairs: list[Pair] = []
    if not bases:
        return pairs
    for c in configs:
        if c.axes.get("backbone") == baseline:
            continue
        n_diff = [sum(b.axes.get(a) != c.axes.get(a) for a in others) for b in bases]
        best = min(range(len(bases)), key=lambda i: n_diff[i])
        b = bases[best]
        pairs.append(Pair(b, c, n_diff[best] == 0, run_differences(b, c, runs.axes)))
    return pairs


def _set_text(values: set[Any]) -> str:
    vals = sorted(values, key=_sort_key)
    return fmt_value(vals[0]) if len(vals) == 1 else "{" + ", ".join(fmt_value(v) for v in vals) + "}"


def run_differences(base: Config, other: Config, all_axes: Sequence[str]) -> list[str]:
    """Everything but the backbone that differs between two rows' runs, one line each.

    Compared as sets of values over the runs, so a row that mixes epochs or lr values
    across its seeds is caught too, and the seed sets themselves are compared.
    """
    out: list[str] = []
    for a in [*all_axes, "world_size", "device", "git_rev"]:
        if a == "backbone":
            continue
        vb = {_norm(v) for v in base.runs[a]} if a in base.runs.columns else {None}
        vo = {_norm(v) for v in other.runs[a]} if a in other.runs.columns else {None}
        if vb == vo:
            continue
        label = {"seed": "seeds", "git_rev": "git_rev (code revision)",
                 "device": "device (affects img/s only)",
                 "world_size": "world_size (DDP processes: BatchNorm batch per process)"}.get(a, AXIS_LABELS.get(a, a))
        out.append(f"{label}: {_set_text(vb)} vs {_set_text(vo)}")
    return out


def pooled_std(a: Stat, b: Stat) -> float:
    """Pooled sample std of two groups (NaN unless both have n >= 2)."""
    if a.n < 2 or b.n < 2:
        return math.nan
    return math.sqrt(((a.n - 1) * a.std ** 2 + (b.n - 1) * b.std ** 2) / (a.n + b.n - 2))


def noise_statement(pair: Pair, metric: str, axes: Sequence[str]) -> str:
    """What the sample can say about one pair on one metric, in a sentence.

    Rule: with n = the smaller seed count, the delta is "within seed noise" when
    n < 2 or |delta| < 2 * pooled std / sqrt(n). Never names a winner from single seeds.
    """
    sb, so = pair.baseline.stat(metric), pair.other.stat(metric)
    head = (f"{pair.other.backbone} vs {pair.baseline.backbone} "
            f"({pair.other.context(axes) if pair.strict else 'closest baseline row'}), {metric}")
    if not pair.strict:
        head += " [not like-for-like: see fairness]"
    if sb.n == 0 or so.n == 0:
        return f"{head}: no completed value on one side (n={sb.n} vs {so.n}); nothing to compare."
    d = so.mean - sb.mean
    n = min(sb.n, so.n)
    if n < 2:
        return (f"{head}: Δ = {d:+.3f} from n={sb.n} vs n={so.n} seed(s); a single-seed row has no "
                f"spread estimate, so this cannot be told apart from seed noise (no winner declared).")
    sp = pooled_std(sb, so)
    thr = 2 * sp / math.sqrt(n)
    facts = f"|Δ| = {abs(d):.3f}, pooled std = {sp:.3f}, 2·pooled std/√n = {thr:.3f} with n = {n}"
    if d == 0:
        return f"{head}: no difference in the means ({facts})."
    if abs(d) < thr:
        return f"{head}: Δ = {d:+.3f} is within seed noise ({facts})."
    higher = pair.other.backbone if d > 0 else pair.baseline.backbone
    return (f"{head}: Δ = {d:+.3f} is larger than the seed spread ({facts}): {higher} is higher on "
            f"this sample of {n} seeds per row; more seeds would firm this up.")


def pick_headline(pairs: Sequence[Pair], candidate: str, axes: Sequence[str]) -> Pair | None:
    """The baseline-vs-candidate pair to headline: like-for-like first, then the most
    seeds (smaller side, then total), ties by the configuration's name."""
    pool = [p for p in pairs if p.other.axes.get("backbone") == candidate]
    if not pool:
        return None
    return min(pool, key=lambda p: (not p.strict, -min(p.baseline.n, p.other.n),
                                    -(p.baseline.n + p.other.n), p.other.context(axes)))


def strict_baseline(configs: Sequence[Config], pairs: Sequence[Pair]) -> dict[int, Config]:
    """id(candidate config) -> its like-for-like baseline row (what the Δ columns use)."""
    return {id(p.other): p.baseline for p in pairs if p.strict}


def summary_frame(configs: Sequence[Config], pairs: Sequence[Pair], axes: Sequence[str],
                  metric: str) -> pd.DataFrame:
    """The main table as numbers (summary_table.csv): one row per configuration."""
    metrics = list(TABLE_METRICS) + ([metric] if metric not in TABLE_METRICS else [])
    deltas = ["map", "map50"] + ([metric] if metric not in ("map", "map50") else [])
    base_of = strict_baseline(configs, pairs)
    rows = []
    for c in configs:
        row: dict[str, Any] = {a: c.axes.get(a) for a in axes}
        row["n"] = c.n
        row["seeds"] = " ".join(fmt_value(s) for s in c.seeds())
        for m in metrics:
            st = c.stat(m)
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_n"] = st.mean, st.std, st.n
        b = base_of.get(id(c))
        for m in deltas:
            row[f"delta_{m}"] = c.stat(m).mean - b.stat(m).mean if b is not None else math.nan
        row["params"] = c.fact("params")
        row["gflops"] = c.fact("gflops")
        row["train_images_per_s"] = c.fact("train_images_per_s", how="mean")
        rows.append(row)
    return pd.DataFrame(rows)


def fmt_stat(st: Stat, digits: int = 3) -> str:
    """'0.320 ± 0.020'; std shown as – when n < 2; – alone when n = 0."""
    if st.n == 0:
        return DASH
    std = DASH if math.isnan(st.std) else f"{st.std:.{digits}f}"
    return f"{st.mean:.{digits}f} ± {std}"


def _fmt_num(x: float, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    return DASH if x is None or math.isnan(x) else f"{x / scale:{spec}}{suffix}"


def display_rows(configs: Sequence[Config], pairs: Sequence[Pair], axes: Sequence[str],
                 baseline: str, metric: str) -> tuple[list[str], list[list[str]]]:
    """The main table as strings (report.md and summary_table.tex)."""
    deltas = ["map", "map50"] + ([metric] if metric not in ("map", "map50") else [])
    extra = [metric] if metric not in TABLE_METRICS else []
    headers = [*axes, "n", *TABLE_METRICS.values(), *extra,
               *[f"Δ{TABLE_METRICS.get(m, m)}" for m in deltas], "params", "GFLOPs", "train img/s"]
    base_of = strict_baseline(configs, pairs)
    rows = []
    for c in configs:
        cells = [fmt_value(c.axes.get(a)) for a in axes] + [str(c.n)]
        for m in [*TABLE_METRICS, *extra]:
            st = c.stat(m)
            cells.append(fmt_stat(st) + (f" (n={st.n})" if 0 < st.n != c.n else ""))
        b = base_of.get(id(c))
        for m in deltas:
            if c.axes.get("backbone") == baseline:
                cells.append("")
            elif b is None:
                cells.append(DASH)
            else:
                cells.append(_fmt_num(c.stat(m).mean - b.stat(m).mean, "+.3f"))
        cells += [_fmt_num(c.fact("params"), ".2f", 1e6, "M"), _fmt_num(c.fact("gflops"), ".1f"),
                  _fmt_num(c.fact("train_images_per_s", "mean"), ".1f")]
        rows.append(cells)
    return headers, rows


def headline_rows(pair: Pair) -> list[list[str]]:
    """Rows of the seed project's table: metric, baseline 'mean ± std (n)', candidate."""
    def cell(c: Config, m: str) -> str:
        st = c.stat(m)
        return DASH if st.n == 0 else f"{fmt_stat(st)} ({st.n})"

    return [[title, cell(pair.baseline, m), cell(pair.other, m)] for m, title in HEADLINE_METRICS.items()]


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency)."""
    def esc(s: Any) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "Δ": r"$\Delta$", "–": "--", "√": r"$\surd$", "·": r"$\cdot$"}


def tex_escape(s: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A booktabs LaTeX tabular, written by hand: pandas' to_latex needs jinja2, which is
    not a dependency of this project, and the output must not depend on what is installed."""
    spec = "l" * len(headers)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
