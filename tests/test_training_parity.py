"""The trainer's official YOLOv5 rules: non-finite steps, fp16-rounded start, AutoAnchor, best.pt
on ties, early stopping across a resume."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolo_core import build_model
from yolo_core.loggers import RunLogger
from yolo_core.train import TrainConfig
from yolo_core.train.autoanchor import check_anchors, fit_metrics, label_wh
from yolo_core.train.trainer import Trainer, train

TINY = dict(epochs=2, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2, synthetic=dict(n_train=12, n_val=4))


class StopAfter(RunLogger):
    def __init__(self, n: int):
        self.n = n

    def log_epoch(self, epoch, row):
        if epoch + 1 == self.n:
            raise KeyboardInterrupt


# ------------------------------------------------------------------ non-finite steps
class NaNLossAt(Trainer):
    """A trainer whose training loss is NaN at the given (0-based) iterations."""

    def __init__(self, config: TrainConfig, bad: set[int]):
        super().__init__(config)
        self.bad, self.calls = bad, 0

    def _build_loss(self, model):
        loss_fn = super()._build_loss(model)

        def loss(preds, targets):
            value, items = loss_fn(preds, targets)
            if not torch.is_grad_enabled():  # validation losses stay as they are
                return value, items
            self.calls += 1
            if self.calls - 1 in self.bad:
                value, items = value * float("nan"), items * float("nan")
            return value, items
        return loss


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.slow
def test_a_few_nonfinite_steps_are_skipped_and_counted(tmp_path) -> None:
    # 12 images, batch 4: 3 iterations per epoch; accumulate 1 after warmup (nbs = batch)
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), nbs=4, **TINY)
    summary = NaNLossAt(cfg, bad={1, 4}).fit()
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 2
    rows = (tmp_path / "run" / "results.csv").read_text().splitlines()
    col = rows[0].split(",").index("train/nonfinite_steps")
    assert [r.split(",")[col] for r in rows[1:]] == ["1", "1"]
    assert all(v != "nan" and v != "" for v in rows[1].split(",")[1:4])  # train losses over finite batches
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("optimizer step skipped") == 2
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["nonfinite_steps"] == 2 and _all_finite(last["model"]) and _all_finite(last["ema"]["ema"])


@pytest.mark.slow
def test_consecutive_nonfinite_steps_fail_with_the_count(tmp_path) -> None:
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), nbs=4, max_nonfinite_steps=3, **TINY)
    with pytest.raises(FloatingPointError, match="3 optimizer steps in a row .* max_nonfinite_steps=3"):
        NaNLossAt(cfg, bad={2, 3, 4}).fit()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "3 optimizer steps in a row" in summary["error"]
    assert summary["nonfinite_steps"] == 3


# ------------------------------------------------------------------ fp16-rounded start
class CaptureStart(Trainer):
    def _prepare_fresh_model(self, model):
        super()._prepare_fresh_model(model)
        self.start_state = {k: v.clone() for k, v in model.state_dict().items()}
        self.ema_start = {k: v.clone() for k, v in self.ema.ema.state_dict().items()}
        raise KeyboardInterrupt  # nothing more is needed


def _start_state(tmp_path, **kw) -> CaptureStart:
    t = CaptureStart(TrainConfig(out_dir=str(tmp_path / "run"), noautoanchor=True, **{**TINY, **kw}))
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    return t


def _fp16_exact(state: dict) -> bool:
    return all(torch.equal(v, v.half().float()) for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("model,kwargs", [("yolov5n", {}), ("convnext_atto", {"neck": "yolov5n"})])
def test_starting_weights_of_every_backbone_are_rounded_through_fp16(tmp_path, model, kwargs) -> None:
    """As the official train.py does to any model it trains; the same for both sides of the study."""
    t = _start_state(tmp_path, model=model, model_kwargs=kwargs)
    assert _fp16_exact(t.start_state)
    assert not _fp16_exact(t.ema_start)  # the official EMA is copied before the rounding
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["round_init_fp16"] is True


def test_fp16_rounding_can_be_switched_off(tmp_path) -> None:
    t = _start_state(tmp_path, model="yolov5n", round_init_fp16=False)
    assert not _fp16_exact(t.start_state)


# ------------------------------------------------------------------ AutoAnchor
def _elongated_labels(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Boxes about 20:1 (w:h) at 640 px: no default anchor is within anchor_t=4 of them."""
    out = []
    for _ in range(n):
        w = rng.uniform(0.25, 0.35, 4)
        h = w / rng.uniform(18, 22, 4)
        out.append(np.stack([np.zeros(4), np.full(4, 0.5), np.full(4, 0.5), w, h], 1).astype(np.float32))
    return out


def test_autoanchor_replaces_anchors_that_fit_badly() -> None:
    head = build_model("yolov5n", nc=1).head
    default = head.anchors.clone()
    labels = _elongated_labels(50, np.random.default_rng(0))
    image_wh = np.full((50, 2), 640.0)
    bpr_default = fit_metrics(label_wh(image_wh, labels, 640), (default * head.stride.view(-1, 1, 1)).view(-1, 2), 4.0)[0]
    assert bpr_default < 0.1
    report = check_anchors(head, image_wh, labels, 640, thr=4.0, seed=0)
    assert report["bpr"] < 0.98 and report["replaced"] and report["new_bpr"] > 0.98
    assert not torch.equal(head.anchors, default)
    px = head.anchors * head.stride.view(-1, 1, 1)
    area = px.prod(-1).mean(-1)
    assert area[0] < area[1] < area[2]  # small anchors on the fine level, as check_anchor_order
    assert torch.allclose(px.view(-1, 2), torch.tensor(report["anchors_px"]), atol=0.01)
    # same seed, same anchors
    again = build_model("yolov5n", nc=1).head
    assert check_anchors(again, image_wh, labels, 640, thr=4.0, seed=0)["anchors_px"] == report["anchors_px"]


def test_autoanchor_keeps_anchors_that_fit() -> None:
    head = build_model("yolov5n", nc=1).head
    default = head.anchors.clone()
    px = (default * head.stride.view(-1, 1, 1)).view(-1, 2).numpy() / 640  # boxes the size of the anchors
    labels = [np.array([[0, 0.5, 0.5, w, h]], np.float32) for w, h in px for _ in range(5)]
    report = check_anchors(head, np.full((len(labels), 2), 640.0), labels, 640, thr=4.0)
    assert report["bpr"] == 1.0 and not report["replaced"] and torch.equal(head.anchors, default)


def _elongated_yolo_set(root: Path, n_train: int = 24, n_val: int = 4) -> Path:
    """128 px images of thin bars (about 13:1): at 64 px the boxes are ~45 x 3.5 px."""
    rng = np.random.default_rng(1)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = rng.uniform(0.6, 0.8), rng.uniform(0.045, 0.065)
            im = np.full((128, 128, 3), 120, np.uint8)
            x0, y0 = int((0.5 - w / 2) * 128), int((0.5 - h / 2) * 128)
            cv2.rectangle(im, (x0, y0), (x0 + int(w * 128), y0 + int(h * 128)), (0, 0, 255), -1)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), im)
            (root / "labels" / split / f"{i}.txt").write_text(f"0 0.5 0.5 {w:.5f} {h:.5f}\n")
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": ["bar"]}))
    return path


@pytest.mark.slow
def test_autoanchor_in_a_run_is_logged_stored_and_resumed(tmp_path) -> None:
    data = _elongated_yolo_set(tmp_path / "bars")
    cfg = dict(out_dir=str(tmp_path / "run"), data=str(data), **{**TINY, "synthetic": {}})
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg), logger=StopAfter(1))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    aa = summary["autoanchor"]
    assert aa["replaced"] and aa["new_bpr"] > aa["bpr"]
    assert "Anchors are a poor fit" in (tmp_path / "run" / "train.log").read_text()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    anchors = last["model"]["head.anchors"] * torch.tensor([8.0, 16, 32]).view(-1, 1, 1)
    assert torch.allclose(anchors.view(-1, 2), torch.tensor(aa["anchors_px"]), atol=0.01)
    assert last["autoanchor"] == aa
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    # the EMA copy was made before AutoAnchor (as the official) and converges to the new anchors
    # within the first updates
    assert torch.allclose(best["model"]["head.anchors"], last["model"]["head.anchors"], rtol=1e-4)
    # a resumed run keeps the run's anchors and its report, and does not evolve again
    resumed = train(TrainConfig(**cfg))
    assert resumed["autoanchor"] == aa and resumed["epochs_completed"] == 2
    assert (tmp_path / "run" / "train.log").read_text().count("Anchors are a poor fit") == 1
    # noautoanchor keeps the defaults
    off = train(TrainConfig(**{**cfg, "epochs": 1, "out_dir": str(tmp_path / "off"), "noautoanchor": True}))
    assert "autoanchor" not in off
    default = build_model("yolov5s", nc=1).head.anchors
    best_off = torch.load(tmp_path / "off" / "checkpoints" / "best.pt", weights_only=True)
    assert torch.allclose(best_off["model"]["head.anchors"], default, rtol=1e-3)


# ------------------------------------------------------------------ best.pt and early stopping
class FitnessSequence(Trainer):
    """Validation metrics replaced by a fixed fitness sequence (map50 = map = value)."""

    def __init__(self, config: TrainConfig, values: list[float], logger: RunLogger | None = None):
        super().__init__(config, logger)
        self.values = values

    def _validate(self, model, iou_thres, coco, **kwargs):
        result = super()._validate(model, iou_thres, coco, **kwargs)
        if not coco:
            v = self.values[len(self.state.rows)]
            result.metrics.update(map50_yolo=v, map_yolo=v)
        return result


@pytest.mark.slow
def test_best_pt_on_ties_and_zero_fitness_as_the_official(tmp_path) -> None:
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), **{**TINY, "epochs": 4})
    summary = FitnessSequence(cfg, [0.0, 0.0, 0.3, 0.3]).fit()
    assert summary["best_epoch"] == 3  # the later of two equal epochs (official: best_fitness == fi)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == 3


@pytest.mark.slow
def test_early_stopping_is_the_same_with_a_resume(tmp_path) -> None:
    values = [0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    cfg = dict(**{**TINY, "epochs": 6}, patience=2)
    whole = FitnessSequence(TrainConfig(out_dir=str(tmp_path / "a"), **cfg), values).fit()
    assert whole["stopped_early"] and whole["epochs_completed"] == 3  # epochs 1, 2 without improvement
    with pytest.raises(KeyboardInterrupt):
        FitnessSequence(TrainConfig(out_dir=str(tmp_path / "b"), **cfg), values, StopAfter(2)).fit()
    resumed = FitnessSequence(TrainConfig(out_dir=str(tmp_path / "b"), **cfg), values).fit()
    assert resumed["epochs_completed"] == 3 and resumed["stopped_early"] == whole["stopped_early"]
    never = FitnessSequence(TrainConfig(out_dir=str(tmp_path / "c"), **{**cfg, "patience": 0}), values).fit()
    assert never["epochs_completed"] == 6 and "stopped_early" not in never
