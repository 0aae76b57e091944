"""Optuna tuning end to end on a real SQLite storage: trials are run directories, a killed search resumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest


pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_tune(tune_dir: Path, data_root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "YOLO_CORE_DATA": str(data_root), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "experiments.tune", f"hydra.run.dir={tune_dir}", "train.epochs=2",
            "train.imgsz=64", "train.batch=4", "train.workers=0", "data.synthetic.n_train=12",
            "data.synthetic.n_val=6", "schedule.warmup_min_iters=2", "tune.warmup_epochs=1", *extra]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_tune_runs_trials_into_run_directories_and_resumes(tmp_path):
    data_root = tmp_path / "data"
    tune_dir = tmp_path / "tune"
    proc = run_tune(tune_dir, data_root, "tune.n_trials=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="lr-cspdarknet_s", storage=f"sqlite:///{tune_dir / 'optuna.db'}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 2
    lrs = []
    for t in finished:
        summary = json.loads((tune_dir / f"trial_{t.number}" / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert summary["axes"]["lr0"] == pytest.approx(t.params["lr0"])  # the sampled lr reached the run
        assert 3e-4 <= t.params["lr0"] <= 1e-2
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(summary["metrics"]["map"])
        lrs.append(t.params["lr0"])
    assert len(set(lrs)) == 2
    assert (tune_dir / "best_params.yaml").read_text().count("lr0") == 1

    # the same command with more trials continues the study instead of starting over
    proc = run_tune(tune_dir, data_root, "tune.n_trials=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="lr-cspdarknet_s", storage=f"sqlite:///{tune_dir / 'optuna.db'}")
    assert len([t for t in study.trials if t.state.is_finished()]) == 3
    assert sorted(p.name for p in tune_dir.glob("trial_*")) == ["trial_0", "trial_1", "trial_2"]


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_search_resumes_the_interrupted_trial_in_its_run_directory(tmp_path, sig):
    """SIGKILL: the trial stays RUNNING in the storage; SIGTERM: the run records `preempted`
    and Optuna fails the trial. Either way a re-run continues trial_0 with the same lr."""
    import signal

    import torch
    data_root = tmp_path / "data"
    tune_dir = tmp_path / "tune"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "YOLO_CORE_DATA": str(data_root), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "experiments.tune", f"hydra.run.dir={tune_dir}", "train.epochs=3",
            "train.imgsz=64", "train.batch=4", "train.workers=0", "data.synthetic.n_train=12",
            "data.synthetic.n_val=6", "schedule.warmup_min_iters=2", "tune.n_trials=1", "tune.pruner=none"]
    # The search gets the signal right after trial_0's first last.pt (log_epoch follows it): sent
    # by the process to itself, so the point does not depend on how fast a poller would notice
    # the file (under load the short trial could finish first). raise_signal: handled at once.
    wrapper = ("import runpy, signal, sys\nfrom yolo_core.loggers import CompositeLogger\n"
               "real = CompositeLogger.log_epoch\n"
               "def log_epoch(self, epoch, row):\n"
               "    real(self, epoch, row)\n"
               "    if epoch == 0:\n"
               f"        signal.raise_signal(signal.{sig})\n"
               "CompositeLogger.log_epoch = log_epoch\n"
               "sys.argv = ['experiments.tune', *sys.argv[1:]]\n"
               "runpy.run_module('experiments.tune', run_name='__main__', alter_sys=True)\n")
    first = subprocess.run([sys.executable, "-c", wrapper, *args[3:]], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=600)
    if sig == "SIGKILL":
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    last = tune_dir / "trial_0" / "checkpoints" / "last.pt"
    assert last.exists(), first.stderr[-3000:]
    assert torch.load(last, weights_only=True)["epoch"] == 0
    status = json.loads((tune_dir / "trial_0" / "summary.json").read_text())["status"]
    assert status == ("running" if sig == "SIGKILL" else "preempted")
    first_log = (tune_dir / "trial_0" / "train.log").read_text()
    assert "resumed from" not in first_log

    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="lr-cspdarknet_s", storage=f"sqlite:///{tune_dir / 'optuna.db'}")
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "FAIL"]
    complete = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert complete.params == failed.params and complete.user_attrs["run_number"] == 0
    assert "resumed from" in (tune_dir / "trial_0" / "train.log").read_text()
    assert json.loads((tune_dir / "trial_0" / "summary.json").read_text())["status"] == "completed"
    assert not (tune_dir / "trial_1").exists()
