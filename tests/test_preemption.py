"""Stopping a run from outside: SIGTERM/SIGUSR2 act at the trainer's next check; Ctrl-C leaves a resumable run."""
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
    """KeyboardInterrupt (SIGINT) mid-training: status `preempted`, not `failed`; last.pt resumes.

    The SIGINT is raised with signal.raise_signal in the main thread, the one that trains: raise()
    delivers it to the calling thread before it returns, and the interpreter runs Python's
    handler (default_int_handler: KeyboardInterrupt) at its next check, which is in the hook
    itself (CPython checks as the call returns; a loop's back-jump at the latest). So the
    interrupt surfaces inside the first epoch's log_epoch, after last.pt was written, whatever the
    machine's load. (It was os.kill: the process-wide signal could be taken by another thread,
    e.g. one of torch's, and the KeyboardInterrupt surface later or inside a __del__ that drops
    it, so under load the run finished first and the test failed with DID NOT RAISE.)"""
    import json

    from yolo_core.loggers import RunLogger
    from yolo_core.train import TrainConfig, train

    class CtrlCAfterFirstEpoch(RunLogger):
        def log_epoch(self, epoch, row):
            signal.raise_signal(signal.SIGINT)  # KeyboardInterrupt here...
            for _ in range(1000):  # ... or at the latest at this loop's first back-jump
                pass
            raise AssertionError("SIGINT raised in the main thread did not become a KeyboardInterrupt")

    cfg = dict(out_dir=str(tmp_path / "run"), epochs=2, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2,
               synthetic=dict(n_train=8, n_val=4))
    # Python's own Ctrl-C handler, as in a notebook or a terminal, even where the test runner was
    # started with SIGINT ignored (a background job of a non-interactive shell)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(**cfg), logger=CtrlCAfterFirstEpoch())
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "preempted" and "KeyboardInterrupt" in summary["error"]
    assert summary["epochs_completed"] == 1
    assert train(TrainConfig(**cfg))["status"] == "completed"
    assert "resumed from" in (tmp_path / "run" / "train.log").read_text()
