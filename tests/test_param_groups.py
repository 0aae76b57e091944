"""Optimizer parameter groups: YOLOv5's exact layout for the official models, and the
no-decay / lr-multiplier / layer-decay rules for timm trunks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from yolo_core import build_param_groups
from yolo_core.models import build_model


@pytest.fixture(scope="module")
def yolov5s():
    return build_model("yolov5s", nc=80)


@pytest.fixture(scope="module")
def convnext():
    return build_model("convnext_atto", nc=3, neck="yolov5n")  # smallest ConvNeXt (gammas, LayerNorms)


def _assert_partition(model: nn.Module, groups: list[dict]) -> None:
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert all(g["params"] for g in groups), "empty group"


def test_yolov5s_is_exactly_yolov5s_three_groups(yolov5s):
    groups = build_param_groups(yolov5s, 5e-4)
    _assert_partition(yolov5s, groups)
    assert [g["name"] for g in groups] == ["bias", "decay", "no_decay"]
    assert [len(g["params"]) for g in groups] == [60, 60, 57]
    assert [sum(p.numel() for p in g["params"]) for g in groups] == [10_269, 7_215_616, 9_504]
    assert [g["weight_decay"] for g in groups] == [0.0, 5e-4, 0.0]
    assert [g["bias_warmup"] for g in groups] == [True, False, False]
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 1.0]
    bn_weights = {id(m.weight) for m in yolov5s.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in groups[2]["params"]} == bn_weights
    assert all(p.ndim == 4 for p in groups[1]["params"])


def test_yolov5s_backbone_multiplier(yolov5s):
    groups = build_param_groups(yolov5s, 5e-4, backbone_lr_mult=0.1)
    _assert_partition(yolov5s, groups)
    backbone = {id(p) for p in yolov5s.backbone.parameters()}
    for g in groups:
        in_backbone = {id(p) in backbone for p in g["params"]}
        assert len(in_backbone) == 1
        assert g["lr_scale"] == (0.1 if in_backbone.pop() else 1.0)
    assert [g["name"] for g in groups[:3]] == ["bias", "decay", "no_decay"]


def test_timm_no_decay_rules(convnext):
    groups = build_param_groups(convnext, 0.05)
    _assert_partition(convnext, groups)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = dict(convnext.named_parameters())
    gammas = [n for n in names if n.endswith(".gamma")]
    norms = [f"{mn}.weight" for mn, m in convnext.named_modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))]
    biases = [n for n in names if n.endswith(".bias")]
    assert len(gammas) == 2 + 2 + 6 + 2  # convnext_atto depths (2, 2, 6, 2)
    assert any("trunk" in n for n in norms) and any("neck" in n for n in norms)
    for n in gammas + norms + biases:
        assert id(names[n]) not in decayed, n
    assert all(names[n].ndim > 1 for n in names if id(names[n]) in decayed)
    bias_groups = [g for g in groups if g["bias_warmup"]]
    assert {id(p) for g in bias_groups for p in g["params"]} == {id(names[n]) for n in biases}


def test_timm_multiplier_and_layer_decay(convnext):
    mult, decay = 0.1, 0.5
    groups = build_param_groups(convnext, 0.05, backbone_lr_mult=mult, layer_decay=decay)
    _assert_partition(convnext, groups)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    names = dict(convnext.named_parameters())
    # ConvNeXt: stem and stages.0 are deepest from the top (3 stages above), stages.3 is the top.
    want = {"backbone.trunk.stem_0.weight": mult * decay ** 3,
            "backbone.trunk.stages_0.blocks.0.gamma": mult * decay ** 3,
            "backbone.trunk.stages_1.downsample.1.weight": mult * decay ** 2,
            "backbone.trunk.stages_2.blocks.5.mlp.fc1.bias": mult * decay,
            "backbone.trunk.stages_3.blocks.1.conv_dw.weight": mult,
            "adapter.layers.0.conv.weight": 1.0, "neck.out_p3.cv1.conv.weight": 1.0, "head.m.2.bias": 1.0}
    for n, s in want.items():
        assert scale[id(names[n])] == pytest.approx(s), n
    assert [g["name"] for g in groups[:3]] == ["bias", "decay", "no_decay"]
    assert {g["name"].split(".")[1] for g in groups[3:]} == {"stage0", "stage1", "stage2", "stage3"}


def test_frozen_backbone_drops_empty_groups(convnext):
    for p in convnext.backbone.parameters():
        p.requires_grad_(False)
    try:
        groups = build_param_groups(convnext, 0.05, backbone_lr_mult=0.1, layer_decay=0.8)
        _assert_partition(convnext, groups)
        assert [g["name"] for g in groups] == ["bias", "decay", "no_decay"]
        opt = torch.optim.AdamW(groups, lr=1e-3)
        assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 1.0, 1.0]
    finally:
        for p in convnext.backbone.parameters():
            p.requires_grad_(True)
