"""report.py groups by the run's identity (summary.json "identity"), not by a fixed list of axes.

Hand-made run directories (tests/test_report.py's write_run) to which an identity is added
as the trainer writes it: {"digest": 16 hex, "config": the resolved config}. Each test
failed before the report read the identity: runs differing in a setting outside the axes
were merged into one row with their spread shown as seed noise.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.report import build_report
from test_report import write_run

WEIGHTS = {"size": 114_000_000, "sha256": "ab" * 32}  # a ConvNeXt weights file, by content
BASE_CONFIG: dict[str, Any] = {
    "model": "yolov5s", "model_kwargs": {}, "init_weights": None, "init_scope": "all",
    "data": {"digest": "0123456789abcdef", "nc": 3}, "synthetic": {"n_train": 256, "n_val": 64},
    "imgsz": 96, "batch_size": 8, "cache": None, "epochs": 3, "optimizer": "adamw", "schedule": "linear",
    "hyp": {"lr0": 0.002, "lrf": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "warmup_epochs": 3.0},
    "label_smoothing": 0.0, "nbs": 64, "warmup_min_iters": 100, "backbone_lr_mult": 1.0, "layer_decay": None,
    "freeze_backbone_epochs": 0, "clip_grad": 10.0, "ema": True, "patience": 100, "noautoanchor": False,
    "round_init_fp16": True, "device": "cpu", "amp": False, "amp_dtype": "float16", "channels_last": False,
    "compile": False, "seed": 0, "deterministic": True, "conf_thres": 0.001, "iou_thres": 0.6,
    "final_iou_thres": None, "max_det": 300, "val_batch_size": None, "coco_backend": "pycocotools",
    "world_size": 1,
}
CONVNEXT = {"model": "convnext_tiny", "init_scope": "neck_head",
            "model_kwargs": {"neck": "yolov5s", "pretrained": None, "drop_path_rate": 0.1}}


def identity_config(backbone: str, seed: int, **dotted: Any) -> dict[str, Any]:
    """The config the trainer would write; dotted overrides: hyp__weight_decay=0.05."""
    cfg = copy.deepcopy(BASE_CONFIG)
    if backbone == "convnext_tiny":
        cfg.update(copy.deepcopy(CONVNEXT))
    cfg["seed"] = seed
    for key, value in dotted.items():
        *path, leaf = key.split("__")
        node = cfg
        for p in path:
            node = node[p]
        node[leaf] = value
    return cfg


def run(root: Path, name: str, backbone: str, seed: int = 0, *, m: float = 0.3, git_rev: str = "abc1234",
        schedule: str = "linear", identity: bool = True, axes: dict[str, Any] | None = None,
        **dotted: Any) -> Path:
    """write_run's directory with the identity (and git_rev) added to its summary.json;
    axes: axis labels to write where the trainer would (epochs, lr0, ...)."""
    d = write_run(root / name, backbone, seed, m=m, schedule=schedule, **(axes or {}))
    summary = json.loads((d / "summary.json").read_text())
    summary["git_rev"] = git_rev
    if identity:
        cfg = identity_config(backbone, seed, schedule=schedule, **dotted)
        digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
        summary["identity"] = {"digest": digest, "config": cfg}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def section(md: str, title: str) -> str:
    return md.split(f"## {title}")[1].split("\n## ")[0]


def table_lines(md: str) -> list[str]:
    return [ln for ln in section(md, "All configurations").splitlines() if ln.startswith("| ")]


def test_weight_decay_sweep_is_two_rows_not_seed_noise(tmp_path: Path) -> None:
    """train.hyp.weight_decay=0.0005,0.05 is not an axis; the runs' axes are identical."""
    run(tmp_path / "s", "0", "cspdarknet_s", m=0.30, hyp__weight_decay=0.0005)
    run(tmp_path / "s", "1", "cspdarknet_s", m=0.20, hyp__weight_decay=0.05)
    rep = build_report([tmp_path / "s"], tmp_path / "out")
    t = rep.summary
    assert len(t) == 2 and list(t["n"]) == [1, 1]
    assert sorted(t["cfg.hyp.weight_decay"]) == [0.0005, 0.05]
    by_wd = dict(zip(t["cfg.hyp.weight_decay"], t["map_mean"]))
    assert by_wd == {0.0005: 0.30, 0.05: 0.20}
    header, *_ = table_lines(rep.markdown)
    assert "| hyp.weight_decay | n |" in header
    assert "no identity" not in rep.markdown


def test_random_and_file_pretrained_convnext_are_two_rows(tmp_path: Path) -> None:
    """The study's central variable: the same backbone axis, weights from a file or none."""
    root = tmp_path / "s"
    run(root, "b", "cspdarknet_s", m=0.30)
    run(root, "r", "convnext_tiny", m=0.25)
    run(root, "p", "convnext_tiny", m=0.35, model_kwargs__pretrained=WEIGHTS)
    rep = build_report([root], tmp_path / "out")
    t = rep.summary
    cnx = t[t["backbone"] == "convnext_tiny"]
    assert len(cnx) == 2 and list(cnx["n"]) == [1, 1]
    deltas = dict(zip(cnx["cfg.model_kwargs.pretrained"], cnx["delta_map"].round(3)))
    assert deltas == {"null": -0.05, "sha256:abababababab": 0.05}  # both paired with the one baseline row
    fair = section(rep.markdown, "Fairness")
    assert "model_kwargs.pretrained: (absent) vs sha256:abababababab" in fair
    assert "model_kwargs.pretrained: (absent) vs null" in fair
    assert "model: yolov5s vs convnext_tiny" in fair and "init_scope: all vs neck_head" in fair
    assert "share everything but the backbone" not in fair
    assert all(p.strict for p in rep.pairs)


def test_seeds_of_one_config_are_one_row(tmp_path: Path) -> None:
    """seed is the replicate key: seeds 0 and 1 average; the other weight decay stays apart."""
    root = tmp_path / "s"
    run(root, "0", "cspdarknet_s", 0, m=0.30)
    run(root, "1", "cspdarknet_s", 1, m=0.32)
    run(root, "2", "cspdarknet_s", 0, m=0.90, hyp__weight_decay=0.05)
    t = build_report([root], tmp_path / "out").summary
    assert len(t) == 2
    row = t[t["cfg.hyp.weight_decay"] == 0.0005].iloc[0]
    assert (row["n"], row["seeds"], round(row["map_mean"], 3), round(row["map_std"], 4)) == (2, "0 1", 0.31, 0.0141)
    assert t[t["cfg.hyp.weight_decay"] == 0.05].iloc[0]["map_mean"] == 0.90


def test_differing_git_rev_is_named(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "b", "cspdarknet_s", git_rev="abc1234")
    run(root, "c", "convnext_tiny", git_rev="def5678")
    fair = section(build_report([root], tmp_path / "out").markdown, "Fairness")
    assert "git_rev (code revision): abc1234 vs def5678" in fair
    note = next(ln for ln in fair.splitlines() if "Code revision (git_rev) differs among the rows" in ln)
    assert "abc1234: cspdarknet_s" in note and "def5678: convnext_tiny" in note


def test_runs_without_identity_fall_back_with_a_note(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "b", "cspdarknet_s", m=0.30, identity=False)
    run(root, "c", "convnext_tiny", m=0.35, identity=False)
    rep = build_report([root], tmp_path / "o1")
    assert "**Note:** 2 of 2 completed run(s) have no identity" in rep.markdown
    assert len(rep.summary) == 2 and rep.headline is not None and rep.headline.strict
    assert "as far as the axes show (no identity recorded" in section(rep.markdown, "Fairness")
    assert "no 'identity'" in section(rep.markdown, "Problems reading runs")
    # A new run of the same axes is never merged with an old one: nobody knows they match.
    run(root, "n", "cspdarknet_s", 1, m=0.50)
    rep = build_report([root], tmp_path / "o2")
    assert "**Note:** 2 of 3 completed run(s) have no identity" in rep.markdown
    t = rep.summary
    assert len(t) == 3 and list(t["n"]) == [1, 1, 1]
    assert sorted(t["identity"]) == ["none", "none", "recorded"]


def test_delta_pairs_the_matching_baseline_row(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "b1", "cspdarknet_s", m=0.30, hyp__weight_decay=0.0005)
    run(root, "b2", "cspdarknet_s", m=0.20, hyp__weight_decay=0.05)
    run(root, "c", "convnext_tiny", m=0.25, hyp__weight_decay=0.05)
    rep = build_report([root], tmp_path / "out")
    (pair,) = rep.pairs
    assert pair.strict and pair.baseline.settings["hyp.weight_decay"] == 0.05
    cnx = rep.summary[rep.summary["backbone"] == "convnext_tiny"].iloc[0]
    assert round(cnx["delta_map"], 3) == 0.05


def test_unmatched_pairing_names_the_blocking_keys(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "b", "cspdarknet_s", m=0.30)
    run(root, "c", "convnext_tiny", m=0.25, epochs=5, hyp__lr0=0.0002, axes={"epochs": 5, "lr0": 0.0002})
    rep = build_report([root], tmp_path / "out")
    (pair,) = rep.pairs
    assert not pair.strict and pair.blocking == ["epochs", "hyp.lr0"]
    md = rep.markdown
    assert "(epochs, hyp.lr0 prevent the pairing)" in section(md, "Fairness")
    assert "**Warning: not like-for-like**" in md and "epochs: 3 vs 5" in md
    row = next(ln for ln in table_lines(md) if ln.startswith("| convnext_tiny |"))
    assert "| – | – |" in row  # no delta against a row that does not match


def test_repeated_identity_is_not_seed_noise(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "0", "cspdarknet_s", 0, m=0.30)
    run(root, "0-again", "cspdarknet_s", 0, m=0.31)
    rep = build_report([root], tmp_path / "out")
    assert list(rep.summary["n"]) == [2]
    assert "2 runs have the same identity" in section(rep.markdown, "What this sample can show")


def test_runs_csv_has_identity_columns(tmp_path: Path) -> None:
    root = tmp_path / "s"
    run(root, "p", "convnext_tiny", model_kwargs__pretrained=WEIGHTS)
    rep = build_report([root], tmp_path / "out")
    runs = pd.read_csv(rep.files["runs.csv"])
    assert runs.loc[0, "cfg.model_kwargs.pretrained"] == "sha256:abababababab"
    assert runs.loc[0, "cfg.hyp.weight_decay"] == 0.0005 and len(runs.loc[0, "identity_digest"]) == 16
    cfg_cols = [c for c in runs.columns if c.startswith("cfg.")]
    assert list(runs.columns[-len(cfg_cols):]) == cfg_cols  # after the columns runs.csv always had
