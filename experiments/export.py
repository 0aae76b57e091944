"""Hydra entry point: export a weights file.  python -m experiments.export weights=PATH [overrides]

The settings are yolo_core.deploy.ExportConfig's fields (conf_tools/export.yaml). Exit
status: experiments/exits.py (0 written and checked, 1 failed (e.g. the check), 2 invalid
settings or unusable weights).
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments import exits
from experiments.tools import register_tool, tool_config, weights_refused
from yolo_core.deploy.export import ExportConfig, check_config, export

register_tool("export", ExportConfig)


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf_tools/export.yaml)."""
    tool_config(ExportConfig, cfg, check_config)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="export")
@exits.task
def main(cfg: DictConfig) -> None:
    with weights_refused("export"):
        result = export(tool_config(ExportConfig, cfg, check_config))
    print(f"Exported {cfg.weights} to {result.path} ({result.path.stat().st_size / 1e6:.1f} MB); checked against "
          f"PyTorch: max difference {result.max_abs_diff:.2g} ({result.max_rel_diff:.2g} relative)")
    print(f"Evaluate it with: make val ARGS=\"weights={result.path}\"")


if __name__ == "__main__":
    exits.hydra_cli(main, "export", resumable=False)
