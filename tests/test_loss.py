"""The loss against the official ComputeLoss (reference vectors from YOLOv5 v7.0)."""
from __future__ import annotations

import pytest
import torch

from yolo_core import YOLOv5Loss, build_model, compute_loss, scale_loss_gains
from yolo_core.models.official_keys import from_official


@pytest.fixture(scope="module")
def case(reference_dir):
    return torch.load(reference_dir / "loss_case.pt")


@pytest.fixture(scope="module")
def model(reference_dir):
    m = build_model("yolov5s", 80)
    m.load_state_dict(from_official(torch.load(reference_dir / "yolov5s_seed0_state.pt")))
    return m


def saved_preds(case):
    return [case[f"pred{i}"] for i in range(3)]


def test_loss_on_saved_predictions(case, model):
    loss, items = compute_loss(model, saved_preds(case), case["targets"])
    torch.testing.assert_close(items, case["loss_items"].float(), rtol=1e-4, atol=0)
    torch.testing.assert_close(loss, case["loss"].float().reshape(1), rtol=1e-4, atol=0)


@pytest.mark.parametrize("hyp,key", [({"obj": 0.25}, "variant_obj_scaled_items"),
                                     ({"label_smoothing": 0.1}, "variant_ls0.1_items")])
def test_loss_variants(case, model, hyp, key):
    _, items = compute_loss(model, saved_preds(case), case["targets"], hyp)
    torch.testing.assert_close(items, case[key].float(), rtol=1e-4, atol=0)


def test_focal_variant_from_facts(case, model):
    """yolov5_facts.md section 9: fl_gamma 1.5 -> lobj 0.00403240, lcls 0.0229721, total 0.279879."""
    loss, items = compute_loss(model, saved_preds(case), case["targets"], {"fl_gamma": 1.5})
    assert items[1].item() == pytest.approx(0.00403240, rel=1e-4)
    assert items[2].item() == pytest.approx(0.0229721, rel=1e-4)
    assert loss.item() == pytest.approx(0.279879, rel=1e-4)


def test_grid_aligned_targets_from_facts(case, model):
    """Five-cell and one-cell matches (exact integers / .5): 15/40/33 matches, 0.115062/0.0504578/0.107304."""
    targets = torch.tensor([[0, 0, .5, .5, .3, .4], [0, 15, .25, .3, .1, .12], [1, 2, .7, .6, .5, .35]])
    lossfn = YOLOv5Loss(model.head.anchors, 80)
    assert [len(m.b) for m in lossfn.assign(saved_preds(case), targets)] == [15, 40, 33]
    loss, items = lossfn(saved_preds(case), targets)
    torch.testing.assert_close(items, torch.tensor([0.115062, 0.0504578, 0.107304]), rtol=1e-4, atol=0)
    assert loss.item() == pytest.approx(0.545648, rel=1e-4)


def test_matches_per_level(case, model):
    lossfn = YOLOv5Loss(model.head.anchors, 80)
    counts = [len(m.b) for m in lossfn.assign(saved_preds(case), case["targets"])]
    assert counts == case["matches_per_level"].tolist() == [9, 24, 21]


def test_loss_and_gradient_through_the_model(case, model):
    model.train()
    model.zero_grad()
    preds = model(case["imgs"])
    loss, items = compute_loss(model, preds, case["targets"])
    torch.testing.assert_close(items, case["loss_items"].float(), rtol=1e-4, atol=0)
    loss.backward()
    g = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters() if p.grad is not None))
    assert g.item() == pytest.approx(case["grad_global_l2"].item(), rel=1e-4)
    model.zero_grad()


def test_no_targets_gives_objectness_only(case, model):
    loss, items = compute_loss(model, saved_preds(case), torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0


def test_scale_loss_gains_as_train_py():
    g = scale_loss_gains({"box": 0.05, "obj": 1.0, "cls": 0.5}, nc=3, imgsz=320, nl=3)
    assert g["box"] == pytest.approx(0.05)
    assert g["cls"] == pytest.approx(0.5 * 3 / 80)
    assert g["obj"] == pytest.approx(0.25)


def test_unknown_hyp_key_is_refused(model):
    with pytest.raises(KeyError, match="unknown loss hyperparameters.*'boxx'"):
        YOLOv5Loss(model.head.anchors, 80, {"boxx": 1.0})
