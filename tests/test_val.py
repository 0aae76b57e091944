"""Evaluating a weights file (yolo_core.eval.val, python -m experiments.val): the run's own
weights reproduce its summary.json, an official YOLOv5 checkpoint evaluates, and weights of
other classes or missing files are refused before anything is evaluated."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_core.data import ensure_synthetic_dataset
from yolo_core.eval.val import ValConfig, val
from yolo_core.train.config import ConfigError, TrainConfig
from yolo_core.train.trainer import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "tests" / "reference" / "yolov5n_seed0_official_format.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 2-epoch run on a tiny embedded set (val batch 2 x 3 = 6: rect batches of 6)."""
    root = tmp_path_factory.mktemp("val")
    data = ensure_synthetic_dataset(root / "set", n_train=12, n_val=7)
    run = root / "run"
    summary = train(TrainConfig(out_dir=str(run), data=str(data), epochs=2, imgsz=64, batch_size=3, workers=0,
                                warmup_min_iters=2))
    assert summary["status"] == "completed"
    return run


def test_the_runs_best_pt_gives_the_metrics_of_its_summary(trained: Path, tmp_path: Path) -> None:
    summary = json.loads((trained / "summary.json").read_text())
    result = val(ValConfig(weights=str(trained / "checkpoints" / "best.pt"), out_dir=str(tmp_path), workers=0,
                           verbose=False))
    assert {k: result.metrics[k] for k in summary["metrics"]} == summary["metrics"]
    assert result.metrics["map50_yolo"] == summary["final_eval"]["map50_yolo"]
    assert result.metrics["map_yolo"] == summary["final_eval"]["map_yolo"]
    assert json.loads((tmp_path / "predictions.json").read_text()) == \
        json.loads((trained / "predictions.json").read_text())
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["metrics"] == result.metrics
    assert written["settings"]["batch_size"] == 6 and written["settings"]["imgsz"] == 64  # the run's, not 32/640
    assert set(written["settings_from_run"]) >= {"data", "imgsz", "batch_size", "iou_thres", "conf_thres"}
    assert written["weights"]["source"] == "project" and written["data"]["images"] == 7
    assert any("COCO" in d for d in written["metric_definitions"].values())
    rows = list(csv.DictReader((tmp_path / "per_class.csv").open()))
    assert rows[0]["class"] == "all" and int(rows[0]["images"]) == 7
    assert float(rows[0]["map_yolo"]) == pytest.approx(summary["final_eval"]["map_yolo"], rel=1e-5)
    names = [r["class"] for r in rows[1:]]
    assert names and set(names) <= {"circle", "square", "triangle"}
    assert sum(int(r["instances"]) for r in rows[1:]) == int(rows[0]["instances"])


def test_a_setting_given_wins_over_the_runs(trained: Path, tmp_path: Path) -> None:
    result = val(ValConfig(weights=str(trained / "checkpoints" / "last.pt"), out_dir=str(tmp_path), workers=0,
                           imgsz=96, batch_size=2, iou_thres=0.5, verbose=False))
    assert (result.settings["imgsz"], result.settings["batch_size"], result.settings["iou_thres"]) == (96, 2, 0.5)
    assert not {"imgsz", "batch_size", "iou_thres"} & set(result.from_run)
    assert "data" in result.from_run


def _eighty_class_set(root: Path) -> Path:
    """Three 96x128 images in YOLO layout whose dataset names are the official checkpoint's ('0'..'79')."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), rng.integers(0, 255, (96, 128, 3), np.uint8))
            (root / "labels" / split / f"{i}.txt").write_text(f"{i * 30} 0.5 0.5 0.3 0.4\n79 0.2 0.3 0.1 0.1\n")
    names = ", ".join(f"'{i}'" for i in range(80))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [{names}]\n")
    return root / "data.yaml"


def test_an_official_checkpoint_evaluates_with_its_own_classes(tmp_path: Path) -> None:
    data = _eighty_class_set(tmp_path / "set")
    result = val(ValConfig(weights=str(OFFICIAL), data=str(data), out_dir=str(tmp_path / "out"), imgsz=128, conf_thres=0.0,
                           workers=0, verbose=False))
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["weights"]["source"] == "official" and written["weights"]["model"] == "yolov5n"
    assert written["settings_from_run"] == [] and written["settings"]["batch_size"] == 32  # val.py's defaults
    assert set(result.metrics) >= {"map", "map50", "map50_yolo", "map_yolo", "precision", "recall"}
    assert [r["class"] for r in result.per_class] == ["all", "0", "30", "60", "79"]
    assert result.per_class[-1]["instances"] == 3 and result.per_class[-1]["images"] == 3
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert predictions and {"image_id", "category_id", "bbox", "score"} == set(predictions[0])


def test_weights_of_other_classes_are_refused(tmp_path: Path) -> None:
    data = ensure_synthetic_dataset(tmp_path / "set", n_train=4, n_val=2)
    with pytest.raises(ConfigError, match=r"80 classes that are not this dataset's 3 .*class 0 \(model '0', "
                                          r"dataset 'circle'\)"):
        val(ValConfig(weights=str(OFFICIAL), data=str(data), out_dir=str(tmp_path / "out"), workers=0))
    assert not (tmp_path / "out").exists()


def test_a_run_whose_dataset_is_gone_asks_for_one(trained: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "moved"
    shutil.copytree(trained, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["data_source"] = str(tmp_path / "deleted" / "data.yaml")
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ConfigError, match=r"the dataset of the run .* is not there any more: give data="):
        val(ValConfig(weights=str(run / "checkpoints" / "best.pt"), out_dir=str(tmp_path / "out")))


def test_a_file_that_is_no_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    import torch

    from yolo_core.models.checkpoint import CheckpointError

    data = ensure_synthetic_dataset(tmp_path / "set", n_train=2, n_val=2)
    bare = tmp_path / "state_dict.pt"
    torch.save({"w": torch.zeros(2)}, bare)  # weights without the model's name and classes
    with pytest.raises(CheckpointError, match="state_dict.pt: neither a checkpoint of this project"):
        val(ValConfig(weights=str(bare), data=str(data), out_dir=str(tmp_path / "out"), workers=0))


def test_weights_outside_a_run_need_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data is not set"):
        val(ValConfig(weights=str(OFFICIAL), out_dir=str(tmp_path / "out")))


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "YOLO_CORE_DATA": str(tmp_path / "d")}
    return subprocess.run([sys.executable, "-m", "experiments.val", f"hydra.run.dir={tmp_path / 'out'}", "workers=0",
                           *overrides], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_command_evaluates_and_says_where(trained: Path, tmp_path: Path) -> None:
    proc = _cli(tmp_path, f"weights={trained / 'checkpoints' / 'best.pt'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Results saved to {tmp_path / 'out'}" in proc.stdout and "mAP50-95" in proc.stdout
    summary = json.loads((trained / "summary.json").read_text())
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]["map"] == summary["metrics"]["map"]


@pytest.mark.parametrize("overrides, says", [
    (["weights=/nonexistent/best.pt"], "weights='/nonexistent/best.pt': no such file"),
    ([f"weights={OFFICIAL}", "data=synthetic"], "80 classes that are not this dataset's 3"),
    ([f"weights={OFFICIAL}", "data=synthetic", "imgsz=100"], "imgsz=100 must be a positive multiple of 32"),
    (["data=synthetic"], "weights"),  # mandatory
    ([f"weights={REPO / 'README.md'}", "data=synthetic"], "neither a checkpoint of this project"),
])
def test_the_command_refuses_with_exit_2(tmp_path: Path, overrides: list[str], says: str) -> None:
    proc = _cli(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.fixture(scope="module")
def official_synth() -> dict:
    return json.loads((REPO / "tests" / "reference" / "official_val_synth.json").read_text())


@pytest.mark.parametrize("setting", ["imgsz96_bs32_iou0.6", "imgsz128_bs8_iou0.65"])
def test_an_official_checkpoint_scores_what_official_val_py_printed(tmp_path_factory, official_synth, setting,
                                                                    embedded_set_256) -> None:
    """The official v7.0 val.py's own numbers (tests/reference/README.md) for an official best.pt
    that learned something (mAP50-95 ~0.1): equal to its unfused run to float64 rounding."""
    ref = official_synth["settings"][f"{setting}_unfused"]
    fused = official_synth["settings"][f"{setting}_fused"]
    data = embedded_set_256
    out = tmp_path_factory.mktemp("official_val")
    result = val(ValConfig(weights=str(REPO / "tests" / "reference" / "yolov5n_official_synth_best.pt"),
                           data=str(data), imgsz=ref["imgsz"], batch_size=ref["batch_size"],
                           iou_thres=ref["iou_thres"], out_dir=str(out), workers=0, verbose=False))
    m = result.metrics
    ours = (m["precision"], m["recall"], m["map50_yolo"], m["map_yolo"])
    assert ours == pytest.approx((ref["mp"], ref["mr"], ref["map50"], ref["map"]), abs=1e-7)
    assert ours == pytest.approx((fused["mp"], fused["mr"], fused["map50"], fused["map"]), abs=1e-5)
    per_class = [r["map_yolo"] for r in result.per_class[1:]]
    assert per_class == pytest.approx(ref["maps"], abs=1e-7)
