"""Build the baseline-vs-ConvNeXt report (tables, notes, plots) from run directories.

    python analysis/report.py DIR [DIR...] [--out OUT] [--baseline cspdarknet_s] [--metric map]

Reads only the run-directory files (see analysis/collect.py), so it works on any copy of
an output tree. Exit code: 0 report written, 1 report written but some runs failed (the
sweep uses this to exit non-zero after all its jobs), 2 no runs found.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from analysis import card, plots, study_sections, tables  # noqa: E402
from analysis import subsets  # noqa: E402
from analysis.study import Study, study_pair  # noqa: E402
from analysis.collect import METRICS, STATUSES, Runs, collect_runs, read_pr_curve  # noqa: E402

FAILURE_STATUSES = frozenset({"failed", "invalid"})
UNFINISHED_STATUSES = frozenset({"running", "preempted", "missing"})


class NoRunsFound(FileNotFoundError):
    """No run directory (summary.json or .hydra/) under any of the searched dirs."""


@dataclass
class Report:
    """A written report: where it is, its text and tables, and what it compared."""

    out_dir: Path
    markdown: str
    summary: pd.DataFrame
    runs: Runs
    pairs: list[tables.Pair]
    headline: tables.Pair | None
    files: dict[str, Path] = field(default_factory=dict)
    study: Study | None = None

    @property
    def failed(self) -> pd.DataFrame:
        """Runs that failed or whose summary.json could not be read."""
        return self.runs.runs[self.runs.runs["status"].isin(FAILURE_STATUSES)]

    def exit_code(self, strict: bool = False) -> int:
        """1 when runs failed (strict: also when any run is not completed), else 0."""
        bad = FAILURE_STATUSES | (UNFINISHED_STATUSES if strict else frozenset())
        return 1 if self.runs.runs["status"].isin(bad).any() else 0


def default_out_dir(roots: Sequence[str | Path]) -> Path:
    """DIR/report for one DIR, else ./report."""
    return Path(roots[0]) / "report" if len(roots) == 1 else Path("report")


def _first_line(err: object) -> str:
    if tables.is_missing(err) or err is None:
        return ""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _status_line(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    parts = [f"{int(counts[s])} {s}" for s in STATUSES if s in counts]
    return f"{len(runs)} run(s): " + ", ".join(parts)


def _natural(text: str) -> list[tuple[int, object]]:
    """Sort key putting multirun/2 before multirun/10."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]


def _runs_section(runs: Runs, axes: Sequence[str]) -> str:
    """Every run with its status, so failures and gaps are visible next to the means."""
    cols = [a for a in axes if a in runs.runs.columns]
    if tables.SEED in runs.axes and tables.SEED not in cols:
        cols.append(tables.SEED)
    headers = ["run", "status", *tables.column_titles(cols), "mAP (COCO)", "mAP@0.5 (COCO)", "epochs done", "error"]
    rows = []
    rank = {s: k for k, s in enumerate(("failed", "invalid", "preempted", "running", "missing", "completed"))}
    order = sorted(runs.runs.index, key=lambda i: (rank.get(runs.runs.at[i, "status"], 0),
                                                   _natural(str(runs.runs.at[i, "rel_dir"]))))
    for i in order:
        r = runs.runs.loc[i]
        rows.append([r["rel_dir"], r["status"], *[tables.fmt_value(r.get(a)) for a in cols],
                     tables._fmt_num(r["map"], ".3f"), tables._fmt_num(r["map50"], ".3f"),
                     tables.fmt_value(r.get("epochs_completed")) if not tables.is_missing(r.get("epochs_completed")) else "",
                     _first_line(r["error"])])
    return tables.md_table(headers, rows)


def _fairness_line(p: tables.Pair, cols: Sequence[str]) -> str:
    """One compared pair: every difference with both values, the backbone's own settings
    (model, its kwargs such as pretrained weights by content) apart from the rest."""
    where = p.other.context(cols)
    if p.strict:
        head = f"- **{p.other.name}** vs **{p.baseline.name}** at {where}"
    else:
        head = (f"- **{p.other.name}** ({where}) vs **{p.baseline.name}** "
                f"({p.baseline.context(cols)}): no baseline row matches in every other setting "
                f"({', '.join(p.blocking)} prevent the pairing); closest used")
    own = [tables.fmt_difference(d) for d in p.differences if tables.is_compared_key(d[0], p.other.compare)]
    rest = [tables.fmt_difference(d) for d in p.differences if not tables.is_compared_key(d[0], p.other.compare)]
    with_identity = p.baseline.settings is not None and p.other.settings is not None
    what = "the backbone's own settings" if p.other.compare == tables.COMPARE else f"the compared setting ({p.other.compare})"
    parts = [f"{what}: {'; '.join(own)}"] if own else []
    if rest:
        parts.append("**differs in** " + "; ".join(rest))
    elif with_identity:
        parts.append("nothing else differs (every identity key compared)")
    else:
        seeds = ", ".join(tables.fmt_value(s) for s in p.other.seeds()) or "none recorded"
        parts.append(f"share everything but the {p.other.compare} as far as the axes show (no identity recorded: "
                     f"same initialisation, schedule, optimizer, data, epochs, imgsz, batch_size, lr values; seeds {seeds})")
    if not with_identity and rest:
        parts.append("compared on the axes only (no identity recorded)")
    return f"{head}: " + "; ".join(parts) + "."


def _revision_note(configs: Sequence[tables.Config], cols: Sequence[str]) -> list[str]:
    """Names the code revisions when the rows were not all trained by the same code: git_rev
    is not part of the identity, yet other code can give other numbers for the same config."""
    revs = tables.revisions(configs)
    if len(revs) < 2:
        return []
    parts = [f"{r}: " + ", ".join(f"{c.name} ({c.context(cols)})" for c in rows) for r, rows in revs.items()]
    return ["- **Code revision (git_rev) differs among the rows**; numbers from different code may differ "
            "for reasons no setting shows: " + "; ".join(parts) + "."]


def _fallback_note(runs: Runs, axes: Sequence[str]) -> list[str]:
    """Says how many completed runs could only be grouped by their axes (no identity)."""
    n = len(tables.without_identity(runs))
    if not n:
        return []
    return [f"**Note:** {n} of {len(runs.completed)} completed run(s) have no identity in summary.json "
            f"(written by older code): they are grouped by the axes only ({', '.join(axes)}), so runs "
            "that differ in a setting outside those axes may share a row, their spread shown as if "
            "it were seed noise."]


def _sample_notes(runs: Runs, configs: Sequence[tables.Config], pairs: Sequence[tables.Pair],
                  axes: Sequence[str], metric: str, common: dict[str, object]) -> list[str]:
    lines = [
        "- Means are over completed runs only; ± is the sample std over seeds (ddof=1), "
        "shown as – when a row has one seed. A delta is within seed noise when its 95 % t interval "
        "over the seeds contains 0 (paired by seed where both rows ran 2 or more of the same seeds, "
        "else Welch's); with a single seed on a side there is no interval.",
    ]
    ns = sorted({c.n for p in pairs for c in (p.baseline, p.other)})
    if ns and max(ns) < 2:
        lines.append("- Every compared row has a single seed: these numbers cannot rank the backbones; "
                     "on short runs the spread between seeds of one configuration can be as large as "
                     "the differences between configurations. Run several seeds per row (train.seed=0,1,2).")
    lines += [f"- {tables.noise_statement(p, metric, axes)}" for p in pairs]
    lines += [f"- {c.name} ({c.context(axes)}): {n} runs have the same identity `{d}`, seed included: "
              "they repeat one run, they are not independent seeds." for c, d, n in tables.repeated_identities(configs)]
    data = common.get("data")
    datas = {tables.fmt_value(v) for v in runs.completed.get("data", pd.Series(dtype=object))}
    if data == "synthetic" or datas == {"synthetic"}:
        lines.append("- Data is the embedded synthetic set: a few CPU minutes per run check that the "
                     "pipeline trains and evaluate the size of seed noise; they cannot say which "
                     "backbone is better on COCO (ConvNeXt needs far longer schedules and real images "
                     "to show its ImageNet pre-training).")
    return lines


def render_markdown(runs: Runs, configs: Sequence[tables.Config], pairs: Sequence[tables.Pair],
                    headline: tables.Pair | None, axes: Sequence[str], baseline: str, candidate: str,
                    metric: str, study: Study | None = None) -> str:
    """report.md: headline, main table, fairness, what the sample shows, runs, problems."""
    common = tables.common_settings(runs, axes)
    cols = tables.label_columns(configs, axes)
    out = ["# Backbone comparison report", ""]
    out.append("Searched: " + ", ".join(f"`{r}`" for r in runs.roots) + ". " + _status_line(runs.runs) + ".")
    compare = configs[0].compare if configs else tables.COMPARE
    out.append(f"Compared along `{compare}`, baseline `{baseline}`; metric for the noise statements: `{metric}`.")
    out.append(tables.METRIC_DEFINITIONS)
    if common:
        out.append("Common to all completed runs: "
                   + ", ".join(f"{k}={tables.fmt_value(v)}" for k, v in common.items()) + ".")
    out += _fallback_note(runs, axes)
    out.append("")
    out += study_sections.verdict_lines(study, headline, baseline, candidate, cols, common)

    out.append(f"## Headline: {baseline} vs {candidate}")
    out.append("")
    if headline is None:
        out.append(f"No completed {candidate} row with a completed {baseline} row to compare it with.")
    else:
        if not headline.strict:
            out.append("**Warning: not like-for-like** — no baseline row matches the "
                       f"{candidate} rows in every other setting ({', '.join(headline.blocking)} prevent the "
                       "pairing); differences: " + "; ".join(map(tables.fmt_difference, headline.differences)) + ".")
            out.append("")
        out.append(f"Configuration: {headline.other.context(cols)}.")
        out.append("")
        label = "ConvNeXt" if candidate.startswith("convnext") else "Candidate"
        out.append(tables.md_table(["Metric", f"Baseline ({baseline})", f"{label} ({candidate})"],
                                   tables.headline_rows(headline)))
        out.append("")
        out.append("Values: mean ± std (n completed seeds).")
    out.append("")
    out += study_sections.detail_lines(study, baseline, candidate)

    out.append("## All configurations")
    out.append("")
    if configs:
        headers, rows = tables.display_rows(configs, pairs, axes, baseline, metric)
        out.append(tables.md_table(headers, rows))
        out.append("")
        gi = {tables.fmt_value(v) for v in runs.completed.get("gflops_imgsz", pd.Series(dtype=object)).dropna()}
        gnote = f" GFLOPs at imgsz {', '.join(sorted(gi))}." if gi else ""
        out.append("Δ = row mean − mean of the baseline row that matches it in every other setting "
                   "(– where there is none; see Fairness)." + gnote)
    else:
        out.append("No completed runs yet.")
    out.append("")

    out.append("## Fairness")
    out.append("")
    if pairs:
        out += [_fairness_line(p, cols) for p in pairs]
    elif configs and not any(c.name == tables.fmt_value(baseline) for c in configs):
        out.append(f"No {baseline} row among the completed runs: nothing is compared.")
    elif configs:
        out.append(f"Only {baseline} rows among the completed runs: no other {configs[0].compare} to compare with it.")
    else:
        out.append("Nothing to compare.")
    out += _revision_note(configs, cols)
    out.append("")

    out.append("## What this sample can show")
    out.append("")
    out += _sample_notes(runs, configs, pairs, cols, metric, common)
    out.append("")

    out.append("## Runs")
    out.append("")
    out.append(_runs_section(runs, cols))
    out.append("")
    if runs.problems:
        out.append("## Problems reading runs")
        out.append("")
        out += [f"- `{p}`: {m}" for p, m in runs.problems]
        out.append("")
    out.append("Plots: `study_card.png` (the verdict, the deltas by size, density and crowding, mAP vs compute), "
               "`map_vs_epoch.png`, `ap_by_size.png`, `loss_curves.png`, `pr_curve.png`, `pr_curve_per_class.png`.")
    out.append("")
    return "\n".join(out)


def _plot_groups(configs: Sequence[tables.Config], axes: Sequence[str]) -> list[plots.PlotGroup]:
    cols = tables.label_columns(configs, axes)
    varying = [a for a in cols if len({c.axes.get(a) for c in configs}) > 1] or ["backbone"]
    groups = []
    for c in configs:
        label = " / ".join(tables.fmt_value(c.axes.get(a)) for a in varying)
        size = {m: c.stat(m) for m in plots.SIZE_METRICS}
        groups.append(plots.PlotGroup(label, list(c.runs["run_dir"]), {m: s.mean for m, s in size.items()},
                                      {m: s.std for m, s in size.items()}, c.n))
    return groups


def comparison(compare: str, baseline: str | None) -> tuple[str, str]:
    """(axis, baseline value) from --compare and --baseline ('cspdarknet_s' or 'schedule=linear')."""
    if baseline is not None and "=" in baseline:
        axis, _, baseline = baseline.partition("=")
        if compare not in (tables.COMPARE, axis):
            raise ValueError(f"--baseline {axis}={baseline} is not a value of --compare {compare}")
        compare = axis
    if baseline is None:
        if compare != tables.COMPARE:
            raise ValueError(f"--compare {compare} needs its baseline value: --baseline {compare}=VALUE")
        baseline = "cspdarknet_s"
    return compare, baseline


def build_report(roots: Sequence[str | Path], out_dir: str | Path | None = None,
                 baseline: str | None = None, metric: str = "map",
                 candidate: str | None = None, margin: float = 0.5, resamples: int = 1000,
                 compare: str = tables.COMPARE,
                 density_edges: Sequence[int] = subsets.DENSITY_EDGES,
                 crowding_edges: Sequence[float] = subsets.CROWDING_EDGES) -> Report:
    """Collect the runs under roots and write report.md, the tables and the plots to out_dir.

    compare: the axis rows are compared along (default the backbone); baseline: its
    baseline value ("cspdarknet_s" for the backbone; required for another axis), also as
    "axis=value". candidate: the value of the headline table (default convnext_tiny if
    present, else the first other value). The verdict (margin in mAP points, `resamples` image
    bootstrap resamples) is given for the headline pair when it is like-for-like. Raises
    NoRunsFound when no run dir exists.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    roots = [Path(r) for r in roots]
    runs = collect_runs(*roots)
    if runs.runs.empty:
        raise NoRunsFound("no runs found (no summary.json or .hydra/ below): searched "
                          + ", ".join(str(r) for r in roots))
    out = Path(out_dir) if out_dir is not None else default_out_dir(roots)
    out.mkdir(parents=True, exist_ok=True)

    compare, baseline = comparison(compare, baseline)
    axes = tables.config_axes(runs)
    if compare not in axes:
        if compare not in runs.axes:
            raise ValueError(f"--compare {compare}: no run has that axis; the axes are {', '.join(runs.axes)}")
        axes.append(compare)  # one value among completed runs: nothing to pair, but rows still show
    configs = tables.group_configs(runs, axes, baseline, compare)
    pairs = tables.find_pairs(configs, runs, axes, baseline)
    if candidate is None:
        others = sorted({c.name for c in configs if c.name != tables.fmt_value(baseline)})
        candidate = "convnext_tiny" if "convnext_tiny" in others or not others else others[0]
    headline = tables.pick_headline(pairs, candidate, tables.label_columns(configs, axes))
    summary = tables.summary_frame(configs, pairs, axes, metric)
    study = None
    if headline is not None and headline.strict and headline.baseline.settings is not None \
            and headline.other.settings is not None:
        study = study_pair(headline, n_resamples=resamples, margin_points=margin,
                           density_edges=density_edges, crowding_edges=crowding_edges)
    markdown = render_markdown(runs, configs, pairs, headline, axes, baseline, candidate, metric, study)

    files = {"report.md": out / "report.md", "summary_table.csv": out / "summary_table.csv",
             "runs.csv": out / "runs.csv", "summary_table.tex": out / "summary_table.tex"}
    files["report.md"].write_text(markdown, encoding="utf-8")
    summary.to_csv(files["summary_table.csv"], index=False)
    runs.runs.to_csv(files["runs.csv"], index=False)
    headers, rows = tables.display_rows(configs, pairs, axes, baseline, metric)
    files["summary_table.tex"].write_text(tables.latex_table(headers, rows), encoding="utf-8")

    groups = _plot_groups(configs, axes)
    completed_epochs = runs.epochs[runs.epochs["status"] == "completed"] if "status" in runs.epochs else runs.epochs
    files["map_vs_epoch.png"] = plots.plot_map_vs_epoch(completed_epochs, groups, out / "map_vs_epoch.png")
    files["ap_by_size.png"] = plots.plot_ap_by_size(groups, out / "ap_by_size.png")
    files["loss_curves.png"] = plots.plot_loss_curves(completed_epochs, groups, out / "loss_curves.png")
    curves = {d: read_pr_curve(d) for g in groups for d in g.run_dirs}
    files["pr_curve.png"] = plots.plot_pr_curves(curves, groups, out / "pr_curve.png")
    files["pr_curve_per_class.png"] = plots.plot_pr_per_class(curves, groups, out / "pr_curve_per_class.png")
    if study is not None:
        files.update(study_sections.write_study_files(study, out))
    files["study_card.png"] = card.plot_study_card(study, configs, baseline, candidate, out / "study_card.png",
                                                   study_sections.verdict_headline(study, headline, baseline, candidate))
    return Report(out, markdown, summary, runs, list(pairs), headline, files, study)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ok, 1 some runs failed, 2 no runs found)."""
    ap = argparse.ArgumentParser(description="Baseline-vs-ConvNeXt tables and plots from run directories.")
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories (searched recursively)")
    ap.add_argument("--out", default=None, help="output dir (default: DIR/report for one DIR, else ./report)")
    ap.add_argument("--compare", default=tables.COMPARE,
                    help="axis the rows are compared along (default: backbone), e.g. schedule, neck_init, lr0")
    ap.add_argument("--baseline", default=None,
                    help="baseline value of that axis, or axis=value (default: cspdarknet_s for the backbone)")
    ap.add_argument("--candidate", default=None, help="value of the headline table (default: convnext_tiny)")
    ap.add_argument("--metric", default="map", choices=METRICS, help="metric of the noise statements (default: map)")
    ap.add_argument("--margin", type=float, default=0.5,
                    help="non-inferiority margin of the verdict, in mAP points (default: 0.5)")
    ap.add_argument("--resamples", type=int, default=1000, help="image bootstrap resamples (default: 1000)")
    ap.add_argument("--density-bins", default=",".join(map(str, subsets.DENSITY_EDGES)),
                    help="lower edges of the objects-per-image bins (default: 1,2,6,11,21)")
    ap.add_argument("--crowding-bins", default=",".join(map(str, subsets.CROWDING_EDGES)),
                    help="lower edges of the largest-IoU bins (default: 0,0.1,0.3)")
    ap.add_argument("--strict", action="store_true",
                    help="also exit 1 when runs are running, preempted or missing (for a sweep whose jobs all ended)")
    args = ap.parse_args(argv)
    try:
        density = [int(x) for x in args.density_bins.split(",")]
        crowding = [float(x) for x in args.crowding_bins.split(",")]
        if args.resamples < 100 or args.margin < 0:
            raise ValueError("--resamples must be at least 100 and --margin not negative")
        rep = build_report(args.dirs, args.out, baseline=args.baseline, metric=args.metric, compare=args.compare,
                           candidate=args.candidate, margin=args.margin, resamples=args.resamples,
                           density_edges=density, crowding_edges=crowding)
    except ValueError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    except NoRunsFound as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    print(rep.markdown)
    code = rep.exit_code(strict=args.strict)
    msg = f"report written to {rep.out_dir}"
    if len(rep.failed):
        msg += f"; {len(rep.failed)} run(s) failed or unreadable (exit 1)"
    print(msg, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
