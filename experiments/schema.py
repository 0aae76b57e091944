"""Structured configs (dataclasses) for conf/: every override is type-checked by OmegaConf.

Group option names are checked by Hydra itself (an unknown option lists the valid
ones); types here (a string for an int fails); values by `to_train_config`, which
turns a composed config into yolo_core's TrainConfig and validates it.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

from yolo_core.hyp import SCRATCH_LOW
from yolo_core.train.config import TrainConfig


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
    # the optimizer this backbone's recipe recommends; applied only by optimizer=backbone
    # (conf/optimizer/backbone.yaml interpolates it), so grids can make it follow the backbone
    optimizer: "OptimizerConf" = field(default_factory=lambda: OptimizerConf())


@dataclass
class NeckInitConf:
    name: str = "random"
    weights: Optional[str] = None       # an official yolov5*.pt (or our checkpoint) for neck (+ head)
    min_transfer: float = TrainConfig.init_min_transfer           # fraction of the scope's tensors the file must fill, else refused


@dataclass
class ModelConf:
    backbone: BackboneConf = field(default_factory=BackboneConf)
    neck_init: NeckInitConf = field(default_factory=NeckInitConf)


# hyp defaults: yolo_core/hyp.py (hyp.scratch-low), the one place they are written
@dataclass
class ScheduleConf:
    name: str = "linear"
    lrf: float = SCRATCH_LOW["lrf"]
    warmup_epochs: float = SCRATCH_LOW["warmup_epochs"]
    warmup_min_iters: int = TrainConfig.warmup_min_iters
    warmup_momentum: float = SCRATCH_LOW["warmup_momentum"]


@dataclass
class OptimizerConf:
    name: str = "sgd"
    lr0: float = SCRATCH_LOW["lr0"]
    momentum: float = SCRATCH_LOW["momentum"]
    weight_decay: float = SCRATCH_LOW["weight_decay"]
    warmup_bias_lr: float = SCRATCH_LOW["warmup_bias_lr"]  # start lr of bias groups in warmup (made for SGD)


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
    max_image_pixels: Optional[int] = TrainConfig.max_image_pixels  # larger images are skipped as corrupt (PIL's limit); null: none


# TrainConfig fields that the other groups fill (model/*, schedule, optimizer, data, hyp, seed)
# or that the entry point sets (out_dir, run_name, axes); every other field is `train.<field>`.
FILLED_BY_GROUPS = ("out_dir", "run_name", "axes", "model", "model_kwargs", "init_weights", "init_scope",
                    "init_min_transfer", "data", "synthetic", "cache", "max_image_pixels", "optimizer", "schedule",
                    "hyp", "warmup_min_iters", "backbone_lr_mult", "layer_decay", "freeze_backbone_epochs", "seed")


def _train_node() -> type:
    """`train`: yolo_core's TrainConfig fields with their own names, types and defaults (one place)."""
    hints = typing.get_type_hints(TrainConfig)
    fields = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in FILLED_BY_GROUPS:
            continue
        typ = hints[f.name]
        args = typing.get_args(typ)
        if isinstance(typ, types.UnionType) and type(None) in args:  # OmegaConf knows Optional[X], not X | None
            typ = Optional[next(a for a in args if a is not type(None))]
        default = field(default=f.default) if f.default is not dataclasses.MISSING else \
            field(default_factory=f.default_factory)  # type: ignore[arg-type]
        fields.append((f.name, typ, default))
    return dataclasses.make_dataclass("TrainConf", fields)


TrainConf = _train_node()


@dataclass
class LoggerConf:
    """conf/logger/: where a run is mirrored besides its own files (experiments/loggers.py).
    No api_key field on purpose: the Comet key comes from the environment only."""
    name: str = "local"                 # local | comet
    project: Optional[str] = None
    workspace: Optional[str] = None
    experiment_name: Optional[str] = "{backbone}-{neck_init}-{schedule}-s{seed}"
    tags: list[str] = field(default_factory=list)
    offline: bool = False
    log_env: bool = False
    log_model: bool = False
    log_images: int = 0
    probe_timeout_s: float = 2.5


@dataclass
class RangeConf:
    low: float = 1e-4
    high: float = 1e-2
    log: bool = True


@dataclass
class TuneConf:
    """conf/tune.yaml: the Optuna search of experiments/tune.py (ignored by training runs)."""
    n_trials: int = 8
    metric: str = "map"                 # a summary.json metric to maximise
    storage: Optional[str] = None       # null: sqlite in the tune dir; an RDB URL; or journal:<path>
    study_name: Optional[str] = None    # null: lr-<backbone>
    pruner: str = "median"              # median | none
    warmup_epochs: int = 3              # epochs before the pruner may stop a trial
    sampler_seed: int = 0
    lr0: RangeConf = field(default_factory=lambda: RangeConf(3e-4, 1e-2, True))
    backbone_lr_mult: Optional[RangeConf] = None
    # Several workers on one study (experiments/tune.py): in an RDB storage (the default sqlite
    # too) a running trial records a heartbeat; one silent for grace_period s is dead: failed,
    # and retried in its run directory. Journal storages record none (see single_worker).
    heartbeat_interval: int = 30        # s between a running trial's heartbeats
    grace_period: int = 120             # s without a heartbeat before a RUNNING trial is dead (> interval)
    max_retry: Optional[int] = None     # retries of a dead trial; null: no limit
    single_worker: bool = False         # you promise no other worker is on this study: every RUNNING
                                        # trial at start is dead, failed and retried at once


@dataclass
class Config:
    model: ModelConf = field(default_factory=ModelConf)
    schedule: ScheduleConf = field(default_factory=ScheduleConf)
    optimizer: OptimizerConf = field(default_factory=OptimizerConf)
    data: DataConf = field(default_factory=DataConf)
    train: TrainConf = field(default_factory=TrainConf)  # type: ignore[valid-type]
    logger: LoggerConf = field(default_factory=LoggerConf)
    tune: TuneConf = field(default_factory=TuneConf)
    hyp: dict[str, float] = field(default_factory=dict)   # overrides of hyp.scratch-low (loss, augmentation)
    seed: int = 0


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)
    # the hydra/launcher options conf/cluster/*.yaml select (composition needs them even
    # when Hydra's plugin scan cannot see hydra_plugins/, e.g. an older editable install)
    from experiments.launchers.hydra_conf import register_launcher_configs

    register_launcher_configs()
