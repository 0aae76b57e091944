"""Composed Hydra config -> yolo_core.TrainConfig (the only place that knows both)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from yolo_core.hyp import SCRATCH_LOW
from yolo_core.train.config import ConfigError, TrainConfig
from yolo_core.train.identity import prelaunch_differences


def to_train_config(cfg: DictConfig, out_dir: str, run_name: str | None = None) -> TrainConfig:
    c: Any = OmegaConf.to_container(cfg, resolve=True)
    bb, ni, sch, opt, data, tr = (c["model"]["backbone"], c["model"]["neck_init"], c["schedule"],
                                  c["optimizer"], c["data"], c["train"])
    is_yolov5 = bb["model"].startswith("yolov5")
    model_kwargs = {} if is_yolov5 else {"neck": bb["neck"], "pretrained": bb["pretrained"],
                                         "drop_path_rate": bb["drop_path_rate"]}
    hyp = dict(SCRATCH_LOW)
    hyp.update({k: sch[k] for k in ("lrf", "warmup_epochs", "warmup_momentum")})
    hyp.update({k: opt[k] for k in ("lr0", "momentum", "weight_decay", "warmup_bias_lr")})
    hyp.update(c.get("hyp") or {})
    if ni["name"] != "random" and not ni["weights"]:
        raise ConfigError(f"model/neck_init={ni['name']} needs model.neck_init.weights: the path of an official "
                         f"YOLOv5 checkpoint (e.g. yolov5s.pt)")
    # the option names of the groups label the run; the rest of its axes are derived (TrainConfig.run_axes),
    # the data label too when data.path was given without a data.name of its own
    axes = {"backbone": bb["name"], "neck_init": ni["name"], "schedule": sch["name"], "optimizer": opt["name"]}
    if not (data["path"] and data["name"] == "synthetic"):
        axes["data"] = data["name"]
    return TrainConfig(
        out_dir=out_dir, run_name=run_name, axes=axes,
        model=bb["model"], model_kwargs=model_kwargs,
        init_weights=ni["weights"] if ni["name"] != "random" else None,
        init_scope="all" if is_yolov5 else "neck_head",
        init_min_transfer=ni["min_transfer"], max_image_pixels=data["max_image_pixels"],
        data="synthetic" if data["name"] == "synthetic" and not data["path"] else data["path"],
        synthetic=data["synthetic"], cache=data["cache"], optimizer=opt["name"], schedule=sch["name"], hyp=hyp,
        warmup_min_iters=sch["warmup_min_iters"], backbone_lr_mult=bb["lr_mult"], layer_decay=bb["layer_decay"],
        freeze_backbone_epochs=bb["freeze_epochs"], seed=c["seed"], **tr,
    ).validate()


def skippable(job_cfg: DictConfig, run_dir: Path, summary: dict[str, Any],
              converted: TrainConfig | None = None) -> tuple[bool, str]:
    """Whether a launcher may skip a job whose run_dir holds this completed summary: only when
    the stored identity agrees with the job's config in everything known before the run
    starts. Otherwise (another config, no identity, a config that does not convert) the job
    runs and the trainer decides with the whole identity: skip, or refuse naming the keys.
    converted: the job's TrainConfig when the caller has built it already."""
    stored = (summary.get("identity") or {}).get("config")
    if not stored:
        return False, "no run identity recorded"
    try:
        if converted is None:
            task = copy.deepcopy(job_cfg)
            with read_write(task), open_dict(task):
                task.pop("hydra", None)
            converted = to_train_config(task, out_dir=str(run_dir))
        diff = prelaunch_differences(stored, converted)
    except Exception as e:  # noqa: BLE001 - the job itself will report it
        return False, f"{type(e).__name__}: {e}"
    return (not diff), "; ".join(diff)
