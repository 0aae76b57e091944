"""Hydra entry point: detect objects.  python -m experiments.detect weights=PATH source=DIR [overrides]

The settings are yolo_core.infer.DetectConfig's fields (conf_tools/detect.yaml); the outputs
go to Hydra's run directory. Exit status: experiments/exits.py (0 done, 1 failed, 2 invalid
settings, source or weights).
"""
from __future__ import annotations

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments import exits
from experiments.schema import structured_node
from yolo_core.infer.detect import DetectConfig, check_config, detect
from yolo_core.models.checkpoint import CheckpointError
from yolo_core.train.config import ConfigError

ConfigStore.instance().store(name="detect_schema", node=structured_node(DetectConfig, ("out_dir",), "DetectConf"))


def to_detect_config(cfg: DictConfig, out_dir: str | None = None) -> DetectConfig:
    fields = OmegaConf.to_container(cfg, resolve=True)
    dc = DetectConfig(**fields, **({"out_dir": out_dir} if out_dir else {}))  # type: ignore[arg-type]
    check_config(dc)
    return dc


def check(cfg: DictConfig) -> None:
    """The Composed callback's check (conf_tools/detect.yaml)."""
    to_detect_config(cfg)


@hydra.main(version_base="1.3", config_path="../conf_tools", config_name="detect")
@exits.task
def main(cfg: DictConfig) -> int:
    try:
        result = detect(to_detect_config(cfg, out_dir=HydraConfig.get().runtime.output_dir))
    except (FileNotFoundError, CheckpointError) as e:
        raise ConfigError(f"detect: {e}") from None
    sp = result.speed_ms
    skipped = f", {result.skipped['corrupt']} undecodable files skipped" if result.skipped else ""
    print(f"{result.images} images, {result.detections} detections{skipped}")
    print(f"Speed: {sp['preprocess']:.1f}ms pre-process, {sp['inference']:.1f}ms inference, {sp['nms']:.1f}ms NMS "
          f"per image")
    print(f"Results saved to {result.out_dir}")
    return result.detections


if __name__ == "__main__":
    exits.hydra_cli(main, "detect", resumable=False)
