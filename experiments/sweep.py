"""`make sweep`: validate every job of a grid, run the grid through the cluster's launcher, report.

    python -m experiments.sweep experiment=default cluster=local [hydra overrides ...]
    python -m experiments.sweep experiment=smoke hydra.sweep.dir=multirun/ci     # re-run: skips completed runs
    python -m experiments.sweep --plan experiment=convnext_vs_baseline           # list the jobs only

Steps: (1) Hydra multirun of experiments/train.py; the grid sweeper (hydra/sweeper=grid)
composes and validates every job (experiments/validate.py) and stops with all problems
listed if one is invalid, then locks the sweep dir and launches through hydra/launcher
(chosen by conf/cluster/), which waits for every job; (2) `python -m analysis.report
SWEEP_DIR --strict`.

Exit status: 0 every run completed; 1 some run failed or did not finish (printed after all
jobs ended, and marked in the report); 2 invalid configuration (nothing was launched);
130 interrupted (Ctrl-C, SIGTERM): local jobs are stopped and resume on a re-run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from experiments.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, InvalidConfig

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
USAGE = __doc__.split("\n\n")[1]


def _compose(hydra: object, overrides: list[str]) -> object:
    from hydra.types import RunMode

    return hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN,  # type: ignore[attr-defined]
                                with_log_configuration=False)


def _run_report(sweep_dir: Path) -> int:
    """analysis/report.py on the sweep dir (its own process: analysis reads only the run files)."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    print(f"\n== report: python -m analysis.report {sweep_dir} --strict", flush=True)
    return subprocess.call([sys.executable, "-m", "analysis.report", str(sweep_dir), "--strict"], env=env)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    flags = {a for a in args if a.startswith("--")}
    overrides = [a for a in args if not a.startswith("--")]
    if flags - {"--plan", "--no-report", "--help"}:
        print(f"sweep: unknown option(s) {sorted(flags - {'--plan', '--no-report', '--help'})}\n{USAGE}",
              file=sys.stderr)
        return EXIT_INVALID
    if "--help" in flags:
        print(__doc__)
        return EXIT_OK
    if str(REPO) not in sys.path:  # the launchers' hydra_plugins package lives in the checkout
        sys.path.insert(0, str(REPO))

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments import validate
    from experiments.train import main as train_task  # registers the structured configs too

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), job_name="train", version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        try:
            cfg = _compose(hydra, overrides)
            sweep_dir = Path(str(cfg.hydra.sweep.dir))  # type: ignore[attr-defined]
            checks = validate.plan_sweep(cfg, hydra.config_loader) if "--plan" in flags else []  # type: ignore
        except Exception as e:  # the overrides themselves do not compose
            print(f"sweep: invalid configuration; nothing was launched.\n{validate.describe_error(e)}",
                  file=sys.stderr)
            return EXIT_INVALID
        if "--plan" in flags:
            if any(c.error for c in checks):
                print("sweep: " + validate.format_problems(checks), file=sys.stderr)
                return EXIT_INVALID
            print(f"sweep: {len(checks)} job(s) valid, {sum(c.completed for c in checks)} already completed; "
                  f"sweep dir {sweep_dir}", flush=True)
            for c in checks:
                print(f"  #{c.num} {'[completed] ' if c.completed else ''}{' '.join(c.overrides)}  -> {c.run_dir}")
            return EXIT_OK

        launch_overrides = [o for o in overrides if not o.startswith("hydra.sweep.dir=")]
        launch_overrides.append(f"hydra.sweep.dir={sweep_dir}")  # the ${now:} resolved above, for the report
        rc = EXIT_OK
        try:  # the grid sweeper validates every job, then locks the sweep dir and launches
            hydra.multirun(config_name="config", task_function=train_task,  # type: ignore[union-attr]
                           overrides=launch_overrides, with_log_configuration=True)
        except InvalidConfig:  # the sweeper or a callback printed why
            print("sweep: refused (exit 2)", file=sys.stderr)
            return EXIT_INVALID
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: local jobs were stopped (status preempted)
            print(f"sweep: interrupted. Resume with the same command plus hydra.sweep.dir={sweep_dir} "
                  f"(completed runs are skipped, interrupted ones continue from last.pt)", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as e:  # the first failed job's error, raised after every job ended
            print(f"sweep: at least one job failed; first error: {type(e).__name__}: "
                  f"{validate.describe_error(e).splitlines()[0]}", file=sys.stderr)
            rc = EXIT_FAILED
    if "--no-report" in flags:
        return rc
    report_rc = _run_report(sweep_dir)
    if report_rc == 1:
        print("sweep: the report lists failed or unfinished runs (exit 1)", file=sys.stderr)
    return max(rc, EXIT_FAILED if report_rc else EXIT_OK)


if __name__ == "__main__":
    sys.exit(main())
