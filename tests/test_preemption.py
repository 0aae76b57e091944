"""Stopping a run from outside: SIGINT/SIGTERM/SIGUSR2 act at the trainer's next check and leave a resumable run."""
from __future__ import annotations

import pickle
import signal

import pytest

from yolo_core.train.preemption import Preempted, StopRequest


def test_a_signal_is_raised_at_the_next_check_not_where_it_lands() -> None:
    stop = StopRequest()
    before = signal.getsignal(signal.SIGUSR2)
    with stop.installed():
        signal.raise_signal(signal.SIGUSR2)  # to this thread: handled before the next line
        assert stop.signal_name == "SIGUSR2"
        seen = []
        with pytest.raises(Preempted, match="received signal SIGUSR2") as info:
            for item in stop.checked([1, 2, 3]):
                seen.append(item)
        assert seen == []  # checked before the first item
    assert info.value.signum == signal.SIGUSR2
    again = pickle.loads(pickle.dumps(info.value))  # a job's result reaches the sweep pickled
    assert (type(again), again.signum, str(again)) == (Preempted, signal.SIGUSR2, str(info.value))
    assert signal.getsignal(signal.SIGUSR2) is before


def test_a_second_signal_raises_at_once() -> None:
    stop = StopRequest()
    with stop.installed():
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(Preempted, match="received signal SIGTERM, then SIGTERM") as info:
            signal.raise_signal(signal.SIGTERM)
    assert info.value.signum == signal.SIGTERM


def test_a_second_signal_inside_a_deferred_block_waits_for_its_end() -> None:
    stop = StopRequest()
    with stop.installed():
        signal.raise_signal(signal.SIGINT)
        assert stop.signal_name == "SIGINT"  # Ctrl-C is recorded, not a KeyboardInterrupt
        written = []
        with pytest.raises(Preempted, match="received signal SIGINT, then SIGTERM") as info:
            with stop.deferred():
                with stop.deferred():  # nested: only the outermost end raises
                    signal.raise_signal(signal.SIGTERM)
                    written.append("best.pt")
                written.append("last.pt")
        assert written == ["best.pt", "last.pt"]
    assert info.value.signum == signal.SIGINT


def test_the_launcher_requeues_on_submitits_signal_only(monkeypatch) -> None:
    """By Preempted.signum, not by the message: SIGTERM (scancel, qdel) and other errors are not requeued."""
    import submitit

    from hydra_plugins.convnext_yolo_launchers.launcher import requeue_signal

    monkeypatch.setattr(submitit.JobEnvironment, "USR_SIG", "USR2")
    assert requeue_signal(Preempted("received signal SIGUSR2", signal.SIGUSR2)) == signal.SIGUSR2
    assert requeue_signal(Preempted("received signal SIGTERM", signal.SIGTERM)) is None
    assert requeue_signal(RuntimeError("received signal SIGUSR2")) is None
    monkeypatch.setattr(submitit.JobEnvironment, "USR_SIG", "USR1")  # SUBMITIT_PREEMPT_SIGNAL=USR1
    assert requeue_signal(Preempted("received signal SIGUSR2", signal.SIGUSR2)) is None
    assert requeue_signal(Preempted("received signal SIGUSR1", signal.SIGUSR1)) == signal.SIGUSR1


def test_without_a_signal_checks_pass() -> None:
    stop = StopRequest()
    with stop.installed():
        stop.check()
        assert list(stop.checked(range(3))) == [0, 1, 2]


def test_ctrl_c_in_a_notebook_leaves_a_resumable_preempted_run(tmp_path) -> None:
    """Ctrl-C (SIGINT) mid-training: the run stops at its next check with status `preempted`,
    not `failed`; last.pt resumes. SIGINT is raised with signal.raise_signal in the main thread,
    the one that trains, so it is handled inside the hook (raise() delivers it to the calling
    thread before it returns), after epoch 0's last.pt, whatever the machine's load."""
    import json

    from yolo_core.loggers import RunLogger
    from yolo_core.train import TrainConfig, train

    class CtrlCAfterFirstEpoch(RunLogger):
        def log_epoch(self, epoch, row):
            signal.raise_signal(signal.SIGINT)

    cfg = dict(out_dir=str(tmp_path / "run"), epochs=3, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2,
               synthetic=dict(n_train=8, n_val=4))
    # Python's own Ctrl-C handler, as in a notebook or a terminal, even where the test runner was
    # started with SIGINT ignored (a background job of a non-interactive shell)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Preempted, match="received signal SIGINT") as info:
            train(TrainConfig(**cfg), logger=CtrlCAfterFirstEpoch())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer's handler is gone
    finally:
        signal.signal(signal.SIGINT, previous)
    assert info.value.signum == signal.SIGINT
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "preempted" and "SIGINT" in summary["error"]
    assert summary["epochs_completed"] == 1
    assert train(TrainConfig(**cfg))["status"] == "completed"
    assert "resumed from" in (tmp_path / "run" / "train.log").read_text()


def test_data_workers_ignore_ctrl_c() -> None:
    """A terminal's Ctrl-C reaches the loader's workers too; they must leave the stop to the
    trainer instead of exiting under it."""
    import torch

    from yolo_core.data.loader import seed_worker

    class SigintPerWorker(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            signal.raise_signal(signal.SIGINT)  # would be a KeyboardInterrupt without seed_worker's SIG_IGN
            return signal.getsignal(signal.SIGINT) is signal.SIG_IGN

    loader = torch.utils.data.DataLoader(SigintPerWorker(), batch_size=None, num_workers=2,
                                         worker_init_fn=seed_worker)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # what forked workers inherit
    try:
        assert list(loader) == [True, True]
    finally:
        signal.signal(signal.SIGINT, previous)
