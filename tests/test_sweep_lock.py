"""One live sweep per sweep directory (experiments/sweep_lock.py), and the grid sweeper on public Hydra API."""
from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from experiments import sweep
from experiments.sweep_lock import LOCK_NAME, SweepLock, SweepLocked, record_running_jobs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _hold(sweep_dir: Path, pid: int, host: str | None = None) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / LOCK_NAME).write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid,
                                                   "started": "then", "command": "make sweep"}))


def test_a_live_owner_is_refused_naming_it(tmp_path: Path, live_pid: int) -> None:
    _hold(tmp_path, live_pid)
    with pytest.raises(SweepLocked) as e, SweepLock(tmp_path):
        pass
    assert e.value.code == 2 and f"pid {live_pid}" in str(e.value) and "make sweep" in str(e.value)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == live_pid  # the owner's lock is kept


def test_an_owner_on_another_host_is_refused(tmp_path: Path) -> None:
    _hold(tmp_path, 1, host="some-other-node")
    with pytest.raises(SweepLocked, match="another host"), SweepLock(tmp_path):
        pass


def test_a_dead_owners_lock_is_taken_over_and_released(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _hold(tmp_path, gone.pid)
    with SweepLock(tmp_path) as lock:
        held = json.loads((tmp_path / LOCK_NAME).read_text())
        assert held["pid"] == lock.owner["pid"] != gone.pid
        with pytest.raises(SweepLocked):  # and it now excludes others (here: this very process)
            with SweepLock(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists() and [p.name for p in tmp_path.iterdir()] == []


def test_jobs_left_running_on_the_cluster_keep_the_lock(tmp_path: Path) -> None:
    """A Slurm/SGE sweep interrupted with jobs still queued or running: its re-run must not submit them again."""
    with SweepLock(tmp_path):
        record_running_jobs(tmp_path, ["4711", "4712"])
    assert json.loads((tmp_path / LOCK_NAME).read_text())["jobs"] == ["4711", "4712"]  # kept on exit
    with pytest.raises(SweepLocked, match="2 job.* may still be running on the cluster .*4711 4712"), \
            SweepLock(tmp_path):
        pass


def test_a_stale_lock_is_removed_only_if_still_the_one_judged_stale(tmp_path: Path, live_pid: int) -> None:
    """Between reading a dead owner's lock and removing it, another sweep may have taken over: its lock stays."""
    _hold(tmp_path, live_pid)
    fresh = (tmp_path / LOCK_NAME).read_text()
    SweepLock(tmp_path)._remove_if_unchanged('{"pid": 1, "host": "the dead owner read earlier"}')
    assert (tmp_path / LOCK_NAME).read_text() == fresh
    SweepLock(tmp_path)._remove_if_unchanged(fresh)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_second_sweep_into_a_live_sweep_dir_launches_nothing(tmp_path: Path, live_pid: int,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = tmp_path / "sweep"
    _hold(sweep_dir, live_pid)
    rc = sweep.main(["experiment=smoke", f"hydra.sweep.dir={sweep_dir}", "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2 and f"pid {live_pid}" in err and "Nothing was launched" in err
    assert sorted(p.name for p in sweep_dir.iterdir()) == [LOCK_NAME]  # no multirun.yaml, no job directory


def test_the_experiment_layer_uses_no_hydra_internals() -> None:
    offenders = []
    for path in [*REPO.glob("experiments/**/*.py"), *REPO.glob("hydra_plugins/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if "._internal" in n]
    assert offenders == []
