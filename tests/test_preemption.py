"""Stopping a run from outside: SIGTERM/SIGUSR2 act at the trainer's next check; Ctrl-C leaves a resumable run."""
from __future__ import annotations

import os
import signal

import pytest

from yolo_core.train.preemption import Preempted, StopRequest


def test_a_signal_is_raised_at_the_next_check_not_where_it_lands() -> None:
    stop = StopRequest()
    before = signal.getsignal(signal.SIGUSR2)
    with stop.installed():
        os.kill(os.getpid(), signal.SIGUSR2)  # handled here, before the next line
        assert stop.signal_name == "SIGUSR2"
        seen = []
        with pytest.raises(Preempted, match="received signal SIGUSR2"):
            for item in stop.checked([1, 2, 3]):
                seen.append(item)
        assert seen == []  # checked before the first item
    assert signal.getsignal(signal.SIGUSR2) is before


def test_a_second_signal_raises_at_once() -> None:
    stop = StopRequest()
    with stop.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(Preempted, match="received signal SIGTERM, then SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)


def test_without_a_signal_checks_pass() -> None:
    stop = StopRequest()
    with stop.installed():
        stop.check()
        assert list(stop.checked(range(3))) == [0, 1, 2]


def test_ctrl_c_in_a_notebook_leaves_a_resumable_preempted_run(tmp_path) -> None:
    """KeyboardInterrupt (SIGINT) mid-training: status `preempted`, not `failed`; last.pt resumes."""
    import json

    from yolo_core.loggers import RunLogger
    from yolo_core.train import TrainConfig, train

    class CtrlCAfterFirstEpoch(RunLogger):
        def log_epoch(self, epoch, row):
            os.kill(os.getpid(), signal.SIGINT)

    cfg = dict(out_dir=str(tmp_path / "run"), epochs=2, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2,
               synthetic=dict(n_train=8, n_val=4))
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg), logger=CtrlCAfterFirstEpoch())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "preempted" and "KeyboardInterrupt" in summary["error"]
    assert summary["epochs_completed"] == 1
    assert train(TrainConfig(**cfg))["status"] == "completed"
    assert "resumed from" in (tmp_path / "run" / "train.log").read_text()
