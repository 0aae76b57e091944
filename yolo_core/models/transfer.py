"""Transfer pretrained weights into a detector by name and shape, and say what moved.

Two scopes make the study's neck_init axis: "all" is the seed's baseline (a COCO-trained
YOLOv5s fine-tuned whole), "neck_head" gives a timm-backbone model the same COCO-trained
neck and head while its trunk keeps its own (ImageNet) weights and the adapters stay
random. As the official train.py (intersect_dicts, "Transferred X/Y items"), keys match
by name and shape; the anchors buffer is never transferred (YOLOv5 #459: anchors belong
to the dataset, AutoAnchor may have changed them). When the class count differs, the
head's box and objectness outputs are still copied and only the class rows keep their
initialisation, so a 3-class fine-tune starts with a COCO-trained localiser.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .official_keys import from_official

logger = logging.getLogger(__name__)

SCOPES: dict[str, tuple[str, ...]] = {"all": ("",), "neck_head": ("neck.", "head.")}
_HEAD_CONV = re.compile(r"^head\.m\.\d+\.(weight|bias)$")
_BOX_OBJ = 5  # x, y, w, h, objectness: the first outputs of each anchor's block


@dataclass
class TransferReport:
    """What transfer_weights did: counts, and every key not (fully) transferred with why."""

    scope: str
    transferred: list[str] = field(default_factory=list)
    total: int = 0  # tensors in the model's state dict
    partial: dict[str, str] = field(default_factory=dict)  # transferred, but only box/obj rows
    skipped: dict[str, str] = field(default_factory=dict)  # model key -> reason
    unused: list[str] = field(default_factory=list)  # source keys the model does not have

    @property
    def num_transferred(self) -> int:
        return len(self.transferred)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for why in self.skipped.values():
            reasons[why.split(":")[0]] = reasons.get(why.split(":")[0], 0) + 1
        extra = "".join(f", {n} {r}" for r, n in sorted(reasons.items()))
        part = f", {len(self.partial)} head tensors box/obj rows only" if self.partial else ""
        return f"transferred {self.num_transferred}/{self.total} tensors (scope {self.scope}{part}{extra})"


def _in_scope(key: str, scope: str) -> bool:
    return any(key.startswith(p) for p in SCOPES[scope])


def _box_obj_rows(dst: torch.Tensor, src: torch.Tensor, na: int) -> torch.Tensor | None:
    """Row indices (dst, src) of the box+obj outputs when only the class count differs."""
    if dst.shape[1:] != src.shape[1:] or dst.shape[0] % na or src.shape[0] % na:
        return None
    no_dst, no_src = dst.shape[0] // na, src.shape[0] // na
    if min(no_dst, no_src) <= _BOX_OBJ:
        return None
    a = torch.arange(na).view(-1, 1)
    k = torch.arange(_BOX_OBJ).view(1, -1)
    return torch.stack(((a * no_dst + k).flatten(), (a * no_src + k).flatten()))


@torch.no_grad()
def transfer_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], scope: str = "all") -> TransferReport:
    """Copy matching tensors of `state_dict` (this project's or official key names) into `model`.

    scope "all": the whole model; "neck_head": keys under neck. and head. only. Returns a
    TransferReport and logs its summary ("transferred X/Y tensors ...").
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown transfer scope {scope!r}; choose one of {', '.join(SCOPES)}")
    source = from_official(state_dict)
    target = model.state_dict()
    na = int(getattr(getattr(model, "head", None), "na", 3))
    report = TransferReport(scope=scope, total=len(target))
    for key, dst in target.items():
        if not _in_scope(key, scope):
            report.skipped[key] = "not in scope"
            continue
        if key not in source:
            report.skipped[key] = "missing: not in the source weights"
            continue
        if key.endswith("anchors"):
            report.skipped[key] = "anchors: never transferred (dataset-specific, YOLOv5 #459)"
            continue
        src = source[key]
        if src.shape == dst.shape:
            dst.copy_(src)
            report.transferred.append(key)
            continue
        rows = _box_obj_rows(dst, src, na) if _HEAD_CONV.match(key) else None
        if rows is None:
            report.skipped[key] = f"shape mismatch: model {tuple(dst.shape)}, source {tuple(src.shape)}"
            continue
        dst[rows[0]] = src[rows[1]].to(dst.dtype)
        report.transferred.append(key)
        report.partial[key] = (f"class count differs (source {src.shape[0] // na - _BOX_OBJ}, model "
                               f"{dst.shape[0] // na - _BOX_OBJ}): box/obj rows copied, class rows kept at init")
    report.unused = sorted(set(source) - set(target))
    logger.info(report.summary())
    return report
