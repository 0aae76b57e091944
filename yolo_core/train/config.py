"""TrainConfig: everything one training run needs, as a plain dataclass (no Hydra).

Defaults are the official YOLOv5 train.py defaults with hyp.scratch-low; the embedded
dataset's own defaults live with the configs that select it (conf/data/synthetic.yaml).
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

from ..hyp import SCRATCH_LOW
from .optimizer import OPTIMIZERS
from .schedule import SCHEDULES


# Valid values, as (low, high, low included, high included). A value outside fails at once
# (a NaN is outside every range), before any job of a sweep is launched.
_INF = math.inf
_PROB = (0.0, 1.0, True, True)
_NONNEG = (0.0, _INF, True, False)
HYP_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr0": (0.0, _INF, False, False), "lrf": _NONNEG, "momentum": (0.0, 1.0, True, False),
    "weight_decay": _NONNEG, "warmup_epochs": _NONNEG, "warmup_momentum": (0.0, 1.0, True, False),
    "warmup_bias_lr": _NONNEG, "box": _NONNEG, "cls": _NONNEG, "obj": _NONNEG, "cls_pw": (0.0, _INF, False, False),
    "obj_pw": (0.0, _INF, False, False), "iou_t": _PROB, "anchor_t": (1.0, _INF, True, False), "fl_gamma": _NONNEG,
    "hsv_h": _PROB, "hsv_s": _PROB, "hsv_v": _PROB, "degrees": (0.0, 180.0, True, True), "translate": _PROB,
    "scale": (0.0, 1.0, True, False), "shear": (0.0, 90.0, True, False), "perspective": (0.0, 0.001, True, True),
    "flipud": _PROB, "fliplr": _PROB, "mosaic": _PROB, "mixup": _PROB, "copy_paste": _PROB,
}
FIELD_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "workers": _NONNEG, "label_smoothing": (0.0, 1.0, True, False), "nbs": (1.0, _INF, True, False),
    "warmup_min_iters": _NONNEG, "clip_grad": (0.0, _INF, False, False), "conf_thres": _PROB,
    "iou_thres": _PROB, "max_det": (1.0, _INF, True, False),
}


def _range_problems(values: dict[str, Any], prefix: str,
                    ranges: dict[str, tuple[float, float, bool, bool]]) -> list[str]:
    out = []
    for key, (low, high, low_in, high_in) in ranges.items():
        v = values.get(key)
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) and (
            (low <= v if low_in else low < v) and (v <= high if high_in else v < high))
        if not ok:
            interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
            out.append(f"{prefix}{key}={v!r} must be a number in {interval}")
    return out


class ConfigError(ValueError):
    """A TrainConfig that cannot be trained as given (a value out of range, a missing file)."""


@dataclass
class TrainConfig:
    out_dir: str = "runs/train"
    # model
    model: str = "yolov5s"                       # a registered name or any timm features_only model
    model_kwargs: dict[str, Any] = field(default_factory=dict)   # e.g. neck, pretrained, drop_path_rate
    init_weights: str | None = None              # checkpoint to initialise from (official yolov5*.pt or ours)
    init_scope: str = "all"                      # all | neck_head
    # data
    data: str = "synthetic"                      # "synthetic" or a dataset yaml
    synthetic: dict[str, Any] = field(default_factory=dict)      # params of the embedded set
    imgsz: int = 640
    batch_size: int = 16
    workers: int = 8
    cache: str | None = None                     # None | ram | disk
    # optimisation
    epochs: int = 100
    optimizer: str = "sgd"
    schedule: str = "linear"
    hyp: dict[str, float] = field(default_factory=lambda: dict(SCRATCH_LOW))
    label_smoothing: float = 0.0
    nbs: int = 64                                # nominal batch size (gradient accumulation)
    warmup_min_iters: int = 100
    backbone_lr_mult: float = 1.0
    layer_decay: float | None = None
    freeze_backbone_epochs: int = 0
    clip_grad: float = 10.0
    ema: bool = True
    patience: int = 100                          # epochs without a better fitness before stopping; 0: never
    max_nonfinite_steps: int = 20                # consecutive skipped (non-finite) optimizer steps before failing
    noautoanchor: bool = False                   # true: keep the model's anchors (official --noautoanchor)
    round_init_fp16: bool = True                 # round starting weights through fp16 (official model.half().float())
    # runtime
    device: str = "auto"                         # auto | cpu | cuda | cuda:N
    amp: bool | None = None                      # None: on for CUDA (as YOLOv5), off on CPU
    amp_dtype: str = "float16"                   # float16 | bfloat16
    channels_last: bool = False                  # NHWC layout: the usual choice for AMP on GPUs; on this
                                                 # CPU +6..17% at 320 px, -23..+21% at 640 (benchmarks/RESULTS.md)
    compile: bool = False                        # torch.compile the training forward (GPU; slow to start)
    seed: int = 0
    deterministic: bool = True
    resume: bool = True                          # continue from out_dir/checkpoints/last.pt if present
    # evaluation
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    final_iou_thres: float | None = None         # None: 0.65 on COCO, else iou_thres (as YOLOv5)
    max_det: int = 300
    val_batch_size: int | None = None            # None: 2 x batch_size
    coco_backend: str = "pycocotools"
    plots: bool = True                           # results.png, confusion matrix, curves, labels.jpg, mosaics
    # input checks
    max_image_pixels: int | None = 89_478_485    # images with more pixels are skipped as corrupt_image
                                                 # (decompression bombs); PIL's MAX_IMAGE_PIXELS; null: no limit
    init_min_transfer: float = 1.0               # fraction of init_scope's weight tensors init_weights must fill
                                                 # (class rows of a new nc excepted); below it the run refuses
    # bookkeeping written into summary.json
    axes: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None

    def validate(self) -> "TrainConfig":
        """Fail before any work with a message naming the field and the valid values."""
        problems = []
        if self.imgsz < 32 or self.imgsz % 32:
            problems.append(f"imgsz={self.imgsz} must be a positive multiple of 32 (the max stride)")
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be >= 1")
        if self.optimizer.lower() not in OPTIMIZERS:
            problems.append(f"optimizer={self.optimizer!r} must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} must be one of {', '.join(SCHEDULES)}")
        unknown = set(self.hyp) - set(SCRATCH_LOW)
        if unknown:
            problems.append(f"unknown hyp keys {sorted(unknown)}; known: {sorted(SCRATCH_LOW)}")
        problems += _range_problems({**SCRATCH_LOW, **self.hyp}, "hyp.", HYP_RANGES)
        problems += _range_problems({k: getattr(self, k) for k in FIELD_RANGES}, "", FIELD_RANGES)
        if self.cache not in (None, "ram", "disk"):
            problems.append(f"cache={self.cache!r} must be null, 'ram' or 'disk'")
        if self.init_scope not in ("all", "neck_head"):
            problems.append(f"init_scope={self.init_scope!r} must be 'all' or 'neck_head'")
        if self.amp_dtype not in ("float16", "bfloat16"):
            problems.append(f"amp_dtype={self.amp_dtype!r} must be 'float16' or 'bfloat16'")
        if not isinstance(self.compile, bool):
            problems.append(f"compile={self.compile!r} must be true or false")
        if self.coco_backend not in ("pycocotools", "faster_coco_eval"):
            problems.append(f"coco_backend={self.coco_backend!r} must be 'pycocotools' or 'faster_coco_eval'")
        if self.patience < 0:
            problems.append(f"patience={self.patience} must be >= 0 (0 disables early stopping)")
        if self.max_nonfinite_steps < 1:
            problems.append(f"max_nonfinite_steps={self.max_nonfinite_steps} must be >= 1")
        if self.backbone_lr_mult <= 0:
            problems.append(f"backbone_lr_mult={self.backbone_lr_mult} must be > 0")
        if self.max_image_pixels is not None and (isinstance(self.max_image_pixels, bool)
                                                  or not isinstance(self.max_image_pixels, int)
                                                  or self.max_image_pixels < 100):
            problems.append(f"max_image_pixels={self.max_image_pixels!r} must be an integer >= 100 (10x10 px, "
                            f"the smallest usable image) or null for no limit")
        if not 0.0 <= self.init_min_transfer <= 1.0:
            problems.append(f"init_min_transfer={self.init_min_transfer} must be in [0, 1] (1: every tensor of "
                            f"init_scope, 0: accept any transfer)")
        from ..models.registry import model_settings

        takes = model_settings(self.model)
        if takes is not None and set(self.model_kwargs) - takes:
            problems.append(f"model_kwargs {sorted(set(self.model_kwargs) - takes)} are not settings of model "
                            f"{self.model!r}; it takes {sorted(takes) or 'none'}")
        if self.data == "synthetic":
            from ..data.synthetic import synthetic_params

            try:
                synthetic_params(self.synthetic)
            except ValueError as e:
                problems.append(f"synthetic: {e}")
        problems += self._file_problems()
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))
        self.hyp = {**SCRATCH_LOW, **self.hyp}
        return self

    def _file_problems(self) -> list[str]:
        """Files the run will open, and a hub tag it will download: checked now, not at the run's start
        on a cluster node."""
        out = []
        if self.data != "synthetic" and not Path(self.data).expanduser().is_file():
            out.append(f"data={self.data!r}: no such dataset yaml")
        if self.init_weights is not None and not Path(self.init_weights).expanduser().is_file():
            out.append(f"init_weights={self.init_weights!r}: no such weights file")
        pretrained = self.model_kwargs.get("pretrained")
        if pretrained not in (None, False):
            from ..models.timm_backbone import resolve_pretrained

            try:
                resolve_pretrained(self.model, pretrained)
            except Exception as e:  # noqa: BLE001 - a missing file, an unknown or unreachable hub tag
                out.append(f"model_kwargs.pretrained={pretrained!r}: {e}")
        return out

    # Settings whose null means "as the official decides"; one place computes each, for the
    # trainer and for the run identity alike.
    def val_batch(self, world_size: int = 1) -> int:
        """val_batch_size, null resolved as the official: twice one process's training batch."""
        return self.val_batch_size or self.batch_size // world_size * 2

    def final_iou(self, coco80: bool) -> float:
        """final_iou_thres, null resolved as the official val after training: 0.65 on COCO
        (its json, 80 classes), else iou_thres."""
        if self.final_iou_thres is not None:
            return self.final_iou_thres
        return 0.65 if coco80 else self.iou_thres

    def run_axes(self) -> dict[str, Any]:
        """The labels a run is named, tagged and tabled by, computed here only: derived from the
        settings (so a Python-API run and a Hydra run of one config get the same labels), then
        self.axes over them (labels a caller adds, e.g. a tune trial number)."""
        size = self.model.removeprefix("yolov5")
        return {"backbone": f"cspdarknet_{size}" if self.model.startswith("yolov5") and size in tuple("nsmlx")
                else self.model,
                "neck_init": "random" if self.init_weights is None else Path(self.init_weights).stem,
                "schedule": self.schedule, "optimizer": self.optimizer, "seed": self.seed,
                "data": self.data if self.data == "synthetic" else Path(self.data).stem,
                "epochs": self.epochs, "imgsz": self.imgsz, "batch_size": self.batch_size,
                "lr0": self.hyp.get("lr0", SCRATCH_LOW["lr0"]), "lrf": self.hyp.get("lrf", SCRATCH_LOW["lrf"]),
                "backbone_lr_mult": self.backbone_lr_mult, **self.axes}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
