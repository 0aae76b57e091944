"""Hydra entry point: one training run.  python -m experiments.train [overrides]

Exit status: experiments/exits.py (0 completed, 1 failed, 2 invalid config, 130 interrupted).
"""
from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments import exits
from experiments.adapter import to_train_config
from experiments.launchers.runs import final_map
from experiments.loggers import build_logger
from experiments.schema import register_configs
from yolo_core.train.trainer import train

register_configs()
LOG = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exits.task
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    run_name = hc.job.override_dirname or hc.job.name
    summary = train(to_train_config(cfg, out_dir=hc.runtime.output_dir, run_name=run_name),
                    logger=build_logger(cfg))
    return final_map(summary)


if __name__ == "__main__":
    exits.hydra_cli(main, "train")
