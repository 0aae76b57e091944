"""The documented map between official YOLOv5 state-dict keys and this project's.

The official model is one nn.Sequential, so its keys are `model.{layer}.{rest}`. Here
the same modules live under backbone/neck/head with the official attribute names
inside, so the map is one prefix per layer index:

    model.0        backbone.stem          model.10  neck.reduce_p5
    model.1, 2     backbone.dark2.0, .1   model.13  neck.topdown_p4
    model.3, 4     backbone.dark3.0, .1   model.14  neck.reduce_p4
    model.5, 6     backbone.dark4.0, .1   model.17  neck.out_p3
    model.7, 8, 9  backbone.dark5.0-.2    model.18  neck.down_p3
                                          model.20  neck.out_p4
                                          model.21  neck.down_p4
                                          model.23  neck.out_p5
                                          model.24  head
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

LAYER_PREFIX: dict[int, str] = {
    0: "backbone.stem",
    1: "backbone.dark2.0", 2: "backbone.dark2.1",
    3: "backbone.dark3.0", 4: "backbone.dark3.1",
    5: "backbone.dark4.0", 6: "backbone.dark4.1",
    7: "backbone.dark5.0", 8: "backbone.dark5.1", 9: "backbone.dark5.2",
    10: "neck.reduce_p5", 13: "neck.topdown_p4", 14: "neck.reduce_p4", 17: "neck.out_p3",
    18: "neck.down_p3", 20: "neck.out_p4", 21: "neck.down_p4", 23: "neck.out_p5",
    24: "head",
}
_PREFIX_LAYER = {v: k for k, v in LAYER_PREFIX.items()}
_OFFICIAL = re.compile(r"^model\.(\d+)\.(.+)$")

NECK_LAYERS = range(10, 24)  # official layers that form the neck
HEAD_LAYER = 24


def is_official_key(key: str) -> bool:
    return _OFFICIAL.match(key) is not None


def official_layer(key: str) -> int | None:
    """Layer index of an official key (`model.17.cv1...` -> 17), else None."""
    m = _OFFICIAL.match(key)
    return int(m.group(1)) if m else None


def from_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official `model.N.*` keys to this project's names; other keys pass through."""
    out = {}
    for key, value in state_dict.items():
        m = _OFFICIAL.match(key)
        if m is None:
            out[key] = value
            continue
        layer = int(m.group(1))
        if layer not in LAYER_PREFIX:
            raise KeyError(f"official key {key!r}: layer {layer} has no parameters in YOLOv5 "
                           f"(expected one of {sorted(LAYER_PREFIX)}); is this a YOLOv5 v6/v7 checkpoint?")
        out[f"{LAYER_PREFIX[layer]}.{m.group(2)}"] = value
    return out


def to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of from_official for the keys of an official-architecture model."""
    out = {}
    for key, value in state_dict.items():
        for prefix, layer in _PREFIX_LAYER.items():
            if key.startswith(prefix + "."):
                out[f"model.{layer}.{key[len(prefix) + 1:]}"] = value
                break
        else:
            out[key] = value
    return out
