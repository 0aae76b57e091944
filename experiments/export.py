"""Hydra entry point: export a weights file.  python -m experiments.export weights=PATH [overrides]

The settings are yolo_core.deploy.ExportConfig's fields (conf_tools/export.yaml). Exit
status: experiments/exits.py (0 written and checked, 1 failed (e.g. the check), 2 invalid
settings or unusable weights).
"""
from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from experiments import exits
from experiments.schema import structured_node
from yolo_core.deploy.export import ExportConfig, check_config, export
from yolo_core.models.checkpoint import CheckpointError
from yolo_core.train.config import ConfigError

ConfigStore.instance().store(name="export_schema", node=structured_node(ExportConfig, name="ExportConf"))


def to_export_config(cfg: DictConfig) -> ExportConfig:
    ec = ExportConfig(**OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    check_config(ec)
    return ec


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf_tools/export.yaml)."""
    to_export_config(cfg)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="export")
@exits.task
def main(cfg: DictConfig) -> None:
    try:
        result = export(to_export_config(cfg))
    except (FileNotFoundError, CheckpointError) as e:
        raise ConfigError(f"export: {e}") from None
    print(f"Exported {cfg.weights} to {result.path} ({result.path.stat().st_size / 1e6:.1f} MB); checked against "
          f"PyTorch: max difference {result.max_abs_diff:.2g} ({result.max_rel_diff:.2g} relative)")
    print(f"Evaluate it with: make val ARGS=\"weights={result.path}\"")


if __name__ == "__main__":
    exits.hydra_cli(main, "export", resumable=False)
