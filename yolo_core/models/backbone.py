"""The backbone contract: what any backbone must give the YOLO neck.

A backbone is an nn.Module whose forward(x) takes a (B, 3, H, W) RGB batch in 0..1
and returns [P3, P4, P5], the feature maps at strides 8, 16 and 32, and which states
their channels in `out_channels`. That is all the neck needs, so a new backbone is one
new class (compare timm's `features_only` contract, which the timm adapter wraps).
"""
from __future__ import annotations

import torch
from torch import nn

STRIDES: tuple[int, int, int] = (8, 16, 32)


class Backbone(nn.Module):
    """Base class: subclasses set `out_channels` and implement forward -> [P3, P4, P5]."""

    out_channels: tuple[int, int, int]
    strides: tuple[int, int, int] = STRIDES

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
