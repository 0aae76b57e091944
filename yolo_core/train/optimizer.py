"""Optimizer construction from parameter groups (see yolo_core.optim.build_param_groups).

Groups carry `lr_scale` (backbone multiplier, layer decay) and `bias_warmup` (warmed up
from warmup_bias_lr like YOLOv5's bias group); the trainer sets each group's lr every
iteration as lr0 * lr_scale * schedule, so `initial_lr` here is lr0 * lr_scale.
"""
from __future__ import annotations

import torch

OPTIMIZERS = ("sgd", "adamw", "adam")


def build_optimizer(groups: list[dict], name: str, lr0: float, momentum: float) -> torch.optim.Optimizer:
    """SGD(nesterov) or Adam/AdamW with betas (momentum, 0.999), as smart_optimizer."""
    name = name.lower()
    param_groups = []
    for g in groups:
        pg = {k: v for k, v in g.items() if k != "params"}
        pg["params"] = list(g["params"])
        pg["initial_lr"] = lr0 * g.get("lr_scale", 1.0)
        pg["lr"] = pg["initial_lr"]
        param_groups.append(pg)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr0, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr0, betas=(momentum, 0.999), weight_decay=0.0)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr0, betas=(momentum, 0.999))
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
