"""hydra/sweeper=grid: Hydra's grid sweep, with every job checked before any is launched.

The basic sweeper validates one batch at a time and only that each job composes; a grid
of 24 Slurm jobs with one bad value would start 23 runs and fail one at start. This
sweeper expands the whole grid (the same cartesian product), composes and validates every
job (experiments.validate: types, ranges, files, completed runs of another config), and
only then takes the sweep directory's lock, writes multirun.yaml and launches. An invalid
grid exits with status 2 and nothing written; a second sweep into a live sweep directory
is refused (experiments.sweep_lock).
"""
# No `from __future__ import annotations` here: Hydra execs plugin modules before they are in
# sys.modules, and dataclasses cannot resolve string annotations then.

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.convnext_yolo_launchers.sweeper.GridSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


class GridSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None) -> None:
        super().__init__()
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"hydra.sweeper.max_batch_size={max_batch_size} must be >= 1 (or null: one batch)")
        self.max_batch_size = max_batch_size  # params: read from the config (hydra.sweeper.params) by plan_sweep
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Compose and validate every job of `batch`; raise SweepValidationError (exit 2) listing
        every invalid one, before anything is written."""
        from experiments.validate import check_job

        assert self.hydra_context is not None and self.config is not None
        self._refuse_invalid([check_job(self.config, self.hydra_context.config_loader, ov, i)
                              for i, ov in enumerate(batch)])

    def _refuse_invalid(self, checks: List[Any]) -> None:
        from experiments.validate import SweepValidationError, format_problems

        if any(c.error for c in checks):
            err = SweepValidationError(format_problems(checks))
            print(err, file=sys.stderr, flush=True)
            raise err
        log.info("%d job(s) valid, %d already completed; sweep dir %s", len(checks),
                 sum(c.completed for c in checks), self.config.hydra.sweep.dir)  # type: ignore[union-attr]

    def sweep(self, arguments: List[str]) -> List[Sequence[JobReturn]]:
        from experiments.sweep_lock import SweepLock, SweepLocked
        from experiments.validate import SweepValidationError, plan_sweep

        assert self.hydra_context is not None and self.config is not None and self.launcher is not None
        try:
            checks = plan_sweep(self.config, self.hydra_context.config_loader, arguments)
        except ValueError as e:  # a sweep this grid cannot expand (interval(), tag(), ...)
            print(f"invalid sweep: {e}; nothing was launched.", file=sys.stderr, flush=True)
            raise SweepValidationError(str(e)) from None
        self._refuse_invalid(checks)
        jobs = [c.overrides for c in checks]
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        returns: List[Sequence[JobReturn]] = []
        try:
            with SweepLock(sweep_dir):
                OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
                size = self.max_batch_size or max(len(jobs), 1)
                for start in range(0, len(jobs), size):
                    returns.append(self.launcher.launch(jobs[start:start + size], initial_job_idx=start))
        except SweepLocked as e:  # only from taking the lock: nothing was launched
            print(e, file=sys.stderr, flush=True)
            raise
        for r in (r for batch in returns for r in batch):
            _ = r.return_value  # the first failure, raised once every batch has ended
        return returns
