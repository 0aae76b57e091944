"""Hydra entry point: evaluate a weights file.  python -m experiments.val weights=PATH [overrides]

The settings are yolo_core.eval.val.ValConfig's fields (conf/val.yaml); weights inside a run
directory default to that run's evaluation settings. Exit status: experiments/exits.py
(0 done, 1 failed, 2 invalid config or unusable weights, 130 interrupted).
"""
from __future__ import annotations


import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments import exits
from experiments.schema import structured_node
from yolo_core.eval.val import ValConfig, resolve_settings, val
from yolo_core.models.checkpoint import CheckpointError
from yolo_core.train.config import ConfigError

ConfigStore.instance().store(name="val_schema", node=structured_node(ValConfig, ("out_dir",), "ValConf"))


def to_val_config(cfg: DictConfig, out_dir: str | None = None) -> ValConfig:
    """The ValConfig of a composed config, its settings checked (ConfigError: exit 2)."""
    fields = OmegaConf.to_container(cfg, resolve=True)
    vc = ValConfig(**fields, **({"out_dir": out_dir} if out_dir else {}))  # type: ignore[arg-type]
    resolve_settings(vc)
    return vc


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf/val.yaml): refused before Hydra writes anything."""
    to_val_config(cfg)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="val")
@exits.task
def main(cfg: DictConfig) -> float | None:
    vc = to_val_config(cfg, out_dir=HydraConfig.get().runtime.output_dir)
    try:
        return val(vc).metrics["map"]
    except (FileNotFoundError, CheckpointError) as e:  # weights that cannot be used: nothing was evaluated
        raise ConfigError(f"val: {e}") from None


if __name__ == "__main__":
    exits.hydra_cli(main, "val", resumable=False)
