"""Hydra entry point: detect objects.  python -m experiments.detect weights=PATH source=DIR [overrides]

The settings are yolo_core.infer.DetectConfig's fields (conf_tools/detect.yaml); the outputs
go to Hydra's run directory. Exit status: experiments/exits.py (0 done, 1 failed, 2 invalid
settings, source or weights).
"""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments import exits
from experiments.tools import register_tool, tool_config, weights_refused
from yolo_core.infer.detect import DetectConfig, check_config, detect

register_tool("detect", DetectConfig, exclude=("out_dir",))


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf_tools/detect.yaml)."""
    tool_config(DetectConfig, cfg, check_config)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="detect")
@exits.task
def main(cfg: DictConfig) -> int:
    with weights_refused("detect"):
        result = detect(tool_config(DetectConfig, cfg, check_config, out_dir=HydraConfig.get().runtime.output_dir))
    sp = result.speed_ms
    skipped = f", {result.skipped['corrupt']} undecodable files skipped" if result.skipped else ""
    print(f"{result.images} images, {result.detections} detections{skipped}")
    print(f"Speed: {sp['preprocess']:.1f}ms pre-process, {sp['inference']:.1f}ms inference, {sp['nms']:.1f}ms NMS "
          f"per image")
    print(f"Results saved to {result.out_dir}")
    return result.detections


if __name__ == "__main__":
    exits.hydra_cli(main, "detect", resumable=False)
