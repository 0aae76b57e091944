"""report.py on hand-written sweeps: every number checked against values worked out by hand.

Main fixture: 2 backbones x 2 schedules x 3 seeds (all adamw, neck_init random), plus a
failed, a running, a preempted run (their metrics are 0.99, so any leak into a mean shows),
a job dir with only .hydra/, and a truncated summary.json.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
from PIL import Image

from analysis.report import build_report, main

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("map_vs_epoch.png", "ap_by_size.png", "loss_curves.png", "pr_curve.png")
BASE_AXES = {"neck_init": "random", "optimizer": "adamw", "data": "synthetic", "epochs": 3, "imgsz": 96,
             "batch_size": 8, "lr0": 0.002, "lrf": 0.01}
FACTS = {"cspdarknet_s": (7235389, 16.5), "convnext_tiny": (34500000, 40.1)}


def write_run(run: Path, backbone: str, seed: int, status: str = "completed", *, m: float | None = 0.3,
              m50: float = 0.5, s: float = 0.1, med: float = 0.3, large: float | None = 0.5, p: float = 0.6,
              r: float = 0.4, ips: float = 30.0, error: str | None = None, epochs_written: int = 3,
              **axes) -> Path:
    """One run directory per docs/run_directory.md; per-epoch mAP rises linearly to the final m."""
    run.mkdir(parents=True)
    ax = {"backbone": backbone, **BASE_AXES, "seed": seed, **axes}
    params, gflops = FACTS[backbone]
    metrics = {"map": m, "map50": m50, "map75": None if m is None else m - 0.02, "map_small": s,
               "map_medium": med, "map_large": large, "ar1": 0.2, "ar10": 0.3, "ar100": 0.4, "ar_small": 0.1,
               "ar_medium": 0.3, "ar_large": 0.5, "precision": p, "recall": r}
    summ = {"status": status, "error": error, "run_name": f"backbone={backbone},seed={seed}", "axes": ax,
            "model": {"name": "yolov5s", "params": params, "gflops": gflops, "gflops_imgsz": 640},
            "metrics": metrics, "best_epoch": 2, "epochs_completed": epochs_written, "wall_time_s": 60.0,
            "train_images_per_s": ips, "device": "cpu", "versions": {"python": "3.11.7"}, "git_rev": "abc1234"}
    (run / "summary.json").write_text(json.dumps(summ))
    (run / ".hydra").mkdir()
    n_lr = 4 if backbone == "convnext_tiny" else 3
    header = ["epoch", "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision",
              "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss",
              "val/cls_loss", *[f"x/lr{i}" for i in range(n_lr)], "time/epoch_s", "train/images_per_s"]
    lines = [",".join(header)]
    final = 0.0 if m is None else m
    for e in range(epochs_written):
        f = (e + 1) / 3
        vals = [e, 0.1 / f, 0.05 / f, 0.02 / f, p * f, r * f, m50 * f, final * f, 0.1, 0.05, 0.02,
                *[0.002] * n_lr, 20.0, ips]
        lines.append(",".join(str(v) for v in vals))
    (run / "results.csv").write_text("\n".join(lines) + "\n")
    # PR curve: precision m50 up to recall 0.5, then falling linearly to 0 at recall 1
    # (grid of 3 points, not the trainer's 101: the report must interpolate)
    (run / "pr_curve.csv").write_text(f"recall,all,a,b\n0,{m50},{m50},{m50}\n0.5,{m50},{m50},{m50}\n1,0,0,0\n")
    return run


# (backbone, schedule) -> per-seed (map, map50, APs, APm, APl, P, R)
VALUES = {
    ("cspdarknet_s", "linear"): [(0.30, 0.50, 0.10, 0.30, 0.50, 0.60, 0.40),
                                 (0.32, 0.52, 0.12, 0.32, 0.52, 0.62, 0.42),
                                 (0.34, 0.54, 0.14, 0.34, None, 0.64, 0.44)],
    ("convnext_tiny", "linear"): [(0.33, 0.55, 0.15, 0.33, 0.50, 0.63, 0.45),
                                  (0.36, 0.58, 0.18, 0.36, 0.53, 0.66, 0.48),
                                  (0.39, 0.61, 0.21, 0.39, 0.56, 0.69, 0.51)],
    ("cspdarknet_s", "cosine"): [(0.30, 0.50, 0.10, 0.30, 0.50, 0.60, 0.40),
                                 (0.31, 0.51, 0.11, 0.31, 0.51, 0.61, 0.41),
                                 (0.32, 0.52, 0.12, 0.32, 0.52, 0.62, 0.42)],
    ("convnext_tiny", "cosine"): [(0.30, 0.50, 0.12, 0.30, 0.48, 0.60, 0.40),
                                  (0.32, 0.53, 0.14, 0.32, 0.50, 0.63, 0.43),
                                  (0.34, 0.56, 0.16, 0.34, 0.52, 0.66, 0.46)],
}
IPS = {"cspdarknet_s": (30.0, 32.0, 34.0), "convnext_tiny": (10.0, 11.0, 12.0)}
LEAK = dict(m=0.99, m50=0.99, s=0.99, med=0.99, large=0.99, p=0.99, r=0.99)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    i = 0
    for (bb, sched), seeds in VALUES.items():
        for seed, (m, m50, s, med, large, p, r) in enumerate(seeds):
            write_run(root / "multirun" / str(i), bb, seed, m=m, m50=m50, s=s, med=med, large=large, p=p, r=r,
                      ips=IPS[bb][seed], schedule=sched)
            i += 1
    write_run(root / "multirun" / "backbone=convnext_tiny,schedule=linear,seed=3", "convnext_tiny", 3, "failed",
              schedule="linear", error="RuntimeError: out of memory\nTraceback (most recent call last):\n  x",
              epochs_written=2, **LEAK)
    write_run(root / "multirun" / "nested" / "13", "cspdarknet_s", 3, "running", schedule="cosine",
              epochs_written=1, **LEAK)
    write_run(root / "multirun" / "14", "convnext_tiny", 4, "preempted", schedule="cosine", **LEAK)
    hydra_only = root / "multirun" / "15" / ".hydra"
    hydra_only.mkdir(parents=True)
    (hydra_only / "overrides.yaml").write_text("- model/backbone=convnext_tiny\n- schedule=cosine\n- seed=5\n")
    (root / "multirun" / "16").mkdir()
    (root / "multirun" / "16" / "summary.json").write_text('{"status": "completed", "axes": {"backbo')
    return root


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory: pytest.TempPathFactory):
    return build_report([sweep], tmp_path_factory.mktemp("out"))


def report_groups(report):
    from analysis import report as report_module, tables

    axes = tables.config_axes(report.runs)
    configs = tables.group_configs(report.runs, axes, "cspdarknet_s")
    return report_module._plot_groups(configs, axes)


def row_of(summary: pd.DataFrame, backbone: str, schedule: str) -> pd.Series:
    rows = summary[(summary["backbone"] == backbone) & (summary["schedule"] == schedule)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_main_table_means_stds_deltas(report) -> None:
    t = report.summary
    assert len(t) == 4
    assert list(t.columns[:4]) == ["backbone", "neck_init", "schedule", "optimizer"]  # seed is averaged, not a row
    a = row_of(t, "cspdarknet_s", "linear")
    # seeds 0.30, 0.32, 0.34 -> mean 0.32, sample std 0.02; the failed/running 0.99 runs never count.
    assert (a["n"], a["map_n"]) == (3, 3)
    assert a["map_mean"] == pytest.approx(0.32) and a["map_std"] == pytest.approx(0.02)
    assert a["map50_mean"] == pytest.approx(0.52) and a["map50_std"] == pytest.approx(0.02)
    assert a["map75_mean"] == pytest.approx(0.30) and a["map75_std"] == pytest.approx(0.02)
    # APl null for seed 2 -> 0.50, 0.52: mean 0.51, std sqrt(2*0.01^2/1) = 0.0141421, n 2.
    assert a["map_large_mean"] == pytest.approx(0.51) and a["map_large_std"] == pytest.approx(0.0141421356)
    assert a["map_large_n"] == 2
    assert math.isnan(a["delta_map"]) and math.isnan(a["delta_map50"])  # the baseline row itself
    assert a["params"] == 7235389 and a["gflops"] == 16.5 and a["train_images_per_s"] == pytest.approx(32.0)

    c = row_of(t, "convnext_tiny", "linear")
    assert c["n"] == 3  # seed 3 failed: excluded
    assert c["map_mean"] == pytest.approx(0.36) and c["map_std"] == pytest.approx(0.03)
    assert c["delta_map"] == pytest.approx(0.04) and c["delta_map50"] == pytest.approx(0.06)
    assert c["recall_mean"] == pytest.approx(0.48) and c["train_images_per_s"] == pytest.approx(11.0)

    b2 = row_of(t, "cspdarknet_s", "cosine")
    assert b2["n"] == 3 and b2["map_mean"] == pytest.approx(0.31) and b2["map_std"] == pytest.approx(0.01)
    c2 = row_of(t, "convnext_tiny", "cosine")
    assert c2["n"] == 3 and c2["seeds"] == "0 1 2"  # the preempted seed 4 is not in
    assert c2["delta_map"] == pytest.approx(0.01) and c2["delta_map50"] == pytest.approx(0.02)
    assert c2["map_small_mean"] == pytest.approx(0.14) and c2["map_small_std"] == pytest.approx(0.02)


def test_markdown_tables(report) -> None:
    md = report.markdown
    lines = md.splitlines()
    # The main table row of convnext/linear, formatted.
    row = next(ln for ln in lines if ln.startswith("| convnext_tiny | random | linear | adamw |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "3"
    assert cells[5] == "0.360 ± 0.030" and cells[6] == "0.580 ± 0.030"
    assert cells[13:18] == ["+0.040", "+0.060", "34.50M", "40.1", "11.0"]
    base = next(ln for ln in lines if ln.startswith("| cspdarknet_s | random | linear | adamw |"))
    assert "0.510 ± 0.014 (n=2)" in base  # APl: one seed had null
    # Headline: both pairs have 3 seeds; the tie goes to the name, cosine < linear.
    assert "| Metric | Baseline (cspdarknet_s) | ConvNeXt (convnext_tiny) |" in md
    expected = [("mAP@0.5:0.95 (COCO)", "0.310 ± 0.010 (3)", "0.320 ± 0.020 (3)"),
                ("mAP@0.5 (COCO)", "0.510 ± 0.010 (3)", "0.530 ± 0.030 (3)"),
                ("Precision (YOLOv5)", "0.610 ± 0.010 (3)", "0.630 ± 0.030 (3)"),
                ("Recall (YOLOv5)", "0.410 ± 0.010 (3)", "0.430 ± 0.030 (3)"),
                ("APs (COCO)", "0.110 ± 0.010 (3)", "0.140 ± 0.020 (3)"),
                ("APm (COCO)", "0.310 ± 0.010 (3)", "0.320 ± 0.020 (3)"),
                ("APl (COCO)", "0.510 ± 0.010 (3)", "0.500 ± 0.020 (3)")]
    for name, b, c in expected:
        assert f"| {name} | {b} | {c} |" in md
    # every mAP says whose definition it is
    assert "Metrics: mAP, mAP@0.5, mAP@0.75, APs/APm/APl are COCO's" in md and "P and R are YOLOv5's" in md
    assert report.headline.strict and report.headline.other.axes["schedule"] == "cosine"


def test_runs_table_shows_failures(report) -> None:
    runs = report.runs.runs
    assert len(runs) == 17
    counts = runs["status"].value_counts().to_dict()
    assert counts == {"completed": 12, "failed": 1, "running": 1, "preempted": 1, "missing": 1, "invalid": 1}
    md = report.markdown
    failed = next(ln for ln in md.splitlines() if "| failed |" in ln)
    assert "RuntimeError: out of memory" in failed and "Traceback" not in failed
    missing = next(ln for ln in md.splitlines() if "| missing |" in ln)
    assert "convnext_tiny" in missing and "cosine" in missing  # axes read from .hydra/overrides.yaml
    assert "| running |" in md and "| preempted |" in md and "| invalid |" in md
    assert "unreadable summary.json" in md  # the truncated one, under problems
    assert report.exit_code() == 1


def test_fairness_and_noise_statements(report) -> None:
    md = report.markdown
    fair = md.split("## Fairness")[1].split("##")[0]
    assert fair.count("share everything but the backbone") == 2
    notes = md.split("## What this sample can show")[1].split("## Runs")[0].splitlines()
    lin = next(ln for ln in notes if "schedule=linear" in ln)
    # per-seed deltas 0.03, 0.04, 0.05: mean 0.04, sd 0.01, t(0.975, 2) = 4.3027 -> ±0.0248
    assert "Δ = +0.040, 95 % interval [+0.015, +0.065] (paired over 3 seeds, t with 2 df): excludes 0" in lin
    cos = next(ln for ln in notes if "schedule=cosine" in ln)
    # per-seed deltas 0, 0.01, 0.02: mean 0.01, sd 0.01 -> [-0.0148, +0.0348]
    assert "Δ = +0.010, 95 % interval [-0.015, +0.035] (paired over 3 seeds, t with 2 df): contains 0" in cos
    assert "embedded synthetic set" in md


def test_files_written_and_parse(report) -> None:
    out = report.out_dir
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        img = mpimg.imread(out / name)
        assert img.shape[0] > 100 and img.shape[1] > 100
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 0 and im.size[1] > 0
    csv = pd.read_csv(out / "summary_table.csv")
    assert len(csv) == 4
    assert row_of(csv, "convnext_tiny", "linear")["delta_map"] == pytest.approx(0.04)
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 17 and set(runs["status"]) == {"completed", "failed", "running", "preempted",
                                                        "missing", "invalid"}
    assert (out / "report.md").read_text(encoding="utf-8") == report.markdown
    tex = (out / "summary_table.tex").read_text(encoding="utf-8")
    spec = re.match(r"\\begin\{tabular\}\{(l+)\}", tex)
    assert spec and tex.rstrip().endswith(r"\end{tabular}")
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].strip().splitlines()
    header = tex.split("\\toprule\n")[1].split("\n")[0]
    assert len(body) == 4
    for line in [header, *body]:
        assert line.endswith(r"\\")
        assert len(re.findall(r"(?<!\\)&", line)) == len(spec.group(1)) - 1
    assert re.search(r"(?<!\\)_", tex) is None and "±" not in tex and r"0.360 $\pm$ 0.030" in tex


def test_pr_curve_band_over_seeds(report) -> None:
    from analysis import plots
    from analysis.collect import read_pr_curve

    cfg = [g for g in report_groups(report) if "cspdarknet_s" in g.label and "linear" in g.label]
    assert len(cfg) == 1 and len(cfg[0].run_dirs) == 3   # the completed seeds only: no 0.99 leak
    band = plots.pr_band({d: read_pr_curve(d) for d in cfg[0].run_dirs}, cfg[0].run_dirs)
    at = band.set_index(band["recall"].round(2))
    # m50 of the three seeds: 0.50, 0.52, 0.54; at recall .75 half of that
    assert (at.loc[0.25, "mean"], at.loc[0.25, "min"], at.loc[0.25, "max"]) == pytest.approx((0.52, 0.50, 0.54))
    assert at.loc[0.75, "mean"] == pytest.approx(0.26) and at.loc[1.0, "max"] == 0.0
    assert band["n"].iloc[0] == 3
    assert plots.pr_band({}, cfg[0].run_dirs) is None


def test_ddp_runs_are_flagged_against_single_process_ones(tmp_path: Path) -> None:
    """world_size differs between compared rows: the fairness note says so (BatchNorm sees
    batch / world_size images); summaries written before world_size existed count as 1."""
    root = tmp_path / "sweep"
    write_run(root / "0", "cspdarknet_s", 0, schedule="linear")
    cand = write_run(root / "1", "convnext_tiny", 0, schedule="linear")
    rep = build_report([root], tmp_path / "o1")
    assert "world_size" not in rep.markdown                  # absent on both: one process each
    summary = json.loads((cand / "summary.json").read_text())
    (cand / "summary.json").write_text(json.dumps({**summary, "world_size": 4}))
    rep = build_report([root], tmp_path / "o2")
    assert "world_size (DDP processes: BatchNorm batch per process): 1 vs 4" in rep.markdown
    assert sorted(rep.runs.runs["world_size"]) == [1, 4]


def test_cli_exit_codes(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--out", str(tmp_path / "r1")]) == 1  # a run failed: still written
    out = capsys.readouterr()
    assert out.out.startswith("# Backbone comparison report") and (tmp_path / "r1" / "report.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no runs found" in err and str(empty) in err and str(tmp_path / "nope") in err


def test_unpaired_initialisation_is_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed project's comparison: a COCO-initialised baseline vs a random-neck ConvNeXt,
    trained for different epochs, one seed each."""
    root = tmp_path / "seedlike"
    write_run(root / "a", "cspdarknet_s", 0, m=0.37, schedule="linear", neck_init="yolov5s", epochs=50)
    write_run(root / "b", "convnext_tiny", 0, m=0.30, schedule="linear", neck_init="random", epochs=30)
    assert main([str(root)]) == 0  # all completed; default out is DIR/report
    md = (root / "report" / "report.md").read_text(encoding="utf-8")
    assert "**Warning: not like-for-like**" in md
    fair = md.split("## Fairness")[1].split("##")[0]
    assert "neck_init (initialisation): yolov5s vs random" in fair and "epochs: 50 vs 30" in fair
    assert "share everything but the backbone" not in fair
    assert "no winner declared" in md and "Every compared row has a single seed" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| convnext_tiny |"))
    assert "| 0.300 ± – |" in row  # n = 1: no std, not 0
    assert "| – | – |" in row  # no like-for-like baseline row: no delta
    # A second pass over the same dir must not pick up the report folder as a run.
    capsys.readouterr()
    assert main([str(root)]) == 0 and "2 run(s): 2 completed" in capsys.readouterr().out


def test_headline_prefers_more_seeds_and_flags_seed_sets(tmp_path: Path) -> None:
    root = tmp_path / "sets"
    for seed in (0, 1):
        write_run(root / f"lb{seed}", "cspdarknet_s", seed, m=0.3 + seed / 100, schedule="linear")
        write_run(root / f"lc{seed}", "convnext_tiny", seed, m=0.4 + seed / 100, schedule="linear")
        write_run(root / f"cb{seed}", "cspdarknet_s", seed, m=0.3, schedule="cosine")
    write_run(root / "cc0", "convnext_tiny", 0, m=0.5, schedule="cosine")
    rep = build_report([root], tmp_path / "out")
    assert rep.headline.other.axes["schedule"] == "linear"  # 2 seeds a side beats 1, despite the name order
    assert "| mAP@0.5:0.95 (COCO) | 0.305 ± 0.007 (2) | 0.405 ± 0.007 (2) |" in rep.markdown
    fair = rep.markdown.split("## Fairness")[1].split("##")[0]
    cos = next(ln for ln in fair.splitlines() if "schedule=cosine" in ln)
    assert "seeds: {0, 1} vs 0" in cos
    assert rep.exit_code() == 0


def test_analysis_imports_no_training_code() -> None:
    code = ("import sys, analysis, analysis.collect, analysis.report, analysis.tables, analysis.plots;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hydra', 'yolo_core', 'omegaconf')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_script_entry_point(sweep: Path, tmp_path: Path) -> None:
    """`python analysis/report.py DIR` works as a script, from any working directory."""
    res = subprocess.run([sys.executable, str(REPO / "analysis" / "report.py"), str(sweep), "--out",
                          str(tmp_path / "r")], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert res.returncode == 1, res.stderr
    assert "## Headline: cspdarknet_s vs convnext_tiny" in res.stdout
    assert "1 run(s) failed or unreadable" not in res.stderr and "2 run(s) failed or unreadable" in res.stderr


def test_exit_code_counts_failed_runs_and_strict_counts_unfinished(tmp_path: Path) -> None:
    root = tmp_path / "codes"
    write_run(root / "a", "cspdarknet_s", 0, schedule="linear")
    write_run(root / "b", "convnext_tiny", 0, "running", schedule="linear")
    assert main([str(root), "--out", str(tmp_path / "o1")]) == 0  # running is not a failure...
    assert main([str(root), "--out", str(tmp_path / "o2"), "--strict"]) == 1  # ...unless the sweep has ended
    write_run(root / "c", "convnext_tiny", 1, "failed", schedule="linear", error="boom")
    assert main([str(root), "--out", str(tmp_path / "o3")]) == 1
    assert (tmp_path / "o3" / "report.md").is_file() and (tmp_path / "o3" / "loss_curves.png").is_file()
