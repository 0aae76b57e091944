"""Exit statuses of the entry points (experiments/exits.py): 2 invalid config with nothing written,
1 a failed run, 130 a stopped run (one line, no traceback); make prints the command's own status."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["train.workers=0", "train.synthetic.n_train=16", "train.synthetic.n_val=8", "train.imgsz=64", "train.batch_size=4"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "YOLO_CORE_DATA": str(tmp_path / "data")}


def _train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "experiments.train", f"hydra.run.dir={tmp_path / 'run'}",
                           *overrides], cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("overrides, says", [
    (["train.imgsz=100"], "imgsz=100 must be a positive multiple of 32"),
    (["train.hyp.lr0=nan"], "hyp.lr0=nan must be a number in (0, inf)"),
    (["train.imgsz=abc"], "train.imgsz"),                                 # does not compose (a str for an int)
    (["train.data=/nonexistent/data.yaml"], "data='/nonexistent/data.yaml': no such dataset yaml"),
    (["model/neck_init=yolov5s", "paths.yolov5s_weights=/nonexistent/yolov5s.pt"],
     "init_weights='/nonexistent/yolov5s.pt': no such weights file"),
])
def test_an_invalid_config_exits_2_before_anything_is_written(tmp_path: Path, overrides: list[str], says: str) -> None:
    proc = _train(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_a_failed_run_exits_1_and_its_summary_says_why(tmp_path: Path) -> None:
    data = tmp_path / "broken.yaml"
    data.write_text(f"path: {tmp_path / 'nowhere'}\ntrain: images/train\nval: images/val\nnames: [a]\n")
    proc = _train(tmp_path, f"train.data={data}", *TINY)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_exits_130_with_one_line_and_resumes(tmp_path: Path, sig: signal.Signals) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.train", f"hydra.run.dir={run}", "train.epochs=30", *TINY]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    results = run / "results.csv"
    deadline = time.monotonic() + 400  # a generous bound on start-up, not a timing assertion
    while not (results.is_file() and len(results.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "run the same command again to resume" in err, err[-3000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "preempted"


def test_make_prints_the_commands_own_status(tmp_path: Path) -> None:
    """GNU make exits 2 for any failed recipe; the command's own status is printed."""
    proc = subprocess.run(["make", "--no-print-directory", "train", f"ARGS=hydra.run.dir={tmp_path / 'run'} "
                           "train.imgsz=100"], cwd=REPO, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert "make: experiments.train exited with status 2" in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("override, says", [("tune.metric=nope", "tune.metric='nope' is not a summary.json metric"),
                                            ("tune.lr0.low=0.1", "tune.lr0: low=0.1 high=0.01")])
def test_an_invalid_search_exits_2_before_a_trial_trains(tmp_path: Path, override: str, says: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments.tune", f"hydra.run.dir={tmp_path / 'tune'}", override],
                          cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr[-3000:]
    assert not list((tmp_path / "tune").glob("trial_*"))
