"""StopRequest: a stop signal is recorded and raised only where the trainer checks for it."""
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
        with pytest.raises(Preempted, match="SIGTERM twice"):
            os.kill(os.getpid(), signal.SIGTERM)


def test_without_a_signal_checks_pass() -> None:
    stop = StopRequest()
    with stop.installed():
        stop.check()
        assert list(stop.checked(range(3))) == [0, 1, 2]
