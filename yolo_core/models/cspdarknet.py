"""YOLOv5's CSPDarknet backbone (official layers 0-9, SPPF included)."""
from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone
from .blocks import C3, SPPF, Conv
from .variants import YOLOv5Size


class CSPDarknet(Backbone):
    """stem (layer 0) and four stages: dark2 (1-2), dark3 (3-4, P3), dark4 (5-6, P4),
    dark5 (7-9, P5 with SPPF)."""

    def __init__(self, size: YOLOv5Size):
        super().__init__()
        ch, rep = size.channels, size.repeats
        self.stem = Conv(3, ch(64), 6, 2, 2)
        self.dark2 = nn.Sequential(Conv(ch(64), ch(128), 3, 2), C3(ch(128), ch(128), rep(3)))
        self.dark3 = nn.Sequential(Conv(ch(128), ch(256), 3, 2), C3(ch(256), ch(256), rep(6)))
        self.dark4 = nn.Sequential(Conv(ch(256), ch(512), 3, 2), C3(ch(512), ch(512), rep(9)))
        self.dark5 = nn.Sequential(Conv(ch(512), ch(1024), 3, 2), C3(ch(1024), ch(1024), rep(3)),
                                   SPPF(ch(1024), ch(1024), 5))
        self.out_channels = (ch(256), ch(512), ch(1024))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.dark3(self.dark2(self.stem(x)))
        p4 = self.dark4(p3)
        p5 = self.dark5(p4)
        return [p3, p4, p5]
