"""Structured config of conf/: `train` is yolo_core's TrainConfig itself, field for field.

conf/ groups (model/backbone, model/neck_init, schedule, optimizer, data) fill `train.*`
fields by TrainConfig's own names, so a setting has one name from the command line to
last.pt (`train.hyp.lr0`, `train.backbone_lr_mult`, `train.init_weights`, `train.data`)
and its default is written once, in TrainConfig (hyp: yolo_core/hyp.py). OmegaConf checks
every override's key and type; TrainConfig.validate its value and files.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from yolo_core.hyp import SCRATCH_LOW
from yolo_core.train.config import TrainConfig

# TrainConfig fields an entry point sets (the run directory and its labels), not the config
SET_BY_ENTRY_POINT = ("out_dir", "run_name", "axes")


def structured_node(cls: type, exclude: tuple[str, ...] = (), name: str | None = None) -> type:
    """A dataclass of yolo_core as OmegaConf takes it: the same fields, types and defaults
    (OmegaConf reads Optional[X], not X | None), less `exclude` (set by the entry point)."""
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        typ = hints[f.name]
        args = typing.get_args(typ)
        if isinstance(typ, types.UnionType) and type(None) in args:
            typ = Optional[next(a for a in args if a is not type(None))]
        default = field(default=f.default) if f.default is not dataclasses.MISSING else \
            field(default_factory=f.default_factory)  # type: ignore[arg-type]
        fields.append((f.name, typ, default))
    return dataclasses.make_dataclass(name or f"{cls.__name__}Node", fields)


TrainConf = structured_node(TrainConfig, SET_BY_ENTRY_POINT, "TrainConf")


@dataclass
class PathsConf:
    """Files that options of conf/ groups point at, from the environment unless given here
    (`paths.yolov5s_weights=/data/yolov5s.pt`). They are not settings: a group copies one
    into the train field it fills (neck_init=yolov5s: train.init_weights), so a grid over
    neck_init still gives its random jobs no weights. An unset one fails only the jobs that
    use it (`${required:...}` there), before anything is launched (exit 2)."""
    yolov5s_weights: Optional[str] = "${oc.env:YOLOV5S_WEIGHTS,null}"   # official yolov5s.pt (model/neck_init=yolov5s)
    # timm file or hub tag; default: the study's ImageNet-22k-then-1k trunk (from the hub, or its
    # local cache on an offline node: else the job is refused). null: a random trunk, on request only
    convnext_weights: Optional[str] = "${oc.env:CONVNEXT_WEIGHTS,convnext_tiny.in12k_ft_in1k}"
    coco_yaml: str = "${oc.env:COCO_YAML,data/coco.yaml}"      # COCO in YOLOv5's layout (data=coco)


@dataclass
class RecipeConf:
    """The optimizer a backbone's own recipe recommends: conf/model/backbone/*.yaml fill it,
    and only optimizer=backbone (conf/optimizer/backbone.yaml) copies it into train, so a
    grid can make the optimizer follow the backbone. Defaults: YOLOv5's hyp.scratch-low SGD."""
    optimizer: str = "sgd"
    lr0: float = SCRATCH_LOW["lr0"]
    momentum: float = SCRATCH_LOW["momentum"]
    weight_decay: float = SCRATCH_LOW["weight_decay"]
    warmup_bias_lr: float = SCRATCH_LOW["warmup_bias_lr"]


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
    study_name: Optional[str] = None    # null: lr-<backbone axis>
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
    train: TrainConf = field(default_factory=TrainConf)  # type: ignore[valid-type]
    recipe: RecipeConf = field(default_factory=RecipeConf)
    paths: PathsConf = field(default_factory=PathsConf)
    logger: LoggerConf = field(default_factory=LoggerConf)
    tune: TuneConf = field(default_factory=TuneConf)


def required(value: Any, what: str) -> Any:
    """`${required:${paths.x},"what to give"}`: a group option that cannot work without a file."""
    if value is None:
        raise ValueError(f"this option needs {what}")
    return value


def register_configs() -> None:
    OmegaConf.register_new_resolver("required", required, replace=True)
    ConfigStore.instance().store(name="schema", node=Config)
    # the hydra/launcher options conf/cluster/*.yaml select (composition needs them even
    # when Hydra's plugin scan cannot see hydra_plugins/, e.g. an older editable install)
    from experiments.launchers.hydra_conf import register_launcher_configs

    register_launcher_configs()
