"""The pictures of a run and of a val: every file is written and is an image, also for one
epoch or no detection at all; plots=false writes none; a failing plot never fails a run;
the confusion matrix counts as YOLOv5 v7.0's on a hand-checked case."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolo_core.eval.val import ValConfig, val
from yolo_core.plots import ConfusionMatrix
from yolo_core.train.config import TrainConfig
from yolo_core.train.trainer import train

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "tests" / "reference" / "yolov5n_official_synth_best.pt"
EVAL_PLOTS = ("confusion_matrix.png", "PR_curve.png", "F1_curve.png", "P_curve.png", "R_curve.png",
              "val_batch0_labels.jpg", "val_batch0_pred.jpg")
RUN_PLOTS = ("results.png", "labels.jpg", *EVAL_PLOTS)


def _images_ok(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        im = cv2.imread(str(folder / name))
        assert im is not None and im.shape[0] > 100 and im.std() > 0, name  # decodes, not blank


def test_confusion_matrix_counts_as_yolov5() -> None:
    """Labels: a class-0 box, a class-1 box, a class-1 box nothing overlaps. Detections: the first
    box as class 0 (right), the second as class 0 (wrong class), a box of nothing, and a low-
    confidence one (ignored: conf <= 0.25)."""
    cm = ConfusionMatrix(nc=2)
    labels = torch.tensor([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30], [1, 50, 50, 60, 60.]])
    dets = torch.tensor([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 31, 0.8, 0], [80, 80, 90, 90, 0.7, 1],
                         [50, 50, 60, 60, 0.2, 1.]])
    cm.process_batch(dets, labels)
    #                          true 0, true 1, background
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0],    # predicted 0
                                              [0, 0, 1],    # predicted 1
                                              [0, 1, 0]])   # predicted background (missed)
    cm.process_batch(None, torch.tensor([[1, 0, 0, 5, 5.]]))  # an image without detections
    assert cm.matrix[2, 1] == 2


@pytest.mark.slow
def test_a_run_draws_every_picture_and_plots_false_none(tmp_path: Path) -> None:
    common = dict(epochs=1, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2, synthetic=dict(n_train=8, n_val=4))
    assert train(TrainConfig(out_dir=str(tmp_path / "run"), **common))["status"] == "completed"
    _images_ok(tmp_path / "run", RUN_PLOTS)  # one epoch: a results.png of one point still draws
    assert train(TrainConfig(out_dir=str(tmp_path / "quiet"), plots=False, **common))["status"] == "completed"
    assert not [p for p in (tmp_path / "quiet").iterdir() if p.suffix in (".png", ".jpg")]


@pytest.mark.slow
def test_a_failing_plot_is_a_warning_not_a_failed_run(tmp_path: Path, monkeypatch, caplog) -> None:
    import yolo_core.plots.curves as curves

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts on this node")

    monkeypatch.setattr(curves, "plot_curves", broken)
    monkeypatch.setattr("yolo_core.plots.collector.plot_curves", broken)
    with caplog.at_level(logging.WARNING, logger="yolo_core.plots"):
        summary = train(TrainConfig(out_dir=str(tmp_path / "run"), epochs=1, imgsz=64, batch_size=4, workers=0,
                                    warmup_min_iters=2, synthetic=dict(n_train=8, n_val=4)))
    assert summary["status"] == "completed"
    assert "could not draw the PR/F1/P/R curves: RuntimeError: no fonts on this node" in caplog.text
    assert (tmp_path / "run" / "confusion_matrix.png").is_file() and not (tmp_path / "run" / "PR_curve.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("conf_thres", [0.001, 0.99])  # 0.99: not one detection
def test_val_draws_every_picture(embedded_set_256: Path, tmp_path: Path, conf_thres: float) -> None:
    result = val(ValConfig(weights=str(WEIGHTS), data=str(embedded_set_256), imgsz=96, conf_thres=conf_thres,
                           out_dir=str(tmp_path), workers=0, verbose=False))
    assert (result.evaluation.predictions == []) == (conf_thres == 0.99)
    _images_ok(tmp_path, EVAL_PLOTS)
