"""Weight transfer by name and shape: the whole model, neck+head only, other class counts."""
from __future__ import annotations

import logging

import pytest
import torch

from yolo_core import load_checkpoint_weights, transfer_weights
from yolo_core.models import build_model
from yolo_core.models.checkpoint import _official_model, inert_state_dict, load_official_pickle
from yolo_core.models.official_keys import HEAD_LAYER, NECK_LAYERS, official_layer


@pytest.fixture(scope="module")
def source(reference_dir):
    """The seeded official YOLOv5n (official key names as read from the official-format file, as fp32)."""
    path = reference_dir / "yolov5n_seed0_official_format.pt"
    sd = inert_state_dict(_official_model(load_official_pickle(path), path))
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


@pytest.fixture(scope="module")
def source_ours(source):
    from yolo_core.models.official_keys import from_official

    return from_official(source)


def test_full_transfer_makes_state_equal(source, source_ours, caplog):
    torch.manual_seed(1)
    model = build_model("yolov5n", nc=80)
    key = "neck.out_p3.cv1.conv.weight"
    assert not torch.equal(model.state_dict()[key], source_ours[key])
    with caplog.at_level(logging.INFO, logger="yolo_core.models.transfer"):
        report = transfer_weights(model, source, "all")
    assert "transferred 348/349 tensors" in caplog.text
    assert report.num_transferred == 348 and report.total == 349
    assert set(report.skipped) == {"head.anchors"} and report.skipped["head.anchors"].startswith("anchors")
    state = model.state_dict()
    assert list(state) == list(source_ours)
    for key, value in source_ours.items():
        assert torch.equal(state[key], value), key  # anchors too: the defaults are the official ones


def test_class_count_mismatch_keeps_box_obj_rows(source_ours):
    torch.manual_seed(2)
    model = build_model("yolov5n", nc=3)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer_weights(model, source_ours, "all")
    assert report.num_transferred == 348 and len(report.partial) == 6
    state = model.state_dict()
    for i in range(3):
        for kind in ("weight", "bias"):
            key = f"head.m.{i}.{kind}"
            got = state[key].view(3, 8, -1)     # (anchors, 5 + 3, ...)
            src = source_ours[key].view(3, 85, -1)
            assert torch.equal(got[:, :5], src[:, :5]), key
            assert torch.equal(got[:, 5:], init[key].view(3, 8, -1)[:, 5:]), key
            assert not torch.equal(got[:, 5:], src[:, 5:8]), key
    for key, value in source_ours.items():
        if not key.startswith("head.m."):
            assert torch.equal(state[key], value), key


def test_neck_head_into_convnext_nano(source, source_ours):
    model = build_model("convnext_nano", nc=80, neck="yolov5n")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer_weights(model, source, "neck_head")
    official_neck_head = [k for k in source if official_layer(k) in NECK_LAYERS or official_layer(k) == HEAD_LAYER]
    assert report.num_transferred == len(official_neck_head) - 1  # all but model.24.anchors
    assert sorted(report.transferred) == sorted(k for k in source_ours
                                                if k.startswith(("neck.", "head.")) and k != "head.anchors")
    state = model.state_dict()
    for key, value in state.items():
        if key.startswith(("backbone.", "adapter.")):
            assert torch.equal(value, before[key]), key
            assert report.skipped[key] == "not in scope"
        elif key != "head.anchors":
            assert torch.equal(value, source_ours[key]), key
    assert report.unused == sorted(k for k in source_ours if k.startswith("backbone."))


def test_shape_mismatch_is_reported(source_ours):
    model = build_model("yolov5s", nc=80)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer_weights(model, source_ours, "all")
    # n into s: only the BN counters and the head biases (255 outputs either way) agree in shape
    biases = {f"head.m.{i}.bias" for i in range(3)}
    assert {k for k in report.transferred if not k.endswith("num_batches_tracked")} == biases
    float_keys = [k for k, v in init.items() if v.is_floating_point() and k != "head.anchors" and k not in biases]
    assert all(report.skipped[k].startswith("shape mismatch") for k in float_keys)
    assert all(torch.equal(model.state_dict()[k], init[k]) for k in float_keys)


def test_missing_keys_and_bad_scope(source_ours):
    model = build_model("yolov5n", nc=3)
    partial = {k: v for k, v in source_ours.items() if not k.startswith("neck.")}
    report = transfer_weights(model, partial, "neck_head")
    assert all(report.skipped[k].startswith("missing") for k in model.state_dict() if k.startswith("neck."))
    with pytest.raises(ValueError, match="neck_head"):
        transfer_weights(model, source_ours, "backbone")


def test_official_checkpoint_roundtrip(reference_dir):
    """The path a user takes: official .pt -> load_checkpoint_weights -> transfer."""
    sd = load_checkpoint_weights(reference_dir / "yolov5n_seed0_official_format.pt")
    model = build_model("yolov5n", nc=80)
    assert transfer_weights(model, sd, "all").num_transferred == 348
