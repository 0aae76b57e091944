"""Optuna search of the learning rate(s) for one backbone.  python -m experiments.tune [overrides]

Every trial is an ordinary training run in <tune dir>/trial_<n> (the run directory
contract), so analysis/report.py reads a tune directory like a sweep. The study lives in
an Optuna storage (default: a SQLite file in the tune directory; any RDB URL works, or
`journal:<path>` for a journal file on a shared file system), so a killed search resumes:
run the same command with `hydra.run.dir=<tune dir>` and the study continues; a trial that
was running when the process died (or was stopped by SIGTERM/SIGUSR2) is marked failed
and its run directory resumes.

Pruning: after each epoch the trial reports YOLOv5's fitness (0.1 mAP50 + 0.9 mAP) and a
median pruner may stop it; the run then ends like an early stop (best.pt evaluated, status
completed, `stopped_early` in summary.json) and the trial is marked pruned.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.adapter import to_train_config
from experiments.loggers import build_logger
from experiments.schema import register_configs
from yolo_core.loggers import CompositeLogger, RunLogger
from yolo_core.train import Preempted, train

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


def make_storage(url: str | None, tune_dir: Path) -> optuna.storages.BaseStorage | str:
    if url is None:
        return f"sqlite:///{tune_dir / 'optuna.db'}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return url


def sample(trial: optuna.Trial, tune: DictConfig) -> dict[str, float]:
    """The overrides of one trial: lr0, and the backbone lr multiplier when it is searched."""
    out = {"optimizer.lr0": trial.suggest_float("lr0", tune.lr0.low, tune.lr0.high, log=tune.lr0.log)}
    if tune.backbone_lr_mult is not None:
        r = tune.backbone_lr_mult
        out["model.backbone.lr_mult"] = trial.suggest_float("backbone_lr_mult", r.low, r.high, log=r.log)
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
def main(cfg: DictConfig) -> float:
    tune = cfg.tune
    tune_dir = Path(HydraConfig.get().runtime.output_dir)
    storage = make_storage(tune.storage, tune_dir)
    name = tune.study_name or f"lr-{cfg.model.backbone.name}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=tune.warmup_epochs) \
        if tune.pruner == "median" else optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed), pruner=pruner)
    # a trial left RUNNING by a killed process: fail it, its run directory resumes under the same number
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"run_number": t.user_attrs.get("run_number", t.number)})
    done = sum(t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL for t in study.trials)
    remaining = max(tune.n_trials - done, 0)
    LOG.info("study %s in %s: %d trials done, %d to run", name, tune_dir, done, remaining)
    if remaining:
        study.optimize(lambda t: run_trial(t, cfg, tune_dir), n_trials=remaining, catch=(FloatingPointError,))
    best = study.best_trial
    LOG.info("best trial %d: %s = %.4f with %s (%s)", best.number, tune.metric, best.value, best.params,
             best.user_attrs.get("run_dir"))
    (tune_dir / "best_params.yaml").write_text(OmegaConf.to_yaml({"value": best.value, **best.params}))
    return float(best.value)


if __name__ == "__main__":
    main()
