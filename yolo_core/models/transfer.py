"""Transfer pretrained weights into a detector by name and shape, and say what moved.

Two scopes make the study's neck_init axis: "all" is the seed's baseline (a COCO-trained
YOLOv5s fine-tuned whole), "neck_head" gives a timm-backbone model the same COCO-trained
neck and head while its trunk keeps its own (ImageNet) weights and the adapters stay
random. As the official train.py (intersect_dicts, "Transferred X/Y items"), keys match
by name and shape; the anchors buffer is never transferred (YOLOv5 #459: anchors belong
to the dataset, AutoAnchor may have changed them). When the class count differs, the
head's box and objectness outputs are still copied and only the class rows keep their
initialisation, so a 3-class fine-tune starts with a COCO-trained localiser.

A run labelled neck_init=yolov5s must have started from those weights, so a transfer is
checked (TransferReport.check): of the tensors the scope expects (its floating-point
tensors, the anchors excepted: 348 for yolov5s with scope all, the neck and head for
neck_head), at least min_fraction must transfer, by default all of them. A class-count
change does not count against it (its head tensors transfer box/obj rows, "partial");
anything else that fails to match means another model's file: an unrelated file
transfers 0 of them, a yolov5m file into yolov5s only its 3 head biases (whose shape
does not depend on the width), which the old count of all tensors made 60/349 by also
counting the 57 BatchNorm step counters.
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
    expected: list[str] = field(default_factory=list)  # what must transfer (see the module docstring)

    @property
    def num_transferred(self) -> int:
        return len(self.transferred)

    @property
    def num_expected_transferred(self) -> int:
        done = set(self.transferred)
        return sum(k in done for k in self.expected)

    @property
    def fraction(self) -> float:
        return self.num_expected_transferred / len(self.expected) if self.expected else 0.0

    def reasons(self, keys: list[str] | None = None) -> dict[str, int]:
        """Skip counts by reason (the text before ':'), over `keys` (default: all skipped)."""
        out: dict[str, int] = {}
        for k in (self.skipped if keys is None else keys):
            if k in self.skipped:
                why = self.skipped[k].split(":")[0]
                out[why] = out.get(why, 0) + 1
        return dict(sorted(out.items()))

    def summary(self) -> str:
        extra = "".join(f", {n} {r}" for r, n in self.reasons().items())
        part = f", {len(self.partial)} head tensors box/obj rows only" if self.partial else ""
        return (f"transferred {self.num_transferred}/{self.total} tensors (scope {self.scope}{part}{extra}); "
                f"{self.num_expected_transferred}/{len(self.expected)} of the weights the scope expects")

    def to_dict(self, source: str | None = None, min_fraction: float | None = None) -> dict:
        """A JSON-able record for summary.json (weights_transfer): counts, reasons, examples."""
        missed = [k for k in self.expected if k not in set(self.transferred)]
        examples: dict[str, list[str]] = {}
        for k in missed:
            reason, _, detail = self.skipped.get(k, "?").partition(":")
            ex = examples.setdefault(reason, [])
            if len(ex) < 3:
                ex.append(f"{k}: {detail.strip() or reason}")
        return {"source": None if source is None else str(source), "scope": self.scope,
                "expected": len(self.expected), "transferred": self.num_expected_transferred,
                "fraction": round(self.fraction, 4), "min_fraction": min_fraction,
                "partial_class_rows": len(self.partial), "not_transferred": self.reasons(missed),
                "examples": examples, "model_tensors": self.total, "model_tensors_transferred": self.num_transferred,
                "skipped_all": self.reasons(), "unused_source_tensors": len(self.unused)}

    def check(self, min_fraction: float, source: str | None = None) -> None:
        """Raise WeightsTransferError when less than min_fraction of the expected tensors moved."""
        n, k = len(self.expected), self.num_expected_transferred
        if n and k >= min_fraction * n - 1e-9:
            return
        rec = self.to_dict(source, min_fraction)
        why = "; ".join(f"{c} {r} (e.g. {rec['examples'][r][0]})" for r, c in rec["not_transferred"].items())
        layers = "neck and head" if self.scope == "neck_head" else "layers"
        raise WeightsTransferError(
            f"init_weights {source}: only {k} of the {n} tensors scope {self.scope!r} expects transferred "
            f"({self.fraction:.0%} < init_min_transfer={min_fraction:g}): {why or 'nothing to transfer'}. The file "
            f"does not hold this model's {layers} (another YOLOv5 size, or an unrelated checkpoint?): give the "
            f"matching weights (e.g. the official yolov5s.pt for yolov5s or neck=yolov5s), or lower "
            f"init_min_transfer to accept a partial transfer (0 accepts any)")


class WeightsTransferError(ValueError):
    """init_weights transferred less than the configured fraction of what the scope expects."""


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
    TransferReport and logs its summary ("transferred X/Y tensors ..."); the caller
    decides with report.check(min_fraction) whether that is enough.
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
        if dst.is_floating_point() and not key.endswith("anchors"):
            report.expected.append(key)
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
