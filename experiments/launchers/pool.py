"""Submit many calls to a submitit executor, at most N running at once, and wait for all of them.

Why not `executor.map_array(...)` + `[j.results() for j in jobs]` (what
hydra-submitit-launcher does): that stops at the first job that died without a result
(killed, out of memory) while the others still run, so a sweep would exit early and
leave orphans; and submitit's local executor has no concurrency limit, so a grid of
8 jobs on a 2-core machine would run 8 processes at once. Here every job is waited
for, and a failure is only looked at once all have ended.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

LOG = logging.getLogger(__name__)


class SweepInterrupted(KeyboardInterrupt):
    """The sweep process got SIGTERM/SIGINT while waiting for its jobs."""


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SweepInterrupted while waiting, so the caller can stop its jobs first."""
    def handler(signum: int, frame: Any) -> None:
        raise SweepInterrupted(f"received {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_all(executor: Any, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]],
            max_parallel: int | None = None, poll_s: float = 1.0,
            on_interrupt: Callable[[list[Any]], None] | None = None) -> list[Any]:
    """Run fn(*args) for every args in calls through executor; return the jobs once all are done.

    max_parallel: None (or >= len(calls)) submits everything at once with map_array (a
    Slurm job array, whose own %N limit applies); otherwise jobs are submitted one at a
    time as earlier ones finish. on_interrupt(running_jobs) is called on Ctrl-C/SIGTERM
    before the interruption propagates (e.g. to stop local processes).
    """
    n = len(calls)
    jobs: list[Any] = [None] * n
    if n == 0:
        return jobs
    pending = deque(range(n))
    running: list[int] = []
    try:
        with interrupt_on_sigterm():
            if not max_parallel or max_parallel >= n:
                jobs = list(executor.map_array(fn, *zip(*calls)))
                running, pending = list(range(n)), deque()
            while pending or running:
                while pending and len(running) < max_parallel:  # type: ignore[operator]
                    i = pending.popleft()
                    jobs[i] = executor.submit(fn, *calls[i])
                    running.append(i)
                    LOG.info("submitted job %d/%d (id %s)", i + 1, n, jobs[i].job_id)
                still = [i for i in running if not jobs[i].done()]
                if len(still) < len(running):
                    for i in sorted(set(running) - set(still)):
                        LOG.info("job %d/%d (id %s) ended", i + 1, n, jobs[i].job_id)
                running = still
                if pending or running:
                    time.sleep(poll_s)
    except KeyboardInterrupt:
        live = [jobs[i] for i in running]
        LOG.warning("interrupted with %d job(s) running and %d not submitted", len(live), len(pending))
        if on_interrupt is not None and live:
            on_interrupt(live)
        raise
    return jobs


def stop_local_jobs(jobs: Sequence[Any], grace_s: float = 30.0) -> None:
    """SIGTERM the controllers of submitit local jobs, wait up to grace_s, then SIGKILL what is left.

    The controller forwards SIGTERM once to its task; the trainer records `preempted` and
    exits, so a re-run of the sweep resumes those runs from last.pt. (With `setup` lines
    the job process is a shell running the controller, hence the search for it.) What is
    still alive after grace_s (e.g. a job still importing, where submitit ignores
    SIGTERM) is killed with all its descendants, so nothing keeps computing after the
    sweep is gone.
    """
    procs = [p for p in (getattr(j, "_process", None) for j in jobs) if p is not None and p.poll() is None]
    for p in procs:
        controllers = [pid for pid in [p.pid, *descendants(p.pid)] if "submitit.local._local" in _cmdline(pid)]
        for pid in controllers or [p.pid]:
            _signal(pid, signal.SIGTERM)
    deadline = time.time() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except Exception:  # still alive after the grace period
            for pid in descendants(p.pid):
                _signal(pid, signal.SIGKILL)
            p.kill()
            p.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """All live descendants of pid (Linux /proc), deepest first."""
    out: list[int] = []
    try:
        kids = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return out
    for k in kids:
        out += descendants(k) + [k]
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
