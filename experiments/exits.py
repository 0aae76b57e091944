"""Exit statuses of every entry point (experiments.train, .sweep, .tune; make prints them).

    0    done: every run completed
    1    a run failed (its summary.json says why)
    2    invalid configuration or refused re-run: nothing was trained
    130  interrupted (Ctrl-C, SIGTERM): runs stopped at a checkpoint and resume on a re-run

Hydra exits 1 both for an override that does not compose and for a task that raised;
`hydra_cli` tells them apart by whether Hydra got as far as starting the run (the `Composed`
callback of conf/config.yaml), and `task` turns the project's own refusals (an invalid
TrainConfig, a run directory of another config) into 2.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
F = TypeVar("F", bound=Callable[..., Any])
_composed = {"value": False}


class InvalidConfig(SystemExit):
    """The config cannot be trained as given; raised as SystemExit so Hydra does not add a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_INVALID)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Composed(Callback):
    """Hydra callback (conf/config.yaml): the config composed, so a later exit 1 is a failed run,
    not a bad override; and a single run's config is validated here, before Hydra writes its
    output directory (a multirun's jobs are validated by the grid sweeper). `check` names the
    function that validates the task's config (default: the training config's)."""

    def __init__(self, check: str | None = None) -> None:
        self.check = check

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _composed["value"] = True
        task_cfg = OmegaConf.create({k: config[k] for k in config if k != "hydra"})
        try:
            if self.check is None:
                from experiments.adapter import to_train_config  # lazy: imports torch via yolo_core

                to_train_config(task_cfg, out_dir=str(config.hydra.run.dir))
            else:
                from hydra.utils import get_method

                get_method(self.check)(task_cfg)
        except refusals() as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise InvalidConfig(str(e)) from None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _composed["value"] = True


def refusals() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this config is not trained as given" (exit 2), not "the run failed"."""
    from yolo_core.train import IdentityMismatch
    from yolo_core.train import ConfigError

    return (ConfigError, IdentityMismatch)


def task(fn: F) -> F:
    """Decorate a Hydra task function (under @hydra.main). In a single run, a refusal exits 2
    with its message only and a stop signal 130; in a multirun the exception goes to the
    launcher, which records it per job (and requeues a preempted one)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from yolo_core.train import Preempted

        if HydraConfig.get().mode != RunMode.RUN:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except refusals() as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise InvalidConfig(str(e)) from None
        except Preempted as e:
            print(f"stopped: {e}; run the same command again to resume from the last checkpoint",
                  file=sys.stderr, flush=True)
            raise SystemExit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def hydra_cli(main: Callable[[], Any], name: str, resumable: bool = True) -> None:
    """Run a @hydra.main function as a command with the statuses above (resumable: whether an
    interrupted run continues from a checkpoint when the command is run again)."""
    try:
        main()
    except SystemExit as e:
        if e.code == EXIT_FAILED and not _composed["value"]:
            sys.exit(EXIT_INVALID)  # Hydra could not compose the config: nothing ran
        raise
    except KeyboardInterrupt:
        again = "resume from the last checkpoint" if resumable else "start it over"
        print(f"{name}: interrupted; run the same command again to {again}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK)
