"""Model facts: parameter counts and GFLOPs.

FLOPs convention: torch.utils.flop_counter counts 2 FLOPs per multiply-accumulate of
convolutions and matrix products (the same "GFLOPs = 2 x MACs" YOLOv5 prints from
thop); normalisation, activations, pooling and additions are not counted. So yolov5s
at 640 counts 16.4 GFLOPs (official: 16.5 fused, 16.6 unfused incl. BN).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def gflops(module: nn.Module, imgsz: int | tuple[int, int] = 640, inputs: torch.Tensor | None = None) -> float:
    """GFLOPs (2 x MACs) of one forward of a 1x3xHxW image in eval mode.

    Counted on a copy of the module on the meta device: FLOPs depend only on shapes, and a
    real forward at 640 costs seconds of a CPU run's start-up (falls back to a real forward
    for a module that cannot run on meta)."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    if inputs is None:
        try:
            meta = copy.deepcopy(module).to("meta")
            return _count(meta, torch.zeros(1, 3, h, w, device="meta"))
        except Exception:  # e.g. a data-dependent op (.item()) somewhere in the forward
            pass
    p = next(module.parameters())
    x = torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype) if inputs is None else inputs
    return _count(module, x)


def _count(module: nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode  # lazy: it imports triton (~0.15 s)

    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            module(x)
    finally:
        module.train(was_training)
    return counter.get_total_flops() / 1e9


def model_facts(model: nn.Module, imgsz: int = 640) -> dict[str, float | int]:
    """params and GFLOPs of the whole detector and of its backbone (trunk + channel adapters)."""
    backbone = nn.Sequential(model.backbone, model.adapter)
    return {
        "params": count_params(model),
        "gflops": gflops(model, imgsz),
        "backbone_params": count_params(backbone),
        "backbone_gflops": gflops(backbone, imgsz),
        "imgsz": imgsz,
    }
