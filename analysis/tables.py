"""Configurations, baseline pairs, seed statistics and the text tables made of them.

Why this shape: the question is "does ConvNeXt beat CSPDarknet under the same
conditions", and a sweep mostly measures seed noise unless it shows it. So rows are
configurations, each a mean ± std over its completed seeds. A row is every run with the
same identity (summary.json's whole resolved training config, weights files by content)
but for the seed: two runs that differ in anything that can change a number are never
averaged together, whatever the study's axes say. Runs written before the identity
existed fall back to grouping by the axes. A candidate row is compared with the baseline
row that matches it in every other setting; where none does, the closest one is used and
every difference is named, never silently compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.collect import DIGEST, IDENTITY_PREFIX, Runs, identity_columns

#: Metrics of the main table, with their column titles.
TABLE_METRICS: dict[str, str] = {
    "map": "mAP", "map50": "mAP@0.5", "map75": "mAP@0.75", "map_small": "APs",
    "map_medium": "APm", "map_large": "APl", "precision": "P", "recall": "R",
}
#: Rows of the headline table, in the seed project's order.
HEADLINE_METRICS: dict[str, str] = {
    "map": "mAP@0.5:0.95 (COCO)", "map50": "mAP@0.5 (COCO)", "precision": "Precision (YOLOv5)",
    "recall": "Recall (YOLOv5)", "map_small": "APs (COCO)", "map_medium": "APm (COCO)", "map_large": "APl (COCO)",
}
#: Whose definition each reported metric is: summary.json's mAPs are COCOeval's of best.pt's
#: predictions; P and R are val.py's; the per-epoch curves are results.csv's (YOLOv5's).
METRIC_DEFINITIONS = ("Metrics: mAP, mAP@0.5, mAP@0.75, APs/APm/APl are COCO's (COCOeval of best.pt's "
                      "predictions on val); P and R are YOLOv5's (val.py's, at the best mean F1); the per-epoch "
                      "curves and the PR curve's area are YOLOv5's mAP (results.csv, pr_curve.csv).")
#: Axes that always name a configuration (when present), in this order.
PRIMARY_AXES: tuple[str, ...] = ("backbone", "neck_init", "schedule", "optimizer")
SEED = "seed"
SEED_KEY = IDENTITY_PREFIX + SEED
AXIS_LABELS = {"neck_init": "neck_init (initialisation)"}
RUN_LABELS = {"seed": "seeds", "git_rev": "git_rev (code revision)", "device": "device (affects img/s only)",
              "world_size": "world_size (DDP processes: BatchNorm batch per process)"}
DASH = "–"
#: An identity key one run has and the other lacks (e.g. model_kwargs.pretrained of a yolov5 model).
ABSENT = "(absent)"
#: Identity keys that are the backbone itself: they differ between backbones by design, so they
#: never prevent a baseline-vs-candidate pairing (the fairness note still names them).
BACKBONE_KEYS = ("model", "init_scope")
BACKBONE_PREFIXES = ("model_kwargs.",)
#: The axis compared by default: the study's question is about backbones.
COMPARE = "backbone"
#: Identity keys an axis other than the backbone stands for, beyond the key of its own name.
AXIS_KEYS: dict[str, tuple[str, ...]] = {"neck_init": ("init_weights", "init_scope")}
#: Label column telling rows with an identity from rows grouped by their axes (when both exist).
KIND = "identity"


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
    """One configuration: its label values (axes and cfg.* identity keys), its completed
    runs, and (None for runs without identity) the identity its runs share but for the seed."""

    axes: dict[str, Any]
    runs: pd.DataFrame
    settings: dict[str, Any] | None = None
    compare: str = COMPARE  # the axis rows are compared along (report.py --compare)

    @property
    def n(self) -> int:
        return int(len(self.runs))

    @property
    def name(self) -> str:
        """The row's value of the compared axis (its backbone, unless --compare says otherwise)."""
        return fmt_value(self.axes.get(self.compare))

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
        """'neck_init=random, schedule=linear' over the given columns (the compared axis left out)."""
        parts = [f"{column_title(a)}={fmt_value(self.axes.get(a))}" for a in axes if a != self.compare]
        return ", ".join(parts) if parts else "the only setting"


@dataclass
class Pair:
    """A candidate configuration and the baseline configuration it is compared with.

    strict: the two match in every setting but the backbone's own. differences: what
    differs between their runs, (name, baseline value, candidate value), the backbone's own
    settings included. blocking: the settings that keep the pair from being strict.
    """

    baseline: Config
    other: Config
    strict: bool
    differences: list[tuple[str, str, str]] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)

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
        if len(vals) == 1 and vals != {None}:  # an axis no completed run wrote is not a setting
            out[a] = next(iter(vals))
    return out


def column_title(col: str) -> str:
    """A label column as the tables show it: cfg.hyp.weight_decay -> hyp.weight_decay."""
    return col[len(IDENTITY_PREFIX):] if col.startswith(IDENTITY_PREFIX) else col


def column_titles(cols: Sequence[str]) -> list[str]:
    """Titles for a row of label columns; cfg.optimizer keeps its prefix beside an axis optimizer."""
    return [c if column_title(c) in cols and c != column_title(c) else column_title(c) for c in cols]


def has_identity(row: pd.Series) -> bool:
    return not is_missing(row.get(DIGEST))


def without_identity(runs: Runs) -> pd.DataFrame:
    """Completed runs with no identity: the ones grouped by their axes only."""
    done = runs.completed
    return done[[not has_identity(r) for _, r in done.iterrows()]] if len(done) else done


def varying_identity_keys(done: pd.DataFrame) -> list[str]:
    """cfg.* columns (seed aside: it is the replicate key) with more than one value among
    the completed runs that have an identity; a key some runs lack counts as a value."""
    rows = done[[has_identity(r) for _, r in done.iterrows()]] if len(done) else done
    return [k for k in identity_columns(done) if k != SEED_KEY and len({_norm(v) for v in rows[k]}) > 1]


def run_key(row: pd.Series, keys: Sequence[str], axes: Sequence[str]) -> tuple[Any, ...]:
    """What puts two runs into one row: the varying identity keys, or without an identity
    the configuration axes (today's grouping). The two kinds never share a row."""
    if has_identity(row):
        return ("identity", *(_norm(row.get(k)) for k in keys))
    return ("axes", *(_norm(row.get(a)) for a in axes))


def _common(values: Iterable[Any]) -> Any:
    """The one value of a row's runs, or their set as text when they disagree (an axis
    label that is not an identity setting, e.g. a tuning trial number)."""
    vals = {_norm(v) for v in values}
    return next(iter(vals)) if len(vals) == 1 else _set_text(vals)


def make_config(frame: pd.DataFrame, axes: Sequence[str]) -> Config:
    """A row from its runs: axis labels, and the identity they share (seed left out)."""
    labels = {a: _common(frame[a]) if a in frame.columns else None for a in axes}
    first = frame.iloc[0]
    settings = None
    if has_identity(first):
        settings = {column_title(k): _norm(first[k]) for k in identity_columns(frame)
                    if k != SEED_KEY and not is_missing(first[k])}
    return Config(labels, frame, settings)


def identity_label(c: Config, key: str) -> Any:
    """A cfg.* key's value for a row: ABSENT when its identity lacks it, None without identity."""
    return None if c.settings is None else c.settings.get(column_title(key), ABSENT)


def extra_label_keys(configs: Sequence[Config], axes: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Identity keys the table must show so that no two rows look alike: each varying key
    whose value is not already determined by the columns shown so far (so model, named by
    the backbone column, or hyp.lr0, named by lr0, add nothing; hyp.weight_decay swept
    within one backbone does). Since every left-out key is a function of shown columns,
    rows that differ in any setting differ in their labels."""
    shown: list[str] = list(axes)
    extra: list[str] = []
    for k in keys:
        seen: dict[tuple[Any, ...], Any] = {}
        for c in configs:
            sig = tuple(c.axes.get(a) if a in axes else identity_label(c, a) for a in shown)
            if seen.setdefault(sig, identity_label(c, k)) != identity_label(c, k):
                shown.append(k)
                extra.append(k)
                break
    return extra


def label_columns(configs: Sequence[Config], axes: Sequence[str]) -> list[str]:
    """The configurations table's label columns: the axes, then the identity keys added."""
    return [*axes, *[k for k in (configs[0].axes if configs else {}) if k not in axes]]


def group_configs(runs: Runs, axes: Sequence[str], baseline: str, compare: str = COMPARE) -> list[Config]:
    """Completed runs grouped into rows (by identity but the seed; by the axes for runs
    without one), labelled, and sorted so that a baseline row (`compare` = baseline)
    comes right before the candidate rows that share its other labels."""
    done = runs.completed
    keys = varying_identity_keys(done)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for idx, row in done.iterrows():
        groups.setdefault(run_key(row, keys, axes), []).append(idx)
    configs = [make_config(done.loc[idx], axes) for idx in groups.values()]
    for c in configs:
        c.compare = compare
    if len({c.settings is None for c in configs}) == 2:  # else an old and a new run could look alike
        for c in configs:
            c.axes[KIND] = "none" if c.settings is None else "recorded"
    for k in extra_label_keys(configs, axes, keys):
        for c in configs:
            c.axes[k] = identity_label(c, k)
    cols = label_columns(configs, axes)

    def order(c: Config) -> tuple[Any, ...]:
        rest = tuple(_sort_key(c.axes.get(a)) for a in cols if a != compare)
        bb = c.axes.get(compare)
        return (*rest, fmt_value(bb) != fmt_value(baseline), _sort_key(bb))

    return sorted(configs, key=order)


def is_backbone_key(key: str) -> bool:
    return key in BACKBONE_KEYS or key.startswith(BACKBONE_PREFIXES)


def is_compared_key(key: str, compare: str = COMPARE) -> bool:
    """An identity key that differs between compared rows by design: the backbone's own
    settings, or the key(s) the compared axis stands for (schedule, hyp.lr0 for lr0,
    init_weights for neck_init). Any other difference makes a pair not like-for-like."""
    if compare == COMPARE:
        return is_backbone_key(key)
    return key == compare or key.endswith("." + compare) or key in AXIS_KEYS.get(compare, ())


def blocking_keys(base: Config, other: Config, axes: Sequence[str]) -> list[str]:
    """The settings that keep two rows from being a like-for-like pair: every identity key
    that differs, the backbone's own aside; where a row has no identity, the configuration
    axes but the backbone (all that is known of it)."""
    if base.settings is not None and other.settings is not None:
        keys = [*base.settings, *[k for k in other.settings if k not in base.settings]]
        return [k for k in keys if not is_compared_key(k, other.compare)
                and base.settings.get(k, ABSENT) != other.settings.get(k, ABSENT)]
    return [column_title(a) for a in axes if a != other.compare and base.axes.get(a) != other.axes.get(a)]


def find_pairs(configs: Sequence[Config], runs: Runs, axes: Sequence[str], baseline: str) -> list[Pair]:
    """For every non-baseline configuration, the baseline row it is compared with.

    The baseline row that matches it in every other setting when there is one (strict);
    otherwise the one with the fewest blocking settings (ties: table order), flagged as
    not like-for-like with the blocking settings named.
    """
    bases = [c for c in configs if c.name == fmt_value(baseline)]
    pairs: list[Pair] = []
    if not bases:
        return pairs
    for c in configs:
        if c.name == fmt_value(baseline):
            continue
        blocks = [blocking_keys(b, c, axes) for b in bases]
        best = min(range(len(bases)), key=lambda i: len(blocks[i]))
        b = bases[best]
        pairs.append(Pair(b, c, not blocks[best], row_differences(b, c, runs.axes), blocks[best]))
    return pairs


def _set_text(values: set[Any]) -> str:
    vals = sorted(values, key=_sort_key)
    return fmt_value(vals[0]) if len(vals) == 1 else "{" + ", ".join(fmt_value(v) for v in vals) + "}"


def _run_sets(base: Config, other: Config, names: Sequence[str]) -> list[tuple[str, str, str]]:
    """Columns whose sets of values over the two rows' runs differ, so a row that mixes
    values across its seeds (code revisions, epochs) is caught too."""
    out = []
    for a in names:
        vb = {_norm(v) for v in base.runs[a]} if a in base.runs.columns else {None}
        vo = {_norm(v) for v in other.runs[a]} if a in other.runs.columns else {None}
        if vb != vo:
            out.append((RUN_LABELS.get(a, AXIS_LABELS.get(a, a)), _set_text(vb), _set_text(vo)))
    return out


def identity_differences(base: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every identity key whose value differs between two rows, in the config's order."""
    keys = [*base, *[k for k in other if k not in base]]
    return [(k, fmt_value(base.get(k, ABSENT)), fmt_value(other.get(k, ABSENT)))
            for k in keys if base.get(k, ABSENT) != other.get(k, ABSENT)]


def row_differences(base: Config, other: Config, all_axes: Sequence[str]) -> list[tuple[str, str, str]]:
    """Everything that differs between two rows' runs: with identities, every identity key
    (the backbone's own included) plus seeds, device name and code revision, which the
    identity leaves out; without, every axis but the backbone plus those (today's check)."""
    if base.settings is not None and other.settings is not None:
        facts = _run_sets(base, other, ["seed", "device", "git_rev"])
        return identity_differences(base.settings, other.settings) + facts
    names = [a for a in all_axes if a != other.compare] + ["world_size", "device", "git_rev"]
    return _run_sets(base, other, names)


def fmt_difference(d: tuple[str, str, str]) -> str:
    return f"{d[0]}: {d[1]} vs {d[2]}"


def revisions(configs: Sequence[Config]) -> dict[str, list[Config]]:
    """git_rev -> the rows with a run of that code revision (a row may be under several)."""
    out: dict[str, list[Config]] = {}
    for c in configs:
        revs = {_norm(v) for v in c.runs["git_rev"]} if "git_rev" in c.runs.columns else {None}
        for r in sorted(revs, key=_sort_key):
            out.setdefault(fmt_value(r), []).append(c)
    return out


def repeated_identities(configs: Sequence[Config]) -> list[tuple[Config, str, int]]:
    """(row, digest, count) where one identity, seed included, was run more than once: those
    runs are repeats, not independent seeds, and their spread is not seed noise."""
    out = []
    for c in configs:
        if DIGEST not in c.runs.columns:
            continue
        counts = c.runs[DIGEST].dropna().value_counts()
        out += [(c, str(d), int(n)) for d, n in counts.items() if n > 1]
    return out


def seed_deltas(pair: Pair, metric: str) -> tuple[list[Any], list[float]]:
    """(seeds run on both sides, candidate − baseline per such seed): the paired sample."""
    def by_seed(c: Config) -> dict[Any, float]:
        if SEED not in c.runs.columns or metric not in c.runs.columns:
            return {}
        out: dict[Any, float] = {}
        for s, v in zip(c.runs[SEED], c.runs[metric]):
            if not is_missing(v):
                out.setdefault(_norm(s), float(v))
        return out

    b, o = by_seed(pair.baseline), by_seed(pair.other)
    seeds = sorted((s for s in o if s in b), key=_sort_key)
    return seeds, [o[s] - b[s] for s in seeds]


def t_interval(pair: Pair, metric: str, level: float = 0.95) -> tuple[float, float, str] | None:
    """The delta's t interval over seeds: paired by seed where 2 or more seeds were run on
    both sides, else Welch's over the two rows' runs; None with fewer than 2 runs a side."""
    from scipy import stats

    from analysis.verdict import seed_interval

    seeds, deltas = seed_deltas(pair, metric)
    q = 0.5 + level / 2
    if len(deltas) >= 2:
        _, lo, hi = seed_interval(deltas, level)
        return lo, hi, f"paired over {len(deltas)} seeds, t with {len(deltas) - 1} df"
    sb, so = pair.baseline.stat(metric), pair.other.stat(metric)
    if sb.n < 2 or so.n < 2:
        return None
    vb, vo = sb.std ** 2 / sb.n, so.std ** 2 / so.n
    se = math.sqrt(vb + vo)
    if se == 0:
        return so.mean - sb.mean, so.mean - sb.mean, "Welch (no spread)"
    df = (vb + vo) ** 2 / (vb ** 2 / (sb.n - 1) + vo ** 2 / (so.n - 1))
    half = float(stats.t.ppf(q, df)) * se
    d = so.mean - sb.mean
    return d - half, d + half, f"Welch over {sb.n} vs {so.n} runs (seeds not paired), t with {df:.1f} df"


def noise_statement(pair: Pair, metric: str, axes: Sequence[str]) -> str:
    """What the seeds can say about one pair on one metric, in a sentence: the delta's 95 %
    t interval (t_interval) and whether it excludes 0. Never names a winner from single seeds."""
    sb, so = pair.baseline.stat(metric), pair.other.stat(metric)
    head = (f"{pair.other.name} vs {pair.baseline.name} "
            f"({pair.other.context(axes) if pair.strict else 'closest baseline row'}), {metric}")
    if not pair.strict:
        head += " [not like-for-like: see fairness]"
    if sb.n == 0 or so.n == 0:
        return f"{head}: no completed value on one side (n={sb.n} vs {so.n}); nothing to compare."
    d = so.mean - sb.mean
    iv = t_interval(pair, metric)
    if iv is None:
        return (f"{head}: Δ = {d:+.3f} from n={sb.n} vs n={so.n} seed(s); a single-seed row has no "
                f"spread estimate, so this cannot be told apart from seed noise (no winner declared).")
    lo, hi, how = iv
    facts = f"95 % interval [{lo:+.3f}, {hi:+.3f}] ({how})"
    if lo <= 0 <= hi:
        return f"{head}: Δ = {d:+.3f}, {facts}: contains 0, within seed noise."
    higher = pair.other.name if d > 0 else pair.baseline.name
    return (f"{head}: Δ = {d:+.3f}, {facts}: excludes 0, {higher} is higher over these seeds "
            "(seed spread only; the verdict adds the spread over images).")


def pick_headline(pairs: Sequence[Pair], candidate: str, axes: Sequence[str]) -> Pair | None:
    """The baseline-vs-candidate pair to headline: like-for-like first, then the most
    seeds (smaller side, then total), ties by the configuration's name."""
    pool = [p for p in pairs if p.other.name == fmt_value(candidate)]
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
        row: dict[str, Any] = {a: c.axes.get(a) for a in label_columns(configs, axes)}
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
    cols = label_columns(configs, axes)
    headers = [*column_titles(cols), "n", *TABLE_METRICS.values(), *extra,
               *[f"Δ{TABLE_METRICS.get(m, m)}" for m in deltas], "params", "GFLOPs", "train img/s"]
    base_of = strict_baseline(configs, pairs)
    rows = []
    for c in configs:
        cells = [fmt_value(c.axes.get(a)) for a in cols] + [str(c.n)]
        for m in [*TABLE_METRICS, *extra]:
            st = c.stat(m)
            cells.append(fmt_stat(st) + (f" (n={st.n})" if 0 < st.n != c.n else ""))
        b = base_of.get(id(c))
        for m in deltas:
            if c.name == fmt_value(baseline):
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
