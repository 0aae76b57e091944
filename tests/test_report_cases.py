"""report.py on the cases a user tripped over: a tune directory, a sweep without the
candidate, a string metric, an axis named like a report column, single-epoch runs."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import plots  # noqa: E402
from analysis.report import build_report  # noqa: E402
from test_report import write_run  # noqa: E402


def test_a_tune_directory_has_no_phantom_run(tmp_path):
    """experiments.tune: Hydra's .hydra/ in the search directory, the trials below it."""
    tune = tmp_path / "tune"
    (tune / ".hydra").mkdir(parents=True)
    (tune / ".hydra" / "overrides.yaml").write_text("- tune.n_trials=2\n- train.synthetic.n_train=64\n")
    for k in range(2):
        write_run(tune / f"trial_{k}", "cspdarknet_s", 0, lr0=0.001 * (k + 1))
    rep = build_report([tune], tmp_path / "out")
    assert sorted(rep.runs.runs["rel_dir"]) == ["trial_0", "trial_1"]
    assert rep.exit_code(strict=True) == 0
    assert "n_trials" not in rep.markdown and "=?" not in rep.markdown
    # a job that died before its first write is still listed as missing
    (tmp_path / "sweep" / "3" / ".hydra").mkdir(parents=True)
    write_run(tmp_path / "sweep" / "1", "cspdarknet_s", 0)
    rep = build_report([tmp_path / "sweep"], tmp_path / "out2")
    assert dict(zip(rep.runs.runs["rel_dir"], rep.runs.runs["status"])) == {"1": "completed", "3": "missing"}


def test_without_the_candidate_the_note_says_what_is_there(tmp_path):
    write_run(tmp_path / "r" / "0", "cspdarknet_s", 0)
    rep = build_report([tmp_path / "r"], tmp_path / "out")
    assert "Only cspdarknet_s rows among the completed runs" in rep.markdown
    assert "No cspdarknet_s row" not in rep.markdown


def test_runs_table_names_epochs_done_apart_from_an_epochs_axis(tmp_path):
    write_run(tmp_path / "r" / "0", "cspdarknet_s", 0, epochs=3)
    write_run(tmp_path / "r" / "1", "cspdarknet_s", 0, epochs=5)
    header = next(ln for ln in build_report([tmp_path / "r"], tmp_path / "o").markdown.splitlines()
                  if ln.startswith("| run |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells.count("epochs") == 1 and "epochs done" in cells


def test_a_metric_stored_as_a_string_is_not_averaged(tmp_path):
    for seed, m in ((0, 0.3), (1, 0.5)):
        write_run(tmp_path / "r" / str(seed), "cspdarknet_s", seed, m=m)
    path = tmp_path / "r" / "1" / "summary.json"
    summary = json.loads(path.read_text())
    summary["metrics"]["map"] = "0.5"
    path.write_text(json.dumps(summary))
    rep = build_report([tmp_path / "r"], tmp_path / "out")
    assert rep.summary["map_mean"].iloc[0] == 0.3 and rep.summary["map_n"].iloc[0] == 1
    assert any("metric map='0.5' is not a number" in m for _, m in rep.runs.problems)


def test_an_axis_named_status_does_not_replace_the_run_status(tmp_path):
    for k, value in enumerate(("new", "old")):
        write_run(tmp_path / "r" / str(k), "cspdarknet_s", 0, status_label=value)
        path = tmp_path / "r" / str(k) / "summary.json"
        summary = json.loads(path.read_text())
        summary["axes"]["status"] = summary["axes"].pop("status_label")
        path.write_text(json.dumps(summary))
    rep = build_report([tmp_path / "r"], tmp_path / "out")
    assert list(rep.runs.runs["status"]) == ["completed", "completed"]
    assert sorted(rep.runs.runs["status_axis"]) == ["new", "old"] and len(rep.summary) == 2
    assert any("axis 'status' has the name of a report column" in m for _, m in rep.runs.problems)


def test_a_single_epoch_curve_is_drawn_with_a_marker(tmp_path):
    epochs = pd.DataFrame({"run_dir": ["a"], "epoch": [0], plots.MAP_COLUMN: [0.1]})
    fig, ax = plt.subplots()
    assert plots._band(ax, epochs, ["a"], plots.MAP_COLUMN, "one", "C0")
    assert ax.lines[0].get_marker() == "o" and ax.get_xlim() == (-1.0, 1.0)
    plt.close(fig)


def test_per_class_pr_curves_are_drawn(tmp_path):
    write_run(tmp_path / "r" / "0", "cspdarknet_s", 0)
    rep = build_report([tmp_path / "r"], tmp_path / "out")
    img = plt.imread(rep.files["pr_curve_per_class.png"])
    assert img.shape[0] > 100 and (img[..., :3] < 0.9).any()  # drawn, not blank


def test_seed_intervals_are_scipys_paired_and_welch_t_intervals(tmp_path):
    from scipy import stats

    from analysis import tables

    base, paired, unpaired = [0.30, 0.32, 0.35], [0.33, 0.36, 0.36], [0.40, 0.44]
    for seed, m in enumerate(base):
        write_run(tmp_path / "p" / f"b{seed}", "cspdarknet_s", seed, m=m)
        write_run(tmp_path / "w" / f"b{seed}", "cspdarknet_s", seed, m=m)
    for seed, m in enumerate(paired):
        write_run(tmp_path / "p" / f"c{seed}", "convnext_tiny", seed, m=m)
    for seed, m in zip((7, 8), unpaired):
        write_run(tmp_path / "w" / f"c{seed}", "convnext_tiny", seed, m=m)
    for root, want in (("p", stats.ttest_rel(paired, base).confidence_interval()),
                       ("w", stats.ttest_ind(unpaired, base, equal_var=False).confidence_interval())):
        rep = build_report([tmp_path / root], tmp_path / f"out_{root}")
        lo, hi, how = tables.t_interval(rep.pairs[0], "map")
        assert (lo, hi) == pytest.approx((want.low, want.high), abs=1e-12)
        assert how.startswith("paired over 3 seeds" if root == "p" else "Welch over 3 vs 2 runs")


def test_compare_along_another_axis(tmp_path, capsys):
    from analysis.report import main
    from test_report_identity import run as identity_run

    for seed in (0, 1):
        identity_run(tmp_path / "s", f"lin{seed}", "cspdarknet_s", seed, m=0.30 + 0.01 * seed, schedule="linear")
        identity_run(tmp_path / "s", f"cos{seed}", "cspdarknet_s", seed, m=0.34 + 0.01 * seed, schedule="cosine")
    identity_run(tmp_path / "s", "sgd0", "cspdarknet_s", 0, m=0.5, schedule="cosine", optimizer="sgd")
    rep = build_report([tmp_path / "s"], tmp_path / "out", compare="schedule", baseline="linear", candidate="cosine")
    strict = [p for p in rep.pairs if p.strict]
    assert len(strict) == 1 and strict[0].delta("map") == pytest.approx(0.04)
    assert strict[0].other.name == "cosine" and strict[0].baseline.name == "linear"
    loose = [p for p in rep.pairs if not p.strict]
    assert len(loose) == 1 and loose[0].blocking == ["optimizer"]  # the sgd run: another recipe, named
    md = rep.markdown
    assert "Compared along `schedule`, baseline `linear`" in md
    assert "the compared setting (schedule): schedule: linear vs cosine" in md
    assert "## Headline: linear vs cosine" in md and "no per-image files" not in md
    # the same through the command line, the baseline given as axis=value
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "o2"), "--baseline", "schedule=linear",
                 "--candidate", "cosine"]) == 0
    assert "Compared along `schedule`" in (tmp_path / "o2" / "report.md").read_text()
    capsys.readouterr()
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "o3"), "--compare", "schedule"]) == 2
    assert "--compare schedule needs its baseline value" in capsys.readouterr().err
    assert main([str(tmp_path / "s"), "--out", str(tmp_path / "o4"), "--compare", "nope", "--baseline", "x"]) == 2
    assert "no run has that axis" in capsys.readouterr().err
