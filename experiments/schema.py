"""Structured configs (dataclasses) for conf/: every override is type-checked by OmegaConf.

Group option names are checked by Hydra itself (an unknown option lists the valid
ones); types here (a string for an int fails); values by `to_train_config`, which
turns a composed config into yolo_core's TrainConfig and validates it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class BackboneConf:
    name: str = "cspdarknet_s"          # the axis label used in reports
    model: str = "yolov5s"              # yolo_core.build_model name (a YOLOv5 size or a timm model)
    neck: str = "yolov5s"               # YOLOv5 size whose neck + head a timm backbone gets
    pretrained: Optional[str] = None    # timm backbones: local weights file or hub tag
    drop_path_rate: float = 0.0
    lr_mult: float = 1.0                # backbone lr multiplier
    layer_decay: Optional[float] = None
    freeze_epochs: int = 0


@dataclass
class NeckInitConf:
    name: str = "random"
    weights: Optional[str] = None       # an official yolov5*.pt (or our checkpoint) for neck (+ head)


@dataclass
class ModelConf:
    backbone: BackboneConf = field(default_factory=BackboneConf)
    neck_init: NeckInitConf = field(default_factory=NeckInitConf)


@dataclass
class ScheduleConf:
    name: str = "linear"
    lrf: float = 0.01
    warmup_epochs: float = 3.0
    warmup_min_iters: int = 100
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1


@dataclass
class OptimizerConf:
    name: str = "sgd"
    lr0: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005


@dataclass
class SyntheticConf:
    """Parameters of the embedded dataset (yolo_core.data.synthetic.ensure_synthetic_dataset)."""
    n_train: int = 256
    n_val: int = 64
    image_size: int = 192               # originals; training at 96 px halves them
    seed: int = 0
    background: str = "flat"            # flat | texture


@dataclass
class DataConf:
    name: str = "synthetic"
    path: Optional[str] = None          # dataset yaml (YOLOv5 or COCO-json form); null for synthetic
    synthetic: SyntheticConf = field(default_factory=SyntheticConf)
    cache: Optional[str] = None         # null | ram | disk


@dataclass
class TrainConf:
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    workers: int = 8
    device: str = "auto"
    amp: Optional[bool] = None
    patience: int = 100
    label_smoothing: float = 0.0
    ema: bool = True
    channels_last: bool = False
    coco_backend: str = "pycocotools"
    resume: bool = True


@dataclass
class Config:
    model: ModelConf = field(default_factory=ModelConf)
    schedule: ScheduleConf = field(default_factory=ScheduleConf)
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    data: DataConf = field(default_factory=DataConf)
    train: TrainConf = field(default_factory=TrainConf)
    hyp: dict[str, float] = field(default_factory=dict)   # overrides of hyp.scratch-low (loss, augmentation)
    seed: int = 0


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)
