"""The loss against the official ComputeLoss (reference vectors from YOLOv5 v7.0).

`ref` (tests/conftest.py) is each official reference set: the yolov5n vectors in
tests/reference always, the yolov5s ones too with YOLO_REFERENCE_DIR.
"""
from __future__ import annotations

import pytest
import torch

from yolo_core import YOLOv5Loss, build_model, compute_loss, scale_loss_gains
from yolo_core.loss import DEFAULT_LOSS_HYP


@pytest.fixture(scope="module")
def model(ref):
    m = build_model(ref.name, 80)
    m.load_state_dict(ref.train_state, strict=True)
    return m


def test_loss_on_saved_predictions(ref, model):
    """Target assignment and loss alone, from the official predictions (no forward pass)."""
    loss, items = compute_loss(model, ref.preds, ref.targets, ref.hyp)
    torch.testing.assert_close(items, ref.loss_items, rtol=1e-4, atol=0)
    torch.testing.assert_close(loss, torch.tensor([ref.loss]), rtol=1e-4, atol=0)


def test_default_gains_are_the_reference_gains(ref, model):
    """hyp=None means hyp.scratch-low's raw gains: the same loss as the reference's explicit ones."""
    assert {k: DEFAULT_LOSS_HYP[k] for k in ref.hyp} == ref.hyp
    _, items = compute_loss(model, ref.preds, ref.targets)
    torch.testing.assert_close(items, ref.loss_items, rtol=1e-4, atol=0)


@pytest.mark.parametrize("variant", ["label_smoothing_0.1", "fl_gamma_1.5", "obj_scaled"])
def test_loss_variants(ref, model, variant):
    overrides, want = ref.variants[variant]
    assert not torch.allclose(want, ref.loss_items, rtol=1e-3)  # the variant changes the loss it tests
    loss, items = compute_loss(model, ref.preds, ref.targets, {**ref.hyp, **overrides})
    torch.testing.assert_close(items, want, rtol=1e-4, atol=0)
    assert loss.item() == pytest.approx(want.sum().item() * ref.imgs.shape[0], rel=1e-4)


def test_matches_per_level(ref, model):
    lossfn = YOLOv5Loss(model.head.anchors, 80)
    counts = [len(m.b) for m in lossfn.assign(ref.preds, ref.targets)]
    assert counts == ref.matches_per_level
    assert counts == {"yolov5n": [43, 27, 9], "yolov5s": [9, 24, 21]}[ref.name]  # the READMEs' numbers


GRID_ALIGNED = torch.tensor([[0, 0, .5, .5, .3, .4], [0, 15, .25, .3, .1, .12], [1, 2, .7, .6, .5, .35]])


def test_grid_aligned_target_matches_from_facts():
    """yolov5_facts.md section 9: targets on cell centres/edges (the five-cell case) give 15/40/33
    matches on 40/20/10 grids. Assignment needs only the map shapes and the (family-wide) anchors."""
    preds = [torch.zeros(2, 3, n, n, 85) for n in (40, 20, 10)]
    lossfn = YOLOv5Loss(build_model("yolov5n", 80).head.anchors, 80)
    assert [len(m.b) for m in lossfn.assign(preds, GRID_ALIGNED)] == [15, 40, 33]


def test_grid_aligned_loss_from_facts(yolov5s_reference_dir):
    """The same targets on the yolov5s reference predictions: 0.115062/0.0504578/0.107304, total 0.545648
    (the official numbers exist for the yolov5s predictions only)."""
    case = torch.load(yolov5s_reference_dir / "loss_case.pt")
    lossfn = YOLOv5Loss(build_model("yolov5s", 80).head.anchors, 80)
    loss, items = lossfn([case[f"pred{i}"] for i in range(3)], GRID_ALIGNED)
    torch.testing.assert_close(items, torch.tensor([0.115062, 0.0504578, 0.107304]), rtol=1e-4, atol=0)
    assert loss.item() == pytest.approx(0.545648, rel=1e-4)


def test_loss_and_gradient_through_the_model(ref, model):
    """Forward (train mode, BatchNorm on batch statistics), loss and the global gradient norm."""
    model.train()
    model.zero_grad()
    preds = model(ref.imgs)
    loss, items = compute_loss(model, preds, ref.targets, ref.hyp)
    torch.testing.assert_close(items, ref.loss_items, rtol=1e-4, atol=0)
    loss.backward()
    g = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    assert g.item() == pytest.approx(ref.grad_global_l2, rel=1e-4)
    model.zero_grad()


def test_no_targets_gives_objectness_only(ref, model):
    loss, items = compute_loss(model, ref.preds, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0


def test_scale_loss_gains_as_train_py():
    g = scale_loss_gains({"box": 0.05, "obj": 1.0, "cls": 0.5}, nc=3, imgsz=320, nl=3)
    assert g["box"] == pytest.approx(0.05)
    assert g["cls"] == pytest.approx(0.5 * 3 / 80)
    assert g["obj"] == pytest.approx(0.25)


def test_unknown_hyp_key_is_refused():
    with pytest.raises(KeyError, match="unknown loss hyperparameters.*'boxx'"):
        YOLOv5Loss(build_model("yolov5n", 80).head.anchors, 80, {"boxx": 1.0})
