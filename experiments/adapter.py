"""Composed Hydra config -> yolo_core.TrainConfig: its `train` node is TrainConfig's fields."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationResolutionError

from yolo_core.train.config import ConfigError, TrainConfig
from yolo_core.train.identity import prelaunch_differences


def to_train_config(cfg: DictConfig, out_dir: str, run_name: str | None = None) -> TrainConfig:
    """The validated TrainConfig of a composed config (interpolations resolved against it all)."""
    try:
        train: Any = OmegaConf.to_container(cfg.train, resolve=True)
    except InterpolationResolutionError as e:  # e.g. neck_init=yolov5s without paths.yolov5s_weights
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None
    return TrainConfig(out_dir=out_dir, run_name=run_name, **train).validate()


def skippable(job_cfg: DictConfig, run_dir: Path, summary: dict[str, Any],
              converted: TrainConfig | None = None) -> tuple[bool, str]:
    """Whether a launcher may skip a job whose run_dir holds this completed summary: only when
    the stored identity agrees with the job's config in everything known before the run
    starts; else (another config, no identity) the differences, for the launcher's refusal.
    converted: the job's TrainConfig when the caller has built it already; a config that
    does not convert raises (ConfigError), as the job itself would."""
    stored = (summary.get("identity") or {}).get("config")
    if not stored:
        return False, "no run identity recorded"
    if converted is None:
        task = copy.deepcopy(job_cfg)
        with read_write(task), open_dict(task):
            task.pop("hydra", None)
        converted = to_train_config(task, out_dir=str(run_dir))
    diff = prelaunch_differences(stored, converted)
    return (not diff), "; ".join(diff)
