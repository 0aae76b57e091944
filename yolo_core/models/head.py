"""YOLOv5's Detect head: one 1x1 conv per level, anchors, the decode and the bias prior."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class Detect(nn.Module):
    """Train mode returns the raw maps [(B, na, H/s, W/s, 5+nc)]; eval mode returns
    (decoded (B, N, 5+nc) in input pixels, raw maps), as the official Detect does.

    `anchors` is a buffer in stride units (official layout and state-dict key), so that
    AutoAnchor and checkpoints can change it without touching code.
    """

    def __init__(self, nc: int, anchors_px: Sequence[Sequence[float]], in_channels: Sequence[int],
                 strides: Sequence[int]):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors_px)
        self.na = len(anchors_px[0]) // 2
        stride = torch.tensor(strides, dtype=torch.float32)
        self.register_buffer("stride", stride, persistent=False)
        anchors = torch.tensor(anchors_px, dtype=torch.float32).view(self.nl, -1, 2)
        self.register_buffer("anchors", anchors / stride.view(-1, 1, 1))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in in_channels)
        self.initialize_biases()

    @torch.no_grad()
    def initialize_biases(self) -> None:
        """Official prior: 8 objects per 640 image for objectness, 0.6/nc for classes."""
        for conv, s in zip(self.m, self.stride.tolist()):
            b = conv.bias.view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            b[:, 5:5 + self.nc] += math.log(0.6 / (self.nc - 0.99999))

    def forward(self, feats: list[torch.Tensor]):
        raw = []
        for conv, x in zip(self.m, feats):
            bs, _, ny, nx = x.shape
            raw.append(conv(x).view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        if self.training:
            return raw
        return torch.cat([self.decode(i, p) for i, p in enumerate(raw)], 1), raw

    def decode(self, i: int, p: torch.Tensor) -> torch.Tensor:
        """Official decode: xy = (2 sigmoid - 0.5 + cell) * stride, wh = (2 sigmoid)^2 * anchor."""
        bs, na, ny, nx, no = p.shape
        grid, anchor_grid = self._grid(i, nx, ny, p.dtype, p.device)
        xy, wh, conf = p.sigmoid().split((2, 2, self.nc + 1), 4)
        xy = (xy * 2 + grid) * self.stride[i]
        wh = (wh * 2) ** 2 * anchor_grid
        return torch.cat((xy, wh, conf), 4).view(bs, na * ny * nx, no)

    def _grid(self, i: int, nx: int, ny: int, dtype: torch.dtype, device: torch.device):
        y = torch.arange(ny, device=device, dtype=dtype)
        x = torch.arange(nx, device=device, dtype=dtype)
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        shape = (1, self.na, ny, nx, 2)
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5
        anchor_grid = (self.anchors[i] * self.stride[i]).to(dtype).view(1, self.na, 1, 1, 2).expand(shape)
        return grid, anchor_grid
