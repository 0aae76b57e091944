"""Per-epoch learning rates against the official YOLOv5 v7.0 loop (train.py), step for step.

The reference below is the official arithmetic itself, run with torch's own LambdaLR:
smart_optimizer's three groups, `scheduler.last_epoch = start_epoch - 1`, the warmup's
per-iteration np.interp, scheduler.step() after each epoch, and results.csv's lr read
just before that step; resuming loads the optimizer state and builds a fresh LambdaLR as
smart_resume does. The trainer's results.csv must give the same numbers.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from yolo_core.loggers import RunLogger
from yolo_core.train import TrainConfig, train
from yolo_core.train.schedule import lr_lambda, schedule_epoch

# the reference sets lr by hand before LambdaLR.step(), exactly as the official loop does
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")


def official_lrs(schedule: str, epochs: int, nb: int, nw: int, hyp: dict, resume_after: int | None = None
                 ) -> list[list[float]]:
    """results.csv x/lr0..2 per epoch, as the official loop logs them (groups: bias, weights, BN)."""
    lf = lr_lambda(schedule, epochs, hyp["lrf"])  # the official lambdas (checked below)

    def make(state=None):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]
        opt = torch.optim.SGD([params[0]], lr=hyp["lr0"], momentum=hyp["momentum"], nesterov=True)
        opt.add_param_group({"params": [params[1]], "weight_decay": 0.0})
        opt.add_param_group({"params": [params[2]], "weight_decay": 0.0})
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lf)
        if state is not None:
            opt.load_state_dict(state)
        return opt, sched

    opt, sched = make()
    rows, start = [], 0
    for phase_end in ([resume_after, epochs] if resume_after is not None else [epochs]):
        sched.last_epoch = start - 1
        for epoch in range(start, phase_end):
            for i in range(nb):
                ni = i + nb * epoch
                if ni <= nw:
                    for j, x in enumerate(opt.param_groups):
                        x["lr"] = np.interp(ni, [0, nw], [hyp["warmup_bias_lr"] if j == 0 else 0.0,
                                                          x["initial_lr"] * lf(epoch)])
            rows.append([float(x["lr"]) for x in opt.param_groups])
            sched.step()
        state = opt.state_dict()
        opt, sched = make(state)
        start = phase_end
    return rows


def test_lambdas_are_the_official_formulas() -> None:
    epochs, lrf = 7, 0.01
    one_cycle = lambda x: ((1 - math.cos(x * math.pi / epochs)) / 2) * (lrf - 1) + 1  # utils/general.py
    linear = lambda x: (1 - x / epochs) * (1.0 - lrf) + lrf  # train.py
    for e in range(epochs + 1):
        assert lr_lambda("cosine", epochs, lrf)(e) == one_cycle(e)
        assert lr_lambda("linear", epochs, lrf)(e) == linear(e)


@pytest.mark.parametrize("nw,nb", [(0, 4), (3, 4), (4, 4), (9, 4), (100, 32)])
def test_schedule_epoch_matches_the_lambda_lr_reference(nw: int, nb: int) -> None:
    """Without the trainer: the lf() epoch in effect after warmup, for warmup ending anywhere."""
    hyp = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "warmup_bias_lr": 0.1}
    epochs = 6
    ref = official_lrs("linear", epochs, nb, nw, hyp)
    lf = lr_lambda("linear", epochs, hyp["lrf"])
    for epoch, row in enumerate(ref):
        if nb * epoch + nb - 1 > nw:  # the epoch's last iteration is past warmup
            assert row[1] == pytest.approx(hyp["lr0"] * lf(schedule_epoch(epoch, nb, nw)), rel=1e-12)


def _lr_rows(path) -> list[list[float]]:
    with open(path) as f:
        return [[float(r[f"x/lr{j}"]) for j in range(3)] for r in csv.DictReader(f)]


class _StopAfter(RunLogger):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def log_epoch(self, epoch, row):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt  # a Ctrl-C after this epoch's last.pt: resumable


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("resume", [False, True])
def test_trainer_lr_columns_equal_the_official_loop(tmp_path, schedule: str, resume: bool) -> None:
    """6 epochs of 4 iterations, warmup of 6 iterations (ends inside epoch 1): every group's lr
    in every epoch equals the official's, also when the run is stopped after epoch 2 and resumed."""
    hyp = {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "warmup_bias_lr": 0.1, "warmup_epochs": 1.5}
    cfg = dict(out_dir=str(tmp_path / "run"), epochs=6, imgsz=64, batch_size=4, workers=0, warmup_min_iters=6,
               schedule=schedule, optimizer="sgd", hyp=dict(hyp), synthetic=dict(n_train=16, n_val=4),
               noautoanchor=True)
    if resume:
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(**cfg), logger=_StopAfter(3))
        assert len(_lr_rows(tmp_path / "run" / "results.csv")) == 3
    assert train(TrainConfig(**cfg))["status"] == "completed"
    got = _lr_rows(tmp_path / "run" / "results.csv")
    want = official_lrs(schedule, 6, nb=4, nw=6, hyp=hyp, resume_after=3 if resume else None)
    assert len(got) == len(want) == 6
    # results.csv keeps 6 significant digits
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-9)
    # the schedule really lags: the last epoch trains at lf(4), not lf(5)
    lf = lr_lambda(schedule, 6, hyp["lrf"])
    assert got[5][1] == pytest.approx(hyp["lr0"] * lf(4), rel=1e-5)
    assert got[5][1] != pytest.approx(hyp["lr0"] * lf(5), rel=1e-3)
