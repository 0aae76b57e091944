"""Optimizer parameter groups: YOLOv5's three groups, extended for pretrained trunks.

YOLOv5 (smart_optimizer) splits parameters into [0] all biases (no decay; warmed up from
warmup_bias_lr), [1] other weights (decay) and [2] weights of norm layers (no decay). For
the official models this module gives exactly that. A timm trunk adds what its recipes
need: no decay on every 1-D parameter and on ConvNeXt's layer-scale `gamma` (YOLOv5's
rule would decay gammas, a known pitfall), a learning-rate multiplier for the backbone
and optionally layer-wise decay (deeper-from-the-top stages learn slower), so each
(lr_scale) region gets its own bias / decay / no-decay groups.
"""
from __future__ import annotations

from torch import nn

_KINDS = ("bias", "decay", "no_decay")  # YOLOv5's order: g0 biases, g1 weights, g2 norm weights


def _is_norm(module: nn.Module) -> bool:
    """YOLOv5's test (nn classes whose name contains 'Norm'), subclasses included."""
    return any("Norm" in c.__name__ for c in type(module).__mro__ if c is not nn.Module)


def _kind(module: nn.Module, pname: str, p: nn.Parameter) -> str:
    if pname == "bias":
        return "bias"
    if _is_norm(module) or p.ndim <= 1 or pname == "gamma":
        return "no_decay"
    return "decay"


def _backbone_stages(backbone: nn.Module) -> tuple[dict[str, int], int]:
    """Stage (0 = nearest the input) of each backbone parameter, and the number of stages.

    A backbone may say (TimmBackbone.param_stages); otherwise each top-level child with
    parameters is a stage in definition order (CSPDarknet: stem, dark2, ..., dark5).
    """
    if hasattr(backbone, "param_stages"):
        return backbone.param_stages()
    children = [n for n, c in backbone.named_children() if any(True for _ in c.parameters())]
    stages = {pname: children.index(pname.split(".")[0]) for pname, _ in backbone.named_parameters()}
    return stages, len(children)


def build_param_groups(model: nn.Module, weight_decay: float, *, backbone_lr_mult: float = 1.0,
                       layer_decay: float | None = None) -> list[dict]:
    """Parameter groups for torch.optim: each {params, weight_decay, lr_scale, name, bias_warmup}.

    lr_scale multiplies the scheduled lr; bias_warmup marks the groups the trainer warms up
    from warmup_bias_lr (the others from 0), as YOLOv5 does for its group 0. Backbone
    parameters get lr_scale backbone_lr_mult, times layer_decay ** (stages above them)
    when layer_decay is given. The region at lr_scale 1 (YOLO's own layers, and the
    backbone when it has no multiplier) comes first, then backbone regions from the input
    up; within a region groups follow YOLOv5's [bias, decay, no_decay]; empty groups are
    dropped. Frozen parameters (requires_grad False) are left out.
    """
    backbone = getattr(model, "backbone", None)
    stages, n_stages = _backbone_stages(backbone) if backbone is not None and layer_decay is not None else ({}, 0)
    backbone_ids = {id(p): n for n, p in backbone.named_parameters()} if backbone is not None else {}

    def region(p: nn.Parameter) -> tuple[str, float]:
        if id(p) not in backbone_ids:
            return "", 1.0
        if layer_decay is None:
            return ("backbone", backbone_lr_mult) if backbone_lr_mult != 1.0 else ("", 1.0)
        stage = stages[backbone_ids[id(p)]]
        return f"backbone.stage{stage}", backbone_lr_mult * layer_decay ** (n_stages - 1 - stage)

    groups: dict[tuple[str, str], dict] = {}
    order: list[tuple[str, float]] = []
    seen: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            reg = region(p)
            if reg not in order:
                order.append(reg)
            kind = _kind(module, pname, p)
            groups.setdefault((reg[0], kind), {"params": [], "lr_scale": reg[1]})["params"].append(p)

    out = []
    order.sort(key=lambda r: r[0] != "")  # YOLO's own layers first: groups 0-2 stay YOLOv5's
    for reg_name, lr_scale in order:
        for kind in _KINDS:
            g = groups.get((reg_name, kind))
            if g is None or not g["params"]:
                continue
            out.append({"params": g["params"], "weight_decay": weight_decay if kind == "decay" else 0.0,
                        "lr_scale": lr_scale, "name": f"{reg_name}.{kind}" if reg_name else kind,
                        "bias_warmup": kind == "bias"})
    return out
