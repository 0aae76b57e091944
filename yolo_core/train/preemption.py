"""SIGINT/SIGTERM/SIGUSR2 (Ctrl-C, scheduler preemption, time limit) as a stop request.

Why not raise from the signal handler: a handler runs between any two bytecodes, so the
exception can surface inside torch.save (whose zip writer then raises its own
RuntimeError on exit and the run is recorded as `failed`, not `preempted`), inside a
logging handler (which swallows it: the signal is lost), or half-way through a file
write. Here the handler only records the signal; the trainer calls `check()` at points
where stopping loses nothing but the work since the last checkpoint (before each
training and validation batch, between phases). A second signal while the first is
still pending raises at once (the sender insists), except inside `deferred()`, the writes of
a checkpoint, where it waits for the write to end.

Ctrl-C (SIGINT) is one of them: Python's own handler raises KeyboardInterrupt wherever the
main thread is, and one that lands inside torch.save of last.pt became torch's "unexpected
pos" error, the run `failed` (seen in CI).
"""
from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class Preempted(Exception):
    """The process (with DDP: a process of the run) received SIGINT/SIGTERM/SIGUSR2 (Ctrl-C, preemption, time limit).

    `signum` is the signal's number: a launcher tells a requeue request (its scheduler's
    preemption signal) from a cancellation (SIGTERM) by it, not by the message.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with its signum (a job's result travels pickled)
        return type(self), (str(self), self.signum)


class StopRequest:
    """Records the stop signals; `check()` raises Preempted once one has arrived."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._insisted: str | None = None  # a second signal that arrived inside deferred()
        self._deferring = 0

    def _handler(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
        elif self._deferring:
            self._insisted = name
        else:  # a second signal: stop now, wherever we are
            self._raise_insisted(name)

    def _raise_insisted(self, name: str) -> None:
        raise Preempted(f"received signal {self.signal_name}, then {name}: stopping at once",
                        signal.Signals[self.signal_name])

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block even a repeated signal only waits (a file being written stays
        whole and the stop is recorded as `preempted`); it raises as the block ends."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._insisted is not None:
            self._raise_insisted(self._insisted)

    def check(self) -> None:
        if self.signal_name is not None:
            raise Preempted(f"received signal {self.signal_name}", signal.Signals[self.signal_name])

    def checked(self, batches: Iterable[T]) -> Iterator[T]:
        """`batches` with a check before each item (a loop we do not own, e.g. evaluate())."""
        for item in batches:
            self.check()
            yield item

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle the signals within the block (main thread only; elsewhere they stay as they were)."""
        previous = {}
        for sig in SIGNALS:
            try:
                previous[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):  # not the main thread
                pass
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
