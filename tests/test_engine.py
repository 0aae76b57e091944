"""engine.train_one_epoch as a plain function: usable without a Trainer, and what it does to the
TrainState it is given (the counters last.pt carries) is the official recipe's."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolo_core.data import YOLODataset, build_dataloader, load_dataset
from yolo_core.data.synthetic import ensure_synthetic_dataset
from yolo_core.loss import YOLOv5Loss
from yolo_core.models import build_model
from yolo_core.optim import build_param_groups
from yolo_core.train import distributed as ddp
from yolo_core.train.config import TrainConfig
from yolo_core.train.ema import ModelEMA
from yolo_core.train.engine import TrainStep, train_one_epoch
from yolo_core.train.nonfinite import NonFiniteSteps
from yolo_core.train.optimizer import build_optimizer
from yolo_core.train.schedule import lr_lambda
from yolo_core.train.state import TrainState


def _setup(tmp_path: Path, loss_scale: float = 1.0) -> tuple[TrainStep, torch.utils.data.DataLoader, TrainConfig]:
    torch.manual_seed(0)
    data = load_dataset(ensure_synthetic_dataset(tmp_path / "data", n_train=8, n_val=2, image_size=160))
    cfg = TrainConfig(data="synthetic", imgsz=64, batch_size=4, nbs=8, epochs=2, workers=0).validate()
    model = build_model("yolov5n", nc=data.nc)
    optimizer = build_optimizer(build_param_groups(model, cfg.hyp["weight_decay"]), "sgd", cfg.hyp["lr0"],
                                cfg.hyp["momentum"])
    hyp = {k: cfg.hyp[k] for k in ("box", "obj", "cls", "cls_pw", "obj_pw", "anchor_t", "fl_gamma")}
    loss = YOLOv5Loss(model.head.anchors, data.nc, {**hyp, "label_smoothing": 0.0})
    loss_fn = loss if loss_scale == 1.0 else (lambda p, t: tuple(x * loss_scale for x in loss(p, t)))
    step = TrainStep(model, model, loss_fn, optimizer, torch.amp.GradScaler("cpu", enabled=False), ModelEMA(model),
                     lr_lambda("linear", cfg.epochs, cfg.hyp["lrf"]), torch.device("cpu"), False, torch.float16,
                     ddp.from_environment())
    train_set = YOLODataset(data.train, cfg.imgsz, augment=True, hyp=cfg.hyp, batch_size=4, seed=0)
    return step, build_dataloader(train_set, 4, shuffle=True, workers=0, seed=0), cfg


def test_an_epoch_steps_every_nbs_images_and_carries_the_counters(tmp_path: Path) -> None:
    step, loader, cfg = _setup(tmp_path)
    before = [p.detach().clone() for p in step.model.parameters()]
    state = TrainState(NonFiniteSteps(20), accumulate=2)
    stops = []
    stats = train_one_epoch(step, loader, cfg, state, epoch=0, nw=0, check_stop=lambda: stops.append(1))
    # 2 batches of 4, nbs 8: one optimizer step, after the second batch (iteration 1)
    assert (state.last_opt_step, step.ema.updates, state.accumulate) == (1, 1, 2)
    assert (stats.images, state.train_images, stats.nonfinite, len(stops)) == (8, 8, 0, 2)
    assert torch.isfinite(stats.mloss).all() and (stats.mloss > 0).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    # the next epoch goes on from the carried counters (as after a resume from last.pt)
    train_one_epoch(step, loader, cfg, state, epoch=1, nw=0, check_stop=lambda: None)
    assert (state.last_opt_step, step.ema.updates, state.train_images) == (3, 2, 16)


def test_a_non_finite_loss_skips_the_step_and_is_counted(tmp_path: Path) -> None:
    step, loader, cfg = _setup(tmp_path, loss_scale=float("nan"))
    before = [p.detach().clone() for p in step.model.parameters()]
    state = TrainState(NonFiniteSteps(20), accumulate=2)
    stats = train_one_epoch(step, loader, cfg, state, epoch=0, nw=0, check_stop=lambda: None)
    assert stats.nonfinite == 1 and state.nonfinite.total == 1 and step.ema.updates == 0
    assert all(torch.equal(a, b) for a, b in zip(before, step.model.parameters()))
    assert torch.equal(stats.mloss, torch.zeros(3))  # no finite batch: the running mean stays 0


def test_a_stop_request_leaves_the_epoch_at_a_safe_point(tmp_path: Path) -> None:
    from yolo_core.train import Preempted

    step, loader, cfg = _setup(tmp_path)
    state = TrainState(NonFiniteSteps(20), accumulate=2)

    def stop() -> None:
        raise Preempted("test", 15)

    with pytest.raises(Preempted):
        train_one_epoch(step, loader, cfg, state, epoch=0, nw=0, check_stop=stop)
    assert state.last_opt_step == -1 and state.train_images == 0
