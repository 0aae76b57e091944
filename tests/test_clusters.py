"""Real single-node Slurm and SGE: the smoke grid through cluster=slurm / cluster=sge, requeue, SGE states.

The daemons come from .ci/cluster/{slurm,sge}_up.sh (Debian packages, root; idempotent,
~35 s the first time, seconds after), started once per session and stopped at the end
if this session started them. .ci/run starts them before `make test`, so CI always runs
these tests; elsewhere they need root (else they are skipped, with the reason).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / ".ci" / "cluster"
pytestmark = [pytest.mark.slow, pytest.mark.cluster]

# a real cluster here has no GPU and 2 slots: one slot per job, no GPU request
SMOKE = ["experiment=smoke", "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=30"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}


def _answers(cmd: list[str]) -> bool:
    if shutil.which(cmd[0]) is None:
        return False
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _cluster(name: str, probe: list[str]) -> Iterator[None]:
    """Run <name>_up.sh (idempotent); stop the daemons afterwards only if they were not up before."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root to start the single-node {name} cluster (.ci/cluster/{name}_up.sh)")
    if shutil.which("apt-get") is None and shutil.which(probe[0]) is None:
        pytest.skip(f"no {probe[0]} and no apt-get to install {name} (the recipes are for Debian)")
    was_up = _answers(probe)
    up = subprocess.run([str(RECIPES / f"{name}_up.sh")], capture_output=True, text=True, timeout=1200)
    if up.returncode != 0:
        pytest.fail(f"{name}_up.sh failed (rc {up.returncode}):\n{up.stdout[-4000:]}\n{up.stderr[-4000:]}")
    yield
    if not was_up:
        subprocess.run([str(RECIPES / f"{name}_down.sh")], capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    yield from _cluster("slurm", ["sinfo", "-h"])


@pytest.fixture(scope="session")
def sge() -> Iterator[None]:
    yield from _cluster("sge", ["qstat"])


def sweep(sweep_dir: Path, *overrides: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "experiments.sweep", *SMOKE, f"hydra.sweep.dir={sweep_dir}",
                           *overrides], cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def statuses(sweep_dir: Path) -> dict[str, str]:
    return {json.loads(p.read_text())["axes"]["backbone"]: json.loads(p.read_text())["status"]
            for p in sweep_dir.rglob("summary.json")}


def job_ids(sweep_dir: Path) -> list[str]:
    """Scheduler ids of the jobs (submitit keeps one folder per job holding its submitted pickle)."""
    return sorted(d.name for d in (sweep_dir / ".submitit").iterdir() if list(d.glob("*_submitted.pkl")))


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------- Slurm
def _squeue_reason(job: str) -> str:
    """Pending reason of a job (e.g. BeginTime), '' once it is no longer in the queue."""
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) == 2 and out[0] == "PENDING" else ("" if not out else "running")


def test_slurm_smoke_grid(slurm: None, tmp_path: Path) -> None:
    out = sweep(tmp_path / "s", "cluster=slurm")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert statuses(tmp_path / "s") == {"cspdarknet_s": "completed", "convnext_tiny": "completed"}
    ids = job_ids(tmp_path / "s")
    assert len(ids) == 2 and all("_" in i for i in ids)          # one sbatch array, two tasks
    acct = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ids[0].split("_")[0], "-o", "JobID,State"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(acct) == sorted(f"{i}|COMPLETED" for i in ids)


def test_slurm_job_with_two_tasks_trains_one_run_with_ddp(slurm: None, tmp_path: Path) -> None:
    """tasks_per_node=2: srun starts two tasks; they are the two ranks of one DDP run (gloo here)."""
    out = sweep(tmp_path / "d", "cluster=slurm", "model/backbone=cspdarknet_s", "train.epochs=2",
                "hydra.launcher.tasks_per_node=2")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "d").rglob("summary.json")]
    assert [(s["status"], s["world_size"], s["epochs_completed"]) for s in summaries] == [("completed", 2, 2)]
    ids = job_ids(tmp_path / "d")
    assert len(ids) == 1
    ntasks = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ids[0].split("_")[0], "-o", "NTasks,AllocCPUS"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert ntasks and ntasks[0].split("|")[1] == "2", ntasks


def test_slurm_preempted_job_is_requeued_and_resumes_from_last_pt(slurm: None, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.sweep", *SMOKE, "cluster=slurm",
                             f"hydra.sweep.dir={sweep_dir}", "model/backbone=cspdarknet_s",
                             "train.synthetic.n_train=128", "train.epochs=5"],
                            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: any(sweep_dir.rglob("checkpoints/last.pt")), 600, "the first epoch's last.pt")
        (job,) = job_ids(sweep_dir)
        # what Slurm sends signal_delay_s before the time limit (or on preemption with --signal)
        subprocess.run(["scancel", "--signal=USR2", job], check=True)
        # Slurm holds a requeued job for ~2 min (Reason=BeginTime); start it now to keep the test short
        wait_for(lambda: _squeue_reason(job) in ("BeginTime", ""), 120, "the requeue")
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        log, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log[-4000:]
    (run_dir,) = [p.parent for p in sweep_dir.rglob("summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 5
    assert "resumed from" in (run_dir / "train.log").read_text()
    states = subprocess.run(["sacct", "-n", "-X", "-P", "--duplicates", "-j", job, "-o", "State"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states


# ---------------------------------------------------------------------------------------- SGE
def test_sge_smoke_grid(sge: None, tmp_path: Path) -> None:
    out = sweep(tmp_path / "s", "cluster=sge")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert statuses(tmp_path / "s") == {"cspdarknet_s": "completed", "convnext_tiny": "completed"}
    for jid in job_ids(tmp_path / "s"):
        acct = qacct(jid)
        assert any(ln.split() == ["exit_status", "0"] for ln in acct.splitlines()), acct


def qacct(jid: str, timeout: float = 60) -> str:
    """qacct -j JID, waiting for the record (SGE writes accounting a moment after the job ends)."""
    t0 = time.time()
    while True:
        out = subprocess.run(["qacct", "-j", jid], capture_output=True, text=True)
        if out.returncode == 0 or time.time() - t0 > timeout:
            return out.stdout + out.stderr
        time.sleep(0.5)


class RequeueOnce:
    """A checkpointable call that gets the preemption signal on its first run (SGE test)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self) -> str:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("first run")
            os.kill(os.getpid(), signal.SIGUSR2)   # submitit: checkpoint() + requeue (SGE: exit 99)
            time.sleep(60)
            return "not requeued"
        return "second run"

    def checkpoint(self) -> object:
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def test_sge_executor_results_exit_codes_deletion_and_requeue(sge: None, tmp_path: Path) -> None:
    from integrations.sge import SGEExecutor, SGEJob

    ex = SGEExecutor(tmp_path / "jobs" / "%j")
    ex.update_parameters(job_name="test;with odd/name", timeout_min=10,
                         setup=[f"export PYTHONPATH={Path(__file__).parent}:{REPO}"])
    SGEJob.watcher.gone_grace_s = 5
    ok = ex.submit(pow, 2, 5)
    crash = ex.submit(os._exit, 3)                              # dies without a result
    requeue = ex.submit(RequeueOnce(str(tmp_path / "marker")))
    ex.update_parameters(additional_args=["-h"])                # held: deleted before it ever starts
    held = ex.submit(pow, 3, 3)
    held.cancel()
    assert ok.result() == 32
    assert requeue.result() == "second run"
    with pytest.raises(Exception, match="has not produced any output"):
        crash.result()
    assert crash.get_info(mode="cache")["State"] == "FAILED"
    assert crash.get_info(mode="cache")["exit_status"].split()[0] == "3"
    wait_for(lambda: held.done(force_check=True), 120, "the deleted job to count as ended")
    assert held.state == "DELETED"
    def exit_statuses() -> list[str]:
        return [ln.split()[1] for ln in qacct(requeue.job_id).splitlines() if ln.startswith("exit_status")]

    wait_for(lambda: len(exit_statuses()) >= 2, 60, "both accounting records of the requeued job")
    assert exit_statuses() == ["99", "0"]                       # the first run asked for the requeue
