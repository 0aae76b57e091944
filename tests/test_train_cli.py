"""`make train` (python -m experiments.train) with a tiny setting writes the run directory of DESIGN.md."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_train_entry_point_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "YOLO_CORE_DATA": str(tmp_path / "data"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"hydra.run.dir={run}", "train.epochs=2",
                           "train.imgsz=96", "train.workers=0", "train.synthetic.n_train=16", "train.synthetic.n_val=8"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "results.csv", "summary.json", "train.log",
                 "checkpoints/last.pt", "checkpoints/best.pt", "predictions.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["axes"]["backbone"] == "cspdarknet_s" and summary["axes"]["imgsz"] == 96
    assert summary["axes"]["optimizer"] == "adamw"  # the embedded set's own default
    assert len(json.loads((run / "predictions.json").read_text())) > 0
    assert len((run / "results.csv").read_text().strip().splitlines()) == 3
