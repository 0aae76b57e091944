"""Model EMA as the official ModelEMA: d(u) = decay * (1 - exp(-u / tau)), u = optimizer steps.

Every floating-point state-dict entry is averaged, buffers (BN statistics) included.
"""
from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0):
        self.ema = deepcopy(model).eval()
        self.updates = updates
        self.decay_max, self.tau = decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def decay(self, updates: int) -> float:
        return self.decay_max * (1 - math.exp(-updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay(self.updates)
        msd = model.state_dict()
        pairs = [(v, msd[k]) for k, v in self.ema.state_dict().items() if v.dtype.is_floating_point]
        ema_t = [e for e, _ in pairs]
        model_t = [m.detach() for _, m in pairs]
        torch._foreach_mul_(ema_t, d)
        torch._foreach_add_(ema_t, model_t, alpha=1 - d)

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
