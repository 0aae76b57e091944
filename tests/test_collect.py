"""collect_runs on hand-written run directories: what it reads, and that bad runs never crash it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analysis.collect import METRICS, collect_runs, read_results_csv

HEADER = ["epoch", "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision",
          "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss",
          "val/cls_loss", "x/lr0", "x/lr1", "x/lr2", "time/epoch_s", "train/images_per_s"]


def summary(backbone: str = "cspdarknet_s", seed: int = 0, status: str = "completed", **metrics) -> dict:
    m = {k: 0.1 for k in METRICS}
    m.update(metrics)
    return {
        "status": status, "error": None, "run_name": f"backbone={backbone},seed={seed}",
        "axes": {"backbone": backbone, "neck_init": "random", "schedule": "linear", "optimizer": "adamw",
                 "seed": seed, "data": "synthetic", "epochs": 2, "imgsz": 96, "batch_size": 8, "lr0": 0.002},
        "model": {"name": "yolov5s", "params": 7235389, "gflops": 16.5, "gflops_imgsz": 640,
                  "backbone_params": 4212480},
        "metrics": m, "best_epoch": 1, "epochs_completed": 2, "wall_time_s": 10.0,
        "train_images_per_s": 30.0, "device": "cpu", "versions": {"python": "3.11.7"}, "git_rev": "abc1234",
    }


def write(run: Path, summ: dict | str | None, csv_text: str | None = None, overrides: list[str] | None = None) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    if summ is not None:
        (run / "summary.json").write_text(summ if isinstance(summ, str) else json.dumps(summ))
    if csv_text is not None:
        (run / "results.csv").write_text(csv_text)
    if overrides is not None:
        (run / ".hydra").mkdir(exist_ok=True)
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return run


def plain_csv(rows: list[list[float]]) -> str:
    return "\n".join([",".join(HEADER)] + [",".join(str(v) for v in r) for r in rows]) + "\n"


def row(epoch: int, map_: float) -> list[float]:
    return [epoch, 0.1, 0.05, 0.02, 0.5, 0.4, map_ + 0.2, map_, 0.09, 0.04, 0.01, 0.001, 0.001, 0.001, 5.0, 30.0]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    write(sweep / "0", summary(seed=0, map=0.30, map_large=None), plain_csv([row(0, 0.1), row(1, 0.30)]),
          overrides=["model/backbone=cspdarknet_s", "train.seed=0"])
    # Official YOLOv5 pads every header and cell with %20s / %20.5g.
    padded = "\n".join([",".join(f"{h:>20s}" for h in HEADER)]
                       + [",".join(f"{v:>20.5g}" for v in row(e, m)) for e, m in ((0, 0.2), (1, 0.4))]) + "\n"
    write(sweep / "backbone=convnext_tiny,seed=1", summary("convnext_tiny", 1, map=0.40), padded)
    # A run killed mid-write of its second results.csv line.
    write(sweep / "nested" / "2", summary(seed=2, map=0.35), plain_csv([row(0, 0.2)]) + "1,0.1,0.05\n")
    write(sweep / "3", '{"status": "completed", "axes": {"backbone": "conv', overrides=["train.seed=3"])  # truncated
    write(sweep / "4", None, overrides=["model/backbone=convnext_tiny", "schedule=cosine", "train.seed=4",
                                        "train.hyp.lr0=0.001"])
    failed = summary("convnext_tiny", 5, status="failed")
    failed["error"] = "ValueError: bad anchors\nTraceback ..."
    write(sweep / "5", failed)
    write(sweep / "6", summary(seed=6, status="weird"))
    write(sweep / "7", {"status": "completed", "axes": {"backbone": "cspdarknet_s", "seed": 7}})  # no metrics/model
    write(sweep / "8", summary(seed=8, map=-1, map_small="n/a"))
    write(sweep / "9", ["not", "an", "object"])
    return sweep


def by_dir(runs, name: str):
    rows = runs.runs[runs.runs["run_dir"].str.endswith(name)]
    assert len(rows) == 1, name
    return rows.iloc[0]


def test_collect_reads_every_run_and_never_crashes(tree: Path) -> None:
    r = collect_runs(tree)
    assert len(r.runs) == 10
    status = {Path(d).name: s for d, s in zip(r.runs["run_dir"], r.runs["status"])}
    assert status == {"0": "completed", "backbone=convnext_tiny,seed=1": "completed", "2": "completed",
                      "3": "invalid", "4": "missing", "5": "failed", "6": "invalid", "7": "completed",
                      "8": "completed", "9": "invalid"}
    problem_text = "\n".join(f"{p}: {m}" for p, m in r.problems)
    assert "3/summary.json: unreadable summary.json" in problem_text
    assert "9/summary.json: summary.json holds a list" in problem_text
    assert "unknown status 'weird'" in problem_text
    assert "completed run without metrics" in problem_text
    assert "line 3: 3 fields, header has 16; row dropped" in problem_text
    assert "metric map=-1 is negative" in problem_text
    assert "metric map_small='n/a' is not a number" in problem_text
    # The axes appear in order of first appearance; the seed is one of them.
    assert r.axes[:5] == ["backbone", "neck_init", "schedule", "optimizer", "seed"]


def test_values_and_nan(tree: Path) -> None:
    r = collect_runs(tree)
    a = by_dir(r, "/0")
    assert a["map"] == pytest.approx(0.30) and math.isnan(a["map_large"])  # null stays NaN
    assert a["params"] == 7235389 and a["gflops"] == 16.5 and a["model_name"] == "yolov5s"
    assert a["backbone_params"] == 4212480 and a["device"] == "cpu" and a["git_rev"] == "abc1234"
    assert a["epochs_completed"] == 2 and a["train_images_per_s"] == 30.0 and a["version_python"] == "3.11.7"
    assert a["backbone"] == "cspdarknet_s" and a["lr0"] == 0.002 and a["seed"] == 0
    assert by_dir(r, "5")["error"].startswith("ValueError: bad anchors")
    assert math.isnan(by_dir(r, "8")["map"]) and math.isnan(by_dir(r, "8")["map_small"])
    assert by_dir(r, "8")["map50"] == pytest.approx(0.1)
    seven = by_dir(r, "7")
    assert all(math.isnan(seven[m]) for m in METRICS) and math.isnan(seven["params"])


def test_missing_run_takes_axes_from_hydra_overrides(tree: Path) -> None:
    m = by_dir(collect_runs(tree), "4")
    assert m["status"] == "missing"
    assert (m["backbone"], m["schedule"], m["seed"], m["lr0"]) == ("convnext_tiny", "cosine", 4, 0.001)


def test_epochs_tidy_and_stripped(tree: Path) -> None:
    r = collect_runs(tree)
    ep = r.epochs
    assert {"run_dir", "status", "backbone", "seed", "epoch", "metrics/mAP_0.5:0.95", "x/lr2"} <= set(ep.columns)
    padded = ep[ep["run_dir"].str.endswith("seed=1")].sort_values("epoch")
    assert list(padded["epoch"]) == [0, 1]
    assert list(padded["metrics/mAP_0.5:0.95"]) == pytest.approx([0.2, 0.4])
    assert list(padded["metrics/mAP_0.5"]) == pytest.approx([0.4, 0.6])
    assert set(padded["backbone"]) == {"convnext_tiny"}
    truncated = ep[ep["run_dir"].str.endswith("nested/2")]
    assert list(truncated["epoch"]) == [0]  # the half-written line is dropped, not NaN-padded
    assert len(ep) == 2 + 2 + 1


def test_overlapping_roots_and_missing_root(tree: Path, tmp_path: Path) -> None:
    r = collect_runs(tree, tree / "nested", tmp_path / "nope")
    assert len(r.runs) == 10  # nested/2 is listed once
    assert (str(tmp_path / "nope"), "not a directory") in r.problems
    empty = collect_runs(tmp_path / "nope")
    assert empty.runs.empty and empty.epochs.empty
    assert {"run_dir", "status", "error", "map"} <= set(empty.runs.columns)


def test_results_csv_edge_cases(tmp_path: Path) -> None:
    p = tmp_path / "results.csv"
    p.write_text("")
    frame, probs = read_results_csv(p)
    assert frame is None and probs == [(str(p), "empty results.csv")]
    p.write_text(" epoch , a , a \n 0 , 1.5 , x \n")
    frame, probs = read_results_csv(p)
    assert list(frame.columns) == ["epoch", "a", "a#1"]
    assert frame.loc[0, "a"] == 1.5 and math.isnan(frame.loc[0, "a#1"])
    assert any("duplicate column" in m for _, m in probs)
    frame, probs = read_results_csv(tmp_path / "none.csv", required=True)
    assert frame is None and "missing results.csv" in probs[0][1]


def test_identity_is_flattened_and_its_absence_tolerated(tmp_path: Path) -> None:
    """summary["identity"]: one cfg.<dotted key> column per leaf, weights files by content;
    a missing or malformed identity is a problem noted, never a crash."""
    ident = {"digest": "0123456789abcdef",
             "config": {"model": "convnext_tiny", "init_weights": None, "layer_decay": None,
                        "model_kwargs": {"neck": "yolov5s", "pretrained": {"size": 10, "sha256": "cd" * 32}},
                        "hyp": {"lr0": 0.0002, "weight_decay": 0.05}, "data": {"digest": "feedfacefeedface", "nc": 3},
                        "synthetic": {"sizes": [8, 16]}, "ema": True, "seed": 1}}
    write(tmp_path / "new", {**summary("convnext_tiny", 1), "identity": ident})
    write(tmp_path / "old", summary())
    write(tmp_path / "bad", {**summary(seed=2), "identity": {"digest": "xyz", "config": {}}})
    write(tmp_path / "early", {**summary(seed=3, status="failed")})  # failed before the identity
    r = collect_runs(tmp_path)
    new = by_dir(r, "new")
    assert new["identity_digest"] == "0123456789abcdef"
    assert new["cfg.model_kwargs.pretrained"] == "sha256:cdcdcdcdcdcd"
    assert new["cfg.model_kwargs.neck"] == "yolov5s" and new["cfg.init_weights"] == "null"
    assert new["cfg.hyp.weight_decay"] == 0.05 and new["cfg.data.digest"] == "feedfacefeedface"
    assert new["cfg.synthetic.sizes"] == "[8, 16]" and new["cfg.ema"] is True and new["cfg.seed"] == 1
    old = by_dir(r, "old")
    assert math.isnan(old["identity_digest"]) and math.isnan(old["cfg.hyp.lr0"])
    problems = [(Path(p).parent.name, m.split(" (")[0]) for p, m in r.problems if "identity" in m]
    # only a completed run is put into a row: the early failure is not a problem
    assert sorted(problems) == [("bad", "malformed 'identity'"), ("old", "no 'identity'")]
    assert math.isnan(by_dir(r, "bad")["identity_digest"])


def test_an_axis_renamed_since_is_read_under_todays_name(tmp_path: Path) -> None:
    """Older trainers wrote `batch`; it is batch_size now: one column, so an old and a new run of
    one config are not split into two rows by the rename."""
    old = summary(seed=0)
    old["axes"]["batch"] = old["axes"].pop("batch_size")
    write(tmp_path / "old", old)
    write(tmp_path / "new", summary(seed=1))
    r = collect_runs(tmp_path)
    assert "batch" not in r.axes and "batch" not in r.runs.columns
    assert list(r.runs.sort_values("seed")["batch_size"]) == [8, 8]


def test_file_locations_in_overrides_are_not_axes(tmp_path: Path) -> None:
    """A run that died before its summary is labelled from .hydra/overrides.yaml: paths.* (file
    locations, identified by content once a run starts) and hydra.* are not axes of the study."""
    from experiments.launchers.runs import axes_from_overrides

    ov = ["model/backbone=convnext_tiny", "train.seed=2", "paths.yolov5s_weights=/w/yolov5s.pt",
          "hydra.launcher.timeout_min=5"]
    write(tmp_path / "died", None, overrides=ov)
    r = collect_runs(tmp_path)
    assert {"yolov5s_weights", "timeout_min"}.isdisjoint(r.axes) and {"backbone", "seed"} <= set(r.axes)
    assert axes_from_overrides(ov) == {"backbone": "convnext_tiny", "seed": 2}
