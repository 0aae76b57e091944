"""Hydra entry point: evaluate a weights file.  python -m experiments.val weights=PATH [overrides]

The settings are yolo_core.eval.val.ValConfig's fields (conf_tools/val.yaml); weights inside a
run directory default to that run's evaluation settings. Exit status: experiments/exits.py
(0 done, 1 failed, 2 invalid config or unusable weights, 130 interrupted).
"""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments import exits
from experiments.tools import register_tool, tool_config, weights_refused
from yolo_core.eval.val import ValConfig, resolve_settings, val

register_tool("val", ValConfig, exclude=("out_dir",))


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf_tools/val.yaml): refused before Hydra writes anything."""
    tool_config(ValConfig, cfg, resolve_settings)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="val")
@exits.task
def main(cfg: DictConfig) -> float | None:
    vc = tool_config(ValConfig, cfg, resolve_settings, out_dir=HydraConfig.get().runtime.output_dir)
    with weights_refused("val"):
        return val(vc).metrics["map"]


if __name__ == "__main__":
    exits.hydra_cli(main, "val", resumable=False)
