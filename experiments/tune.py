"""Optuna search of the learning rate(s) for one backbone.  python -m experiments.tune [overrides]

Every trial is an ordinary run in <tune dir>/trial_<n> (the run directory contract), so
analysis/report.py reads a tune directory like a sweep. The study lives in an Optuna storage
(default: SQLite in the tune dir; an RDB URL, or `journal:<path>`), so a killed search
resumes with the same command and `hydra.run.dir=<tune dir>`. Which RUNNING trials are dead
is Optuna's heartbeat (RDB storages): a trial silent for `tune.grace_period` s is failed and
retried in its own run directory, so several workers may share one study and never fail each
other's live trial. Journal storages have no heartbeat: their RUNNING trials are left alone
unless `tune.single_worker=true`. Why each rule: README "Tuning learning rates (Optuna)".
Pruning: the median pruner on YOLOv5's per-epoch fitness; a pruned run ends like an early
stop (best.pt evaluated, status completed, `stopped_early` in summary.json).
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments import exits
from experiments.adapter import to_train_config
from experiments.loggers import build_logger
from experiments.schema import register_configs
from yolo_core.loggers import CompositeLogger, RunLogger
from yolo_core.train import ConfigError, Preempted, train
from yolo_core.train.run_files import SUMMARY_METRICS

register_configs()
LOG = logging.getLogger(__name__)


class PruningLogger(RunLogger):
    """Reports each epoch's fitness to the trial and asks the pruner whether to go on."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.pruned_at: int | None = None

    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        value = 0.1 * row["metrics/mAP_0.5"] + 0.9 * row["metrics/mAP_0.5:0.95"]
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch

    def should_stop(self) -> str | None:
        return None if self.pruned_at is None else f"pruned by Optuna at epoch {self.pruned_at}"


RUNNING = optuna.trial.TrialState.RUNNING


def retry_callback(tune: DictConfig) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Optuna's retry of a dead trial: a WAITING copy (params, user attrs: run_number) that the next
    ask() takes; system attrs `failed_trial`/`retry_history` name the trial(s) it retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=tune.max_retry)


def check_tune(tune: DictConfig) -> None:
    """The search's own settings, before any trial trains (a wrong metric would show after a whole trial)."""
    problems = []
    if tune.metric not in SUMMARY_METRICS:
        problems.append(f"tune.metric={tune.metric!r} is not a summary.json metric ({', '.join(SUMMARY_METRICS)})")
    for name in ("lr0", "backbone_lr_mult"):
        r = tune[name]
        if r is not None and not (0 < r.low < r.high if r.log else r.low < r.high):
            problems.append(f"tune.{name}: low={r.low} high={r.high} must satisfy {'0 < ' if r.log else ''}low < high")
    if tune.n_trials < 1:
        problems.append(f"tune.n_trials={tune.n_trials} must be >= 1")
    if problems:
        raise ConfigError("invalid search: " + "; ".join(problems))


def make_storage(url: str | None, tune_dir: Path, tune: DictConfig) -> optuna.storages.BaseStorage:
    """The study's storage: an RDB one (sqlite by default) with heartbeats, or a journal file."""
    if url is not None and url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    interval, grace = int(tune.heartbeat_interval), int(tune.grace_period)
    if interval < 1 or grace <= interval:
        raise ConfigError(f"tune.heartbeat_interval={interval} and tune.grace_period={grace}: need an interval "
                         f">= 1 s and a longer grace period (several heartbeats), or live trials look dead")
    url = url or f"sqlite:///{tune_dir / 'optuna.db'}"
    # several workers (and their heartbeat threads) write one sqlite file: wait for its lock rather
    # than fail after sqlite's 5 s -- a heartbeat thread that dies makes its live trial look dead
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=interval,
                                          grace_period=grace, heartbeat_stale_trial_callback=retry_callback(tune))


def has_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None


def recover_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, tune: DictConfig) -> None:
    """A worker's start: fail and retry the RUNNING trials whose worker is dead, and only those.

    single_worker: all of them, now. Heartbeat storage: those whose heartbeat is older than
    grace_period (Optuna's fail_stale_trials); one still beating is watched up to grace_period
    (+2 s: sqlite's clock counts whole seconds) and left to its worker if it goes on. Journal:
    none (no heartbeat), with a warning.
    """
    running = {t.number for t in study.get_trials(deepcopy=False, states=(RUNNING,))}
    if not running:
        return
    if tune.single_worker:
        retry = retry_callback(tune)  # what the heartbeat storage would call for a stale trial
        for t in study.get_trials(deepcopy=True, states=(RUNNING,)):
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # it finished meanwhile: not a dead worker's, whatever single_worker says
            retry(study, t)
            LOG.info("trial %d was RUNNING (tune.single_worker: a dead worker's): failed, retried as run %s",
                     t.number, t.user_attrs.get("run_number", t.number))
        return
    if not has_heartbeat(storage):
        LOG.warning("trials %s are RUNNING and this storage records no heartbeat (a journal): they may be "
                    "another worker's, so they are left alone. If no other worker is on this study, re-run "
                    "with tune.single_worker=true to retry them in their run directories.", sorted(running))
        return
    deadline = time.monotonic() + tune.grace_period + 2
    waited = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # fails the stale ones; the storage's callback retries them
        left = running & {t.number for t in study.get_trials(deepcopy=False, states=(RUNNING,))}
        if not left or time.monotonic() >= deadline:
            break
        if not waited:
            LOG.info("trials %s are RUNNING with a recent heartbeat: watching them up to %d s "
                     "(tune.grace_period) to tell a live worker from one that just died", sorted(left),
                     tune.grace_period)
            waited = True
        time.sleep(1.0)
    dead = sorted(t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                  if t.number in running)
    if dead:
        LOG.info("trials %s had no heartbeat for %d s (their worker died): failed, and retried in their run "
                 "directories (tune.max_retry: %s)", dead, tune.grace_period, tune.max_retry)
    if left:
        LOG.info("trials %s are still beating: another worker's, left to it (a RUNNING trial with no "
                 "heartbeat at all, from an older version of this script, never goes stale: "
                 "tune.single_worker=true retries it)", sorted(left))


def sample(trial: optuna.Trial, tune: DictConfig) -> dict[str, float]:
    """The overrides of one trial: lr0, and the backbone lr multiplier when it is searched."""
    out = {"train.hyp.lr0": trial.suggest_float("lr0", tune.lr0.low, tune.lr0.high, log=tune.lr0.log)}
    if tune.backbone_lr_mult is not None:
        r = tune.backbone_lr_mult
        out["train.backbone_lr_mult"] = trial.suggest_float("backbone_lr_mult", r.low, r.high, log=r.log)
    return out


def run_trial(trial: optuna.Trial, cfg: DictConfig, tune_dir: Path) -> float:
    params = sample(trial, cfg.tune)
    trial_cfg = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(trial_cfg, key, value, merge=False)
    number = trial.user_attrs.get("run_number", trial.number)  # a re-queued trial resumes its run dir
    trial.set_user_attr("run_number", number)
    out_dir = tune_dir / f"trial_{number}"
    train_cfg = to_train_config(trial_cfg, out_dir=str(out_dir), run_name=f"trial_{number}")
    train_cfg.axes.update({"tune_trial": number})
    pruning = PruningLogger(trial)
    try:
        summary = train(train_cfg, logger=CompositeLogger([build_logger(trial_cfg), pruning]))
    except Preempted:  # SIGTERM/SIGUSR2: Optuna fails the trial; a re-run continues it in its run dir
        trial.study.enqueue_trial(trial.params, user_attrs={"run_number": number})
        raise
    trial.set_user_attr("run_dir", str(out_dir))
    if pruning.pruned_at is not None:
        raise optuna.TrialPruned(summary.get("stopped_early"))
    value = summary["metrics"].get(cfg.tune.metric)
    if value is None:
        raise RuntimeError(f"trial {trial.number}: metric {cfg.tune.metric!r} missing in {out_dir}/summary.json")
    return float(value)


@hydra.main(version_base="1.3", config_path="../conf", config_name="tune")
@exits.task
def main(cfg: DictConfig) -> float:
    tune = cfg.tune
    check_tune(tune)
    tune_dir = Path(HydraConfig.get().runtime.output_dir)
    storage = make_storage(tune.storage, tune_dir, tune)
    name = tune.study_name or f"lr-{HydraConfig.get().runtime.choices['model/backbone']}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=tune.warmup_epochs) \
        if tune.pruner == "median" else optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed), pruner=pruner)
    # a trial left RUNNING by a dead worker is failed and retried: its run directory resumes under the
    # same number; another worker's live trial is left alone
    recover_trials(study, storage, tune)
    done = sum(t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL for t in study.trials)
    remaining = max(tune.n_trials - done, 0)
    LOG.info("study %s in %s: %d trials done, %d to run", name, tune_dir, done, remaining)
    if remaining:
        # n_trials is the study's total: a worker stops once all workers together have finished it
        budget = optuna.study.MaxTrialsCallback(tune.n_trials, states=(optuna.trial.TrialState.COMPLETE,
                                                                        optuna.trial.TrialState.PRUNED))
        study.optimize(lambda t: run_trial(t, cfg, tune_dir), n_trials=remaining, catch=(FloatingPointError,),
                       callbacks=[budget])
    best = study.best_trial
    LOG.info("best trial %d: %s = %.4f with %s (%s)", best.number, tune.metric, best.value, best.params,
             best.user_attrs.get("run_dir"))
    (tune_dir / "best_params.yaml").write_text(OmegaConf.to_yaml({"value": best.value, **best.params}))
    return float(best.value)


if __name__ == "__main__":
    exits.hydra_cli(main, "tune")
