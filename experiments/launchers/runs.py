"""Run-directory facts a launcher acts on (docs/run_directory.md), without importing yolo_core.

Why here: re-running a sweep directory must skip runs whose summary.json says
`completed` (without starting a process for them), and a job that died without a
word (killed, segfault, out of memory, or a config error before the trainer started)
must not stay `running` or `missing` in the report: the launcher marks it `failed`
with the reason, so `analysis/report.py --strict` counts it.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's summary.json as a dict, or None when absent or unreadable."""
    path = Path(run_dir) / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def completed_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The summary of a run that completed (so a re-run skips it), else None."""
    summary = read_summary(run_dir)
    return summary if summary is not None and summary.get("status") == "completed" else None


def final_map(summary: dict[str, Any]) -> float:
    """A run's return value for Hydra (its final mAP; 0.0 when absent, e.g. ranks > 0 of DDP)."""
    return (summary.get("metrics") or {}).get("map") or 0.0


def run_status(run_dir: str | Path) -> str | None:
    """status from summary.json (running/completed/failed/preempted), None without one."""
    summary = read_summary(run_dir)
    return None if summary is None else summary.get("status")


# overrides that are not settings of the study: file locations (identified by content), Hydra's own
NOT_AXES = ("paths.", "hydra.", "logger")


def axes_from_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """{'backbone': 'convnext_tiny', 'seed': 1, ...} from 'model/backbone=convnext_tiny', 'train.seed=1'.

    Same naming as analysis/collect.py uses for runs without a summary: the last
    component of the key. Only for runs that died before the trainer wrote its axes.
    """
    axes: dict[str, Any] = {}
    for ov in overrides:
        key, sep, value = ov.lstrip("+~").partition("=")
        if not sep:
            continue
        name = key.replace("/", ".").rsplit(".", 1)[-1]
        if name in ("experiment", "cluster") or key.startswith(NOT_AXES):
            continue
        for conv in (int, float):
            try:
                axes[name] = conv(value)
                break
            except ValueError:
                pass
        else:
            axes[name] = value
    return axes


def mark_failed(run_dir: str | Path, error: str, overrides: Sequence[str] = ()) -> bool:
    """Record status `failed` with `error` unless the run already ended with a status of its own.

    Leaves completed, failed and preempted summaries alone (the trainer's word wins);
    rewrites a `running` one (the process died mid-run) keeping everything else; writes
    a minimal summary when there is none (the job died before the trainer started).
    Returns True when it wrote. Atomic (temp file + rename), like the trainer's writes.
    """
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is not None and summary.get("status") in ("completed", "failed", "preempted"):
        return False
    if summary is None:
        summary = {"status": "failed", "error": error, "run_name": ",".join(overrides) or run_dir.name,
                   "axes": axes_from_overrides(overrides), "model": {}, "metrics": {},
                   "best_epoch": None, "epochs_completed": 0}
    else:
        summary["status"], summary["error"] = "failed", error
    write_json_atomic(run_dir / SUMMARY, summary)
    return True


def write_json_atomic(path: Path, obj: Any) -> None:
    """Temp file in the same directory + os.replace: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_job_dir(cfg: Any) -> Path:
    """hydra.sweep.dir / hydra.sweep.subdir of a composed job config: where Hydra's run_job puts the run.

    Resolved with the job's own config as HydraConfig (as run_job does), so a subdir that
    uses ${hydra:...} resolves the same. Deterministic for a given sweep dir and job
    overrides (subdir is ${hydra.job.override_dirname}), which is what makes re-running
    a sweep directory find its earlier runs.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hc = HydraConfig.instance()
    previous = hc.cfg
    hc.set_config(cfg)
    try:
        return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir"))) / str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
    finally:
        hc.cfg = previous  # type: ignore[assignment]
