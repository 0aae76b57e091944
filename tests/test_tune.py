"""Optuna tuning end to end on a real SQLite storage: trials are run directories, a killed search
resumes, and several workers on one study leave each other's live trials alone."""
from __future__ import annotations

import datetime
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf


pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_tune(tune_dir: Path, data_root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "YOLO_CORE_DATA": str(data_root), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "experiments.tune", f"hydra.run.dir={tune_dir}", "train.epochs=2",
            "train.imgsz=64", "train.batch_size=4", "train.workers=0", "train.synthetic.n_train=12",
            "train.synthetic.n_val=6", "train.warmup_min_iters=2", "tune.warmup_epochs=1", *extra]
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
            "train.imgsz=64", "train.batch_size=4", "train.workers=0", "train.synthetic.n_train=12",
            "train.synthetic.n_val=6", "train.warmup_min_iters=2", "tune.n_trials=1", "tune.pruner=none",
            # the re-run below starts at once: it watches trial_0's heartbeat for the grace period
            # (seconds here, minutes by default) before it fails and retries it
            "tune.heartbeat_interval=1", "tune.grace_period=2"]
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
    assert first.returncode == (-signal.SIGKILL if sig == "SIGKILL" else 130), first.stderr[-3000:]
    if sig == "SIGTERM":  # experiments/exits.py's last line (Optuna itself logs the failed trial's traceback)
        assert "run the same command again to resume" in first.stderr.splitlines()[-1], first.stderr[-3000:]
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


# ---------------------------------------------------------------------- several workers, one study
STUDY = "lr-cspdarknet_s"


def tune_conf(**kw):
    from experiments.schema import TuneConf

    return OmegaConf.structured(TuneConf(**kw))


def running_trial(study: optuna.Study, lr0: float) -> optuna.Trial:
    """A trial as a worker's run_trial starts it (conf/tune.yaml's lr0 range, run_number recorded)."""
    study.enqueue_trial({"lr0": lr0})
    trial = study.ask()
    trial.suggest_float("lr0", 3e-4, 1e-2, log=True)
    trial.set_user_attr("run_number", trial.number)
    return trial


def age_heartbeat(db: Path, trial_id: int, hours: float = 1.0) -> None:
    """Move a trial's last heartbeat `hours` into the past: its worker died that long ago."""
    with sqlite3.connect(db) as con:
        (beat,) = con.execute("SELECT heartbeat FROM trial_heartbeats WHERE trial_id=?", (trial_id,)).fetchone()
        old = datetime.datetime.fromisoformat(beat) - datetime.timedelta(hours=hours)
        con.execute("UPDATE trial_heartbeats SET heartbeat=? WHERE trial_id=?", (str(old), trial_id))


class Beating:
    """Worker 1's heartbeat thread for one trial (as Optuna's own records it), until the block ends."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, every_s: float = 0.3):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, args=(storage, trial_id, every_s), daemon=True)

    def _beat(self, storage, trial_id, every_s):
        while True:
            storage.record_heartbeat(trial_id)
            if self.stop.wait(every_s):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# ask() outside optimize() on a heartbeat storage: Optuna warns that nobody beats for the trial (the test does)
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning")
def test_a_second_worker_fails_only_the_trial_whose_heartbeat_stopped(tmp_path):
    """Worker 2 (main(), a real process) starts on a study where worker 1 runs a trial with a live
    heartbeat, and a dead worker left another RUNNING one with a heartbeat an hour old: the live one
    stays RUNNING (worker 1 then finishes it normally), the dead one is failed and re-queued with its
    params and run number. The old start-up failed both, and worker 1 crashed on its next report."""
    from experiments.tune import make_storage

    tune_dir = tmp_path / "tune"
    tune_dir.mkdir()
    db = tune_dir / "optuna.db"
    storage = make_storage(None, tune_dir, tune_conf(heartbeat_interval=1, grace_period=2))
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"lr0": 1e-3}, value=0.5, user_attrs={"run_number": 0},
                                              distributions={"lr0": optuna.distributions.FloatDistribution(
                                                  3e-4, 1e-2, log=True)}))
    dead = running_trial(study, 2e-3)
    storage.record_heartbeat(dead._trial_id)
    age_heartbeat(db, dead._trial_id)
    live = running_trial(study, 4e-3)

    with Beating(storage, live._trial_id):
        proc = run_tune(tune_dir, tmp_path / "data", "tune.n_trials=1", "tune.heartbeat_interval=1",
                        "tune.grace_period=2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        states = {t.number: t.state for t in optuna.load_study(study_name=STUDY, storage=storage).trials}
        assert states[live.number] == optuna.trial.TrialState.RUNNING, states
    live.report(0.25, 0)                      # worker 1 goes on: no UpdateFinishedTrialError
    study.tell(live, 0.25)

    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert trials[live.number].state == optuna.trial.TrialState.COMPLETE
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert retry.params == {"lr0": 2e-3} and retry.user_attrs["run_number"] == dead.number
    assert retry.system_attrs["failed_trial"] == dead.number   # RetryHeartbeatStaleTrialCallback.retried_trial_number
    log = proc.stdout + proc.stderr
    assert "had no heartbeat" in log and "still beating" in log, log


def test_journal_storage_leaves_running_trials_unless_single_worker(tmp_path, caplog):
    """A journal storage records no heartbeat: a RUNNING trial may be another worker's, so a start
    leaves it alone (with a warning saying how to retry it); with tune.single_worker=true it is
    failed and retried under its run number, as a single search always did."""
    from experiments.tune import make_storage, recover_trials

    conf = tune_conf(storage=f"journal:{tmp_path / 'journal.log'}")
    storage = make_storage(conf.storage, tmp_path, conf)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    trial = running_trial(study, 5e-3)
    with caplog.at_level(logging.WARNING, logger="experiments.tune"):
        recover_trials(study, storage, conf)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]
    assert "tune.single_worker=true" in caplog.text

    conf.single_worker = True
    recover_trials(study, storage, conf)
    failed, retry = study.trials
    assert failed.number == trial.number and failed.state == optuna.trial.TrialState.FAIL
    assert retry.state == optuna.trial.TrialState.WAITING
    assert retry.params == {"lr0": 5e-3} and retry.user_attrs["run_number"] == trial.number


def test_heartbeat_settings_are_checked(tmp_path):
    from experiments.tune import make_storage

    with pytest.raises(ValueError, match="grace_period"):
        make_storage(None, tmp_path, tune_conf(heartbeat_interval=30, grace_period=30))


def test_n_trials_is_the_studys_total_over_all_workers(tmp_path):
    """Another worker finishes two trials while this one runs its first: with n_trials=2 this
    worker then stops after that trial instead of running the second it had planned."""
    tune_dir = tmp_path / "tune"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "YOLO_CORE_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    other_worker = (
        "import runpy, sys, optuna\nfrom yolo_core.loggers import CompositeLogger\n"
        "real, storage = CompositeLogger.log_epoch, sys.argv[-1]\n"
        "def log_epoch(self, epoch, row):\n"
        "    real(self, epoch, row)\n"
        "    study = optuna.load_study(study_name='lr-cspdarknet_s', storage=storage)\n"
        "    if len(study.trials) == 1:\n"
        "        d = {'lr0': optuna.distributions.FloatDistribution(3e-4, 1e-2, log=True)}\n"
        "        for lr in (1e-3, 2e-3):\n"
        "            study.add_trial(optuna.trial.create_trial(params={'lr0': lr}, distributions=d, value=0.1))\n"
        "CompositeLogger.log_epoch = log_epoch\n"
        "sys.argv = ['experiments.tune', *sys.argv[1:-1]]\n"
        "runpy.run_module('experiments.tune', run_name='__main__', alter_sys=True)\n")
    args = [f"hydra.run.dir={tune_dir}", "train.epochs=1", "train.imgsz=64", "train.batch_size=4", "train.workers=0",
            "train.synthetic.n_train=12", "train.synthetic.n_val=6", "train.warmup_min_iters=2",
            "tune.pruner=none", "tune.n_trials=2", f"sqlite:///{tune_dir / 'optuna.db'}"]
    proc = subprocess.run([sys.executable, "-c", other_worker, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="lr-cspdarknet_s", storage=f"sqlite:///{tune_dir / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert sorted(p.name for p in tune_dir.glob("trial_*")) == ["trial_0"]
