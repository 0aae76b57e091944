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
    axes = {"backbone": bb["name"], "neck_init": ni["name"], "schedule": sch["name"], "optimizer": opt["name"],
            "seed": c["seed"], "data": data["name"], "epochs": tr["epochs"], "imgsz": tr["imgsz"],
            "batch": tr["batch"], "lr0": opt["lr0"], "lrf": sch["lrf"], "backbone_lr_mult": bb["lr_mult"]}
    return TrainConfig(
        out_dir=out_dir, run_name=run_name, axes=axes,
        model=bb["model"], model_kwargs=model_kwargs,
        init_weights=ni["weights"] if ni["name"] != "random" else None,
        init_scope="all" if is_yolov5 else "neck_head",
        init_min_transfer=ni["min_transfer"], max_image_pixels=data["max_image_pixels"],
        data="synthetic" if data["name"] == "synthetic" and not data["path"] else data["path"],
        synthetic=data["synthetic"], cache=data["cache"],
        imgsz=tr["imgsz"], batch_size=tr["batch"], workers=tr["workers"], epochs=tr["epochs"],
        optimizer=opt["name"], schedule=sch["name"], hyp=hyp, label_smoothing=tr["label_smoothing"],
        warmup_min_iters=sch["warmup_min_iters"], backbone_lr_mult=bb["lr_mult"], layer_decay=bb["layer_decay"],
        freeze_backbone_epochs=bb["freeze_epochs"], ema=tr["ema"], patience=tr["patience"],
        max_nonfinite_steps=tr["max_nonfinite_steps"], noautoanchor=tr["noautoanchor"],
        round_init_fp16=tr["round_init_fp16"],
        device=tr["device"], amp=tr["amp"], channels_last=tr["channels_last"], seed=c["seed"],
        coco_backend=tr["coco_backend"], resume=tr["resume"],
    ).validate()


def skippable(job_cfg: DictConfig, run_dir: Path, summary: dict[str, Any]) -> tuple[bool, str]:
    """Whether a launcher may skip a job whose run_dir holds this completed summary: only when
    the stored identity agrees with the job's config in everything known before the run
    starts. Otherwise (another config, no identity, a config that does not convert) the job
    runs and the trainer decides with the whole identity: skip, or refuse naming the keys."""
    stored = (summary.get("identity") or {}).get("config")
    if not stored:
        return False, "no run identity recorded"
    task = copy.deepcopy(job_cfg)
    with read_write(task), open_dict(task):
        task.pop("hydra", None)
    try:
        diff = prelaunch_differences(stored, to_train_config(task, out_dir=str(run_dir)))
    except Exception as e:  # noqa: BLE001 - the job itself will report it
        return False, f"{type(e).__name__}: {e}"
    return (not diff), "; ".join(diff)
