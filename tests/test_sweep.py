"""`make sweep` end to end on this machine: real submitit_local processes, tiny runs (seconds each).

- the smoke grid with one job made to fail (a missing weights file, found only when the
  job builds its model): the other job completes, the sweep exits 1 only after both
  ended, the failure is in summary.json and in the report (report exit 1);
- a sweep killed (SIGKILL to its whole process group) after its first run completed,
  then re-run on the same directory: the completed run is not touched, the interrupted
  one resumes from last.pt, and a third run starts no job at all;
- SIGTERM (as Ctrl-C) to a sweep stops its local jobs as `preempted`, leaves no process
  behind, and a re-run resumes both;
- a job process killed outright (no result): the other job finishes, the dead run is
  marked failed, the sweep exits 1.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY = ["experiment=smoke"]   # 16/8 images, 64 px, batch 4, 1 epoch, workers 0 (conf/experiment/smoke.yaml)


def sweep_cmd(sweep_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "experiments.sweep", *TINY, f"hydra.sweep.dir={sweep_dir}", *overrides]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def run_sweep(sweep_dir: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sweep_cmd(sweep_dir, *overrides), cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def summaries(sweep_dir: Path) -> dict[str, dict]:
    """{run dir relative to the sweep dir: summary.json}."""
    return {p.parent.relative_to(sweep_dir).as_posix(): json.loads(p.read_text())
            for p in sweep_dir.rglob("summary.json")}


def fingerprint(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file of a run: (mtime_ns, sha1) — any rewrite changes mtime_ns."""
    return {p.relative_to(run_dir).as_posix(): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_smoke_grid_one_job_fails_the_other_completes(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    # pretrained is used by timm backbones only: convnext_tiny fails at model build (the file exists, so
    # validation passes it, but holds no weights), cspdarknet_s ignores it; the setup line shows the
    # thread count each job process gets.
    broken = tmp_path / "broken_convnext.pt"
    broken.write_bytes(b"not a state dict")
    out = run_sweep(sweep_dir, f"paths.convnext_weights={broken}",
                    "hydra.launcher.setup=['echo job-threads=$OMP_NUM_THREADS']")
    log = out.stdout + out.stderr
    assert out.returncode == 1, log
    runs = summaries(sweep_dir)
    assert len(runs) == 2, runs.keys()
    by_backbone = {s["axes"]["backbone"]: s for s in runs.values()}
    assert by_backbone["cspdarknet_s"]["status"] == "completed"
    assert by_backbone["cspdarknet_s"]["epochs_completed"] == 1
    assert by_backbone["convnext_tiny"]["status"] == "failed"
    assert "PretrainedWeightsMismatch" in (err := by_backbone["convnext_tiny"]["error"]) and "broken_convnext.pt" in err
    # separate processes, one torch thread each (cluster=local: cpus_per_task=1)
    job_dirs = [d for d in (sweep_dir / ".submitit").iterdir() if d.name.isdigit()]
    assert len(job_dirs) == 2 and all(list(d.glob("*_result.pkl")) for d in job_dirs)
    assert log.count("job-threads=1") == 2
    # the report ran on the sweep dir and marks the failure; so does a standalone report
    assert "at least one job failed" in out.stderr and "broken_convnext.pt" in out.stderr
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "1 completed, 1 failed" in report and "broken_convnext.pt" in report
    rep = subprocess.run([sys.executable, "analysis/report.py", str(sweep_dir), "--strict"], cwd=REPO, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert rep.returncode == 1, rep.stderr


@contextmanager
def started_sweep(sweep_dir: Path, *overrides: str) -> Iterator[subprocess.Popen]:
    """A sweep in its own process group (stderr piped); SIGKILLed with its jobs if still alive at the end."""
    proc = subprocess.Popen(sweep_cmd(sweep_dir, *overrides), cwd=REPO, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def _wait_for(cond, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended (rc {proc.returncode}) before the condition held")
        if time.time() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.5)


def test_killed_sweep_rerun_finishes_only_what_was_missing(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ("model/backbone=cspdarknet_s", "train.seed=0,1", "train.epochs=3", "hydra.launcher.max_parallel=1")
    first = sweep_dir / "model" / "backbone=cspdarknet_s,train.epochs=3,train.seed=0"
    second = sweep_dir / "model" / "backbone=cspdarknet_s,train.epochs=3,train.seed=1"
    proc = subprocess.Popen(sweep_cmd(sweep_dir, *args), cwd=REPO, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the first run completed and the second saved its first epoch: kill everything (sweep, jobs)
        _wait_for(lambda: (first / "summary.json").is_file()
                  and json.loads((first / "summary.json").read_text())["status"] == "completed"
                  and (second / "checkpoints" / "last.pt").is_file(), 600, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    assert json.loads((second / "summary.json").read_text())["status"] == "running"   # killed mid-run
    before = fingerprint(first)
    assert "checkpoints/last.pt" in before and "results.csv" in before

    out = run_sweep(sweep_dir, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 already completed (skipped), 1 to run" in out.stderr + out.stdout
    assert fingerprint(first) == before                      # the completed run was not rewritten
    s2 = json.loads((second / "summary.json").read_text())
    assert s2["status"] == "completed" and s2["epochs_completed"] == 3
    assert "resumed from" in (second / "train.log").read_text()   # continued from last.pt, not restarted

    jobs_before = sorted(p.name for p in (sweep_dir / ".submitit").iterdir())
    done2 = fingerprint(second)
    out = run_sweep(sweep_dir, *args)                          # everything done: nothing is started
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 already completed (skipped), 0 to run" in out.stderr + out.stdout
    assert sorted(p.name for p in (sweep_dir / ".submitit").iterdir()) == jobs_before
    assert fingerprint(first) == before and fingerprint(second) == done2


def test_sigterm_stops_local_jobs_as_preempted_and_a_rerun_resumes_them(tmp_path: Path) -> None:
    """SIGTERM (or Ctrl-C) to the sweep: its local jobs are stopped, not orphaned, and resume later."""
    sweep_dir = tmp_path / "sweep"
    args = ("model/backbone=cspdarknet_s", "train.seed=0,1", "train.epochs=6")
    with started_sweep(sweep_dir, *args) as proc:
        _wait_for(lambda: len(list(sweep_dir.rglob("checkpoints/last.pt"))) == 2, 600, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"hydra.sweep.dir={sweep_dir}" in err                      # says how to resume
    stopped = {rel: s["status"] for rel, s in summaries(sweep_dir).items()}
    # a job that started much earlier may have finished all its epochs before the signal:
    # `completed` is right for it; anything else (`failed`, `running`) is a bug
    assert len(stopped) == 2 and "preempted" in stopped.values() and set(stopped.values()) <= {"preempted", "completed"}
    left = subprocess.run(["pgrep", "-f", str(sweep_dir)], capture_output=True, text=True).stdout.split()
    assert left == [], f"job processes left behind: {left}"
    out = run_sweep(sweep_dir, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = summaries(sweep_dir)
    assert {s["status"] for s in runs.values()} == {"completed"} and {s["epochs_completed"] for s in runs.values()} == {6}
    assert all("resumed from" in (sweep_dir / rel / "train.log").read_text()
               for rel, status in stopped.items() if status == "preempted")


def test_a_crashed_job_is_marked_failed_and_the_others_finish(tmp_path: Path) -> None:
    """A job process killed outright (as the OOM killer would) leaves no result: the sweep still waits
    for the other job, marks the dead run failed (it said `running`), and exits 1."""
    sweep_dir = tmp_path / "sweep"
    args = ("model/backbone=cspdarknet_s", "train.seed=0,1", "train.epochs=4")
    with started_sweep(sweep_dir, *args) as proc:
        _wait_for(lambda: len(list(sweep_dir.rglob("checkpoints/last.pt"))) == 2, 600, proc)
        tasks = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep_dir}"], capture_output=True,
                               text=True).stdout.split()
        assert len(tasks) == 2, tasks
        os.kill(int(tasks[0]), signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    runs = sorted(summaries(sweep_dir).values(), key=lambda s: s["status"])
    assert [s["status"] for s in runs] == ["completed", "failed"]
    assert runs[0]["epochs_completed"] == 4
    assert "ended without a result" in runs[1]["error"] and runs[1]["epochs_completed"] >= 1
    assert "1 completed, 1 failed" in (sweep_dir / "report" / "report.md").read_text()


def test_a_completed_run_of_another_config_is_not_skipped_but_refused(tmp_path: Path) -> None:
    """The sweep dir's subdir names only the overrides: a run there that completed under another
    config (another grid into the same directory, an edited conf/) must not be taken as done."""
    sweep_dir = tmp_path / "sweep"
    args = ("model/backbone=cspdarknet_s",)
    assert run_sweep(sweep_dir, *args).returncode == 0
    (summary_path,) = sweep_dir.rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    summary["identity"]["config"]["hyp"]["lr0"] = 0.5   # as if trained with another lr0
    summary["identity"]["digest"] = "0" * 16
    summary_path.write_text(json.dumps(summary))
    before = fingerprint(summary_path.parent)
    out = run_sweep(sweep_dir, *args)   # refused before anything is launched
    log = out.stdout + out.stderr
    assert out.returncode == 2 and "nothing was launched" in log, log
    assert "completed under another config (hyp.lr0: 0.5 -> 0.002)" in log
    assert fingerprint(summary_path.parent) == before   # the old run is left as it was
    # a plain Hydra multirun goes past that check only through the callback, which refuses too;
    # the launcher refuses as well (before run_job rewrites .hydra/): tested through the trainer's
    # own check in test_run_identity
    assert run_sweep(sweep_dir, *args, "train.resume=false").returncode == 0   # starts it over
    assert json.loads(summary_path.read_text())["identity"]["config"]["hyp"]["lr0"] == 0.002
