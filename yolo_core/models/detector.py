"""The detector: backbone -> (channel adapter) -> neck -> head."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbone import Backbone
from .blocks import Conv, fuse_conv_bn
from .head import Detect


class ChannelAdapter(nn.Module):
    """1x1 Conv+BN+SiLU per level from a backbone's channels to the neck's.

    Levels whose channels already match pass through untouched (the official model has
    no adapter at all), so the neck and head stay exactly YOLOv5's whatever the trunk.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int]):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Identity() if ci == co else Conv(ci, co, 1, 1) for ci, co in zip(in_channels, out_channels)
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [layer(f) for layer, f in zip(self.layers, feats)]


class YOLODetector(nn.Module):
    """A YOLO detector assembled from a Backbone, a neck and a Detect head.

    Train mode: list of raw maps (B, 3, H/s, W/s, 5+nc). Eval mode: (decoded (B, N, 5+nc)
    in input pixels, raw maps). Input: RGB in 0..1, H and W multiples of 32.
    """

    def __init__(self, backbone: Backbone, neck: nn.Module, head: Detect):
        super().__init__()
        self.backbone = backbone
        self.adapter = ChannelAdapter(backbone.out_channels, neck.in_channels)
        self.neck = neck
        self.head = head
        self.max_stride = int(max(backbone.strides))

    @property
    def nc(self) -> int:
        return self.head.nc

    def forward(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        if h % self.max_stride or w % self.max_stride:
            raise ValueError(f"input size {h}x{w} is not a multiple of the max stride {self.max_stride}; "
                             f"pad or resize to e.g. {-(-h // self.max_stride) * self.max_stride}x"
                             f"{-(-w // self.max_stride) * self.max_stride}")
        return self.head(self.neck(self.adapter(self.backbone(x))))

    @torch.no_grad()
    def fuse(self) -> "YOLODetector":
        """Fold BatchNorm into the convs of every YOLO Conv block (inference speed-up)."""
        for m in self.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_bn(m.conv, m.bn)
                del m.bn
                m.forward = m.forward_fused
        return self
