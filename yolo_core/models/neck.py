"""YOLOv5's PAN neck (official layers 10-23)."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import C3, Conv
from .variants import YOLOv5Size


class YOLOv5PAN(nn.Module):
    """Top-down then bottom-up path aggregation over [P3, P4, P5].

    `in_channels` are the channels this neck expects from a backbone; for the official
    model they are size.channels(256/512/1024), and any other backbone is aligned to
    them by a ChannelAdapter so that the neck stays exactly YOLOv5's.
    """

    def __init__(self, size: YOLOv5Size):
        super().__init__()
        ch, n = size.channels, size.repeats(3)
        c3, c4, c5 = ch(256), ch(512), ch(1024)
        self.in_channels = (c3, c4, c5)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_p5 = Conv(c5, ch(512), 1, 1)                      # 10
        self.topdown_p4 = C3(ch(512) + c4, ch(512), n, False)         # 13
        self.reduce_p4 = Conv(ch(512), ch(256), 1, 1)                 # 14
        self.out_p3 = C3(ch(256) + c3, ch(256), n, False)             # 17
        self.down_p3 = Conv(ch(256), ch(256), 3, 2)                   # 18
        self.out_p4 = C3(ch(256) + ch(256), ch(512), n, False)        # 20
        self.down_p4 = Conv(ch(512), ch(512), 3, 2)                   # 21
        self.out_p5 = C3(ch(512) + ch(512), ch(1024), n, False)       # 23
        self.out_channels = (ch(256), ch(512), ch(1024))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = feats
        r5 = self.reduce_p5(p5)
        r4 = self.reduce_p4(self.topdown_p4(torch.cat((self.upsample(r5), p4), 1)))
        o3 = self.out_p3(torch.cat((self.upsample(r4), p3), 1))
        o4 = self.out_p4(torch.cat((self.down_p3(o3), r4), 1))
        o5 = self.out_p5(torch.cat((self.down_p4(o4), r5), 1))
        return [o3, o4, o5]
