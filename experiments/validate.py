"""Check every job of a multirun before any job starts.

Why: Hydra composes a job's config only when that job runs (with a cluster launcher, on
the cluster), and TrainConfig.validate runs inside the job; so a typo in one grid value,
a wrong type or lr0=0 would otherwise surface hours later, or in one job out of 24. Here
every job's config is composed with the call the launcher makes (load_sweep_config) and
converted with experiments.adapter.to_train_config, which validates the values and the
files. One bad job stops the whole sweep with every problem listed; no directory is created.

Used by the project's sweeper (hydra_plugins/convnext_yolo_launchers/sweeper.py, the
hydra/sweeper of conf/config.yaml: every `-m` run) and by experiments/sweep.py --plan.
"""
from __future__ import annotations

import copy
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from experiments.exits import InvalidConfig
from experiments.launchers.runs import completed_summary, sweep_job_dir

LOG = logging.getLogger(__name__)

class SweepValidationError(InvalidConfig):
    """Some job configs of a sweep are invalid; nothing was launched (exit status 2)."""


@dataclass
class JobCheck:
    """One job of a sweep: its overrides, run directory, and what is wrong with it (if anything)."""

    num: int
    overrides: list[str]
    run_dir: Path | None = None
    error: str | None = None
    completed: bool = False


def expand_sweep(params: dict[str, Any] | None, arguments: Sequence[str], config_loader: Any) -> list[list[str]]:
    """Every job's overrides, in launch order: the cartesian product of the sweeper's params
    followed by the command-line overrides (a later value for a key wins, so `train.seed=3` on the
    command line replaces a grid's seed axis). The same expansion as Hydra's basic sweeper."""
    args = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    axes: OrderedDict[str, list[str]] = OrderedDict()
    for override in OverridesParser.create(config_loader=config_loader).parse_overrides(args):
        key = override.get_key_element()
        if not override.is_sweep_override():
            axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            axes[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
        else:
            raise ValueError(f"{key}: a grid sweeps lists (a,b) and range(...) only, not "
                             f"{override.value_type.name if override.value_type else 'this'}")
    return [list(job) for job in itertools.product(*axes.values())]


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
        converted = to_train_config(task_cfg, out_dir=str(check.run_dir),
                                    run_name=str(cfg.hydra.job.override_dirname))
        done = completed_summary(check.run_dir)
        if done is not None and OmegaConf.select(cfg, "train.resume", default=True) is not False:
            check.completed, why = skippable(cfg, check.run_dir, done, converted)
            if not check.completed:  # the trainer would refuse it: say so before anything is launched
                check.error = (f"{check.run_dir} completed under another config ({why}); a re-run does not "
                               f"take it as done. Give another hydra.sweep.dir, or train.resume=false to start "
                               f"it over.")
    except Exception as e:  # composition (Hydra/OmegaConf) or value (TrainConfig.validate) errors
        check.error = describe_error(e)
    finally:
        hc.cfg = previous  # type: ignore[assignment]
    return check


def plan_sweep(config: DictConfig, config_loader: Any, arguments: Sequence[str] | None = None) -> list[JobCheck]:
    """Expand and check every job of the multirun described by config (a MULTIRUN-composed config).
    arguments: the sweep's command-line overrides (default: the config's hydra.overrides.task)."""
    # Resolve the sweep dir once on the primary config: ${now:...} is cached per config and
    # load_sweep_config copies that cache, so every job then sees the same directory.
    OmegaConf.select(config, "hydra.sweep.dir")
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    if arguments is None:
        arguments = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)  # type: ignore[assignment]
    jobs = expand_sweep(params, arguments or [], config_loader)  # type: ignore[arg-type]
    checks = [check_job(config, config_loader, ov, i) for i, ov in enumerate(jobs)]
    first: dict[Path, JobCheck] = {}
    for c in checks:  # overrides left out of the directory name (conf/config.yaml exclude_keys)
        if c.run_dir is not None and c.error is None and first.setdefault(c.run_dir, c) is not c:
            c.error = (f"the same run directory as job #{first[c.run_dir].num} ({c.run_dir}): their overrides "
                       f"differ only in keys left out of directory names (hydra.job.config.override_dirname."
                       f"exclude_keys); sweep them in separate sweep dirs")
    return checks


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
