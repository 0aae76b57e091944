"""Check every job of a multirun before any job starts.

Why: Hydra composes a job's config only when that job runs (with a cluster launcher, on
the cluster), and TrainConfig.validate runs inside the job; so a typo in one grid value,
a wrong type or lr0=0 would otherwise surface hours later, or in one job out of 24. Here
the sweep is expanded exactly as Hydra's BasicSweeper does (hydra.sweeper.params, then
the command-line overrides, cartesian product via BasicSweeper.split_arguments), each
job's config is composed with the same config loader call the launcher makes
(load_sweep_config), and converted with experiments.adapter.to_train_config, which
validates the values. One bad job stops the whole sweep with every problem listed; no
directory is created.

Used by experiments/sweep.py (`make sweep`), and as a Hydra callback (ValidateSweep,
registered in conf/config.yaml) so that `python -m experiments.train -m ...` is checked too.
"""
from __future__ import annotations

import copy
import logging
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from experiments.launchers.runs import completed_summary, sweep_job_dir

LOG = logging.getLogger(__name__)

# Sweep dirs whose jobs experiments.sweep already validated in this process (the callback skips them).
_VALIDATED: set[str] = set()


class SweepValidationError(SystemExit):
    """Some job configs of a sweep are invalid; nothing was launched (exit status 2).

    A SystemExit because Hydra turns ordinary exceptions raised by callbacks into
    warnings and carries on launching.
    """

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class JobCheck:
    """One job of a sweep: its overrides, run directory, and what is wrong with it (if anything)."""

    num: int
    overrides: list[str]
    run_dir: Path | None = None
    error: str | None = None
    completed: bool = False


def is_basic_sweeper(config: DictConfig) -> bool:
    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
    return target.endswith("BasicSweeper")


def expand_sweep(config: DictConfig, config_loader: Any) -> list[list[str]]:
    """Every job's overrides, in launch order, as BasicSweeper.sweep() computes them.

    hydra.sweeper.params first, then the command-line task overrides (a later value for
    the same key wins, so `seed=3` on the command line replaces a grid's seed axis).
    """
    params = OmegaConf.to_container(config.hydra.sweeper.params, resolve=False) if \
        OmegaConf.select(config, "hydra.sweeper.params") else {}
    args = [f"{k}={v}" for k, v in (params or {}).items()]
    args += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))  # type: ignore[arg-type]
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(args)
    batch_size = OmegaConf.select(config, "hydra.sweeper.max_batch_size", default=None)
    return [job for batch in BasicSweeper.split_arguments(parsed, batch_size) for job in batch]


def check_job(config: DictConfig, config_loader: Any, overrides: list[str], num: int) -> JobCheck:
    """Compose one job's config as the launcher will, then convert (and so validate) it."""
    from experiments.adapter import skippable, to_train_config  # lazy: imports torch via yolo_core

    check = JobCheck(num=num, overrides=list(overrides))
    hc = HydraConfig.instance()
    previous = hc.cfg
    try:
        cfg = config_loader.load_sweep_config(config, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = num
        check.run_dir = sweep_job_dir(cfg)
        hc.set_config(cfg)  # as run_job does, so ${hydra:...} interpolations resolve
        task_cfg = copy.deepcopy(cfg)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        to_train_config(task_cfg, out_dir=str(check.run_dir), run_name=str(cfg.hydra.job.override_dirname))
        done = completed_summary(check.run_dir)
        if done is not None and OmegaConf.select(cfg, "train.resume", default=True) is not False:
            check.completed, why = skippable(cfg, check.run_dir, done)
            if not check.completed:  # the trainer would refuse it: say so before anything is launched
                check.error = (f"{check.run_dir} completed under another config ({why}); a re-run does not "
                               f"take it as done. Give another hydra.sweep.dir, or train.resume=false to start "
                               f"it over.")
    except Exception as e:  # composition (Hydra/OmegaConf) or value (TrainConfig.validate) errors
        check.error = describe_error(e)
    finally:
        hc.cfg = previous  # type: ignore[assignment]
    return check


def plan_sweep(config: DictConfig, config_loader: Any) -> list[JobCheck]:
    """Expand and check every job of the multirun described by config (a MULTIRUN-composed config)."""
    # Resolve the sweep dir once on the primary config: ${now:...} is cached per config and
    # load_sweep_config copies that cache, so every job then sees the same directory.
    OmegaConf.select(config, "hydra.sweep.dir")
    return [check_job(config, config_loader, ov, i) for i, ov in enumerate(expand_sweep(config, config_loader))]


def describe_error(e: BaseException) -> str:
    """The error and its causes (Hydra wraps OmegaConf's type errors), minus Hydra's search-path dump."""
    parts: list[str] = []
    cur: BaseException | None = e
    while cur is not None and len(parts) < 4:
        text = str(cur).strip()
        if text and "$VALUE" not in text and not any(text in p for p in parts):
            parts.append(text)
        cur = cur.__cause__
    lines = []
    for line in "\n".join(parts).splitlines():
        if line.startswith("Config search path"):
            break  # the rest is the config search path: not the problem
        if line.strip():
            lines.append(line.replace("\t", "    "))
    return "\n".join(lines) or type(e).__name__


def format_problems(checks: list[JobCheck]) -> str:
    """A readable list of the invalid jobs, grouping jobs that fail with the same message."""
    bad = [c for c in checks if c.error]
    groups: OrderedDict[str, list[JobCheck]] = OrderedDict()
    for c in bad:
        groups.setdefault(c.error or "", []).append(c)
    lines = [f"invalid sweep: {len(bad)} of {len(checks)} job config(s) are invalid; nothing was launched."]
    for err, jobs in groups.items():
        first = jobs[0]
        which = f"job #{first.num}" if len(jobs) == 1 else \
            f"{len(jobs)} jobs (#{', #'.join(str(j.num) for j in jobs[:8])}{', ...' if len(jobs) > 8 else ''})"
        lines.append(f"- {which}, e.g. overrides: {' '.join(first.overrides) or '(none)'}")
        lines += ["    " + ln for ln in err.splitlines()]  # describe_error dropped blanks and the search path
    return "\n".join(lines)


def mark_validated(sweep_dir: str | Path) -> None:
    """Tell ValidateSweep that experiments.sweep has checked this sweep already (same process)."""
    _VALIDATED.add(str(sweep_dir))


class ValidateSweep(Callback):
    """Hydra callback (conf/config.yaml, hydra.callbacks): validate every job on multirun start.

    Prints the problems and raises SweepValidationError (exit status 2) before the
    sweeper creates the sweep directory. Only for the BasicSweeper, whose job list is known up
    front; an Optuna sweep chooses its values as it goes.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_basic_sweeper(config):
            LOG.info("sweeper %s: jobs are validated as they are created", config.hydra.sweeper._target_)
            return
        sweep_dir = str(config.hydra.sweep.dir)
        if sweep_dir in _VALIDATED:
            return
        checks = plan_sweep(config, GlobalHydra.instance().hydra.config_loader)  # type: ignore[union-attr]
        if any(c.error for c in checks):
            err = SweepValidationError(format_problems(checks))
            print(err, file=sys.stderr, flush=True)
            raise err
        LOG.info("validated %d job config(s) before launching", len(checks))
