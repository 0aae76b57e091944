"""Training with several processes (DDP over gloo on the CPU, launched by torchrun as on a GPU node).

- two ranks train a run: only rank 0 writes the run directory, summary.json records
  world_size 2, and at the end every rank holds the same weights and optimizer state;
  a run stopped after its first epoch resumes both ranks from last.pt, still in step;
- SIGTERM to one rank only (a scheduler signalling one task) stops every rank at the
  next agreed point: the run says `preempted`, torchrun exits, nothing waits forever;
- the loss the trainer back-propagates under DDP gives every rank the gradient of the
  whole batch, as one process computes it (checked with real DDP over gloo).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.launchers.pool import descendants

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import signal, sys, torch, torch.distributed as dist
from yolo_core.loggers import RunLogger
from yolo_core.train import TrainConfig, Trainer
out, epochs = sys.argv[1], int(sys.argv[2])
stop_after_first = len(sys.argv) > 3

class StopAfterFirstEpoch(RunLogger):  # rank 0's logger: a SIGTERM to rank 0 alone
    def log_epoch(self, epoch, row):
        signal.raise_signal(signal.SIGTERM)

dist.init_process_group("gloo")  # ours: the trainer leaves a group it did not create in place
trainer = Trainer(TrainConfig(out_dir=out, epochs=epochs, imgsz=64, batch_size=4, workers=0, warmup_min_iters=2,
                              synthetic=dict(n_train=16, n_val=8)),
                  logger=StopAfterFirstEpoch() if stop_after_first else None)
try:
    summary = trainer.fit()
except Exception as e:
    print(f"RANK {dist.get_rank()} RAISED {type(e).__name__}: {e}", flush=True)
    raise
flat = lambda ts: torch.cat([t.detach().float().flatten() for t in ts])
mine = {"weights": flat(trainer.model.parameters()),
        "optimizer": flat(v for s in trainer.optimizer.state.values() for v in s.values()
                          if torch.is_tensor(v) and v.dim() > 0)}
for name, t in mine.items():
    everyone = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, t)
    if dist.get_rank() == 0:
        print(f"SAME {name} {all(torch.equal(everyone[0], x) for x in everyone)} {t.numel()}", flush=True)
print(f"RANK {dist.get_rank()} STATUS {summary.get('status')}", flush=True)
dist.destroy_process_group()
"""


def torchrun(tmp_path: Path, out: Path, epochs: int, *extra: str) -> subprocess.Popen:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), str(out), str(epochs), *extra], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        return proc.communicate(timeout=timeout)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def test_two_ranks_stay_in_step_and_resume_together(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = torchrun(tmp_path, out, 2, "stop-after-first-epoch")
    log = finish(proc)
    assert proc.returncode != 0 and "RANK 1 RAISED Preempted" in log, log[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["epochs_completed"]) == ("preempted", 1)
    proc = torchrun(tmp_path, out, 2)
    log = finish(proc)
    assert proc.returncode == 0, log[-4000:]
    assert "SAME weights True" in log and "SAME optimizer True" in log, log[-4000:]
    assert "RANK 0 STATUS completed" in log and "RANK 1 STATUS completed" in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert summary["epochs_completed"] == 2
    train_log = (out / "train.log").read_text()
    assert train_log.count("resumed from") == 1 and train_log.count("epoch 2/2") == 1  # rank 0 writes alone
    assert summary["axes"]["batch_size"] == 4   # the total over both ranks, as YOLOv5's --batch-size


def _rank_pid(root_pid: int, rank: int) -> int | None:
    """The torchrun worker with RANK=rank among root_pid's descendants."""
    for pid in descendants(root_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and f"LOCAL_RANK={rank}".encode() in environ:
            return pid
    return None


def test_sigterm_to_one_rank_stops_every_rank_as_preempted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = torchrun(tmp_path, out, epochs=200)
    try:
        deadline = time.time() + 300
        while not (out / "checkpoints" / "last.pt").exists():
            assert proc.poll() is None and time.time() < deadline, "no last.pt"
            time.sleep(0.2)
        pid = _rank_pid(proc.pid, 1)
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        log = finish(proc, timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "RANK 1 RAISED Preempted: received signal SIGTERM" in log, log[-4000:]
    assert "RANK 0 RAISED Preempted: another process of this run received signal SIGTERM" in log, log[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "preempted" and "another process" in summary["error"]
    assert 0 < summary["epochs_completed"] < 200


def test_a_sweep_job_with_two_tasks_is_one_ddp_run(tmp_path: Path) -> None:
    """hydra.launcher.tasks_per_node=2: submitit starts two tasks per job; they train the
    job's one run together (rank 0 writes it) instead of two copies racing on it."""
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "experiments.sweep", "experiment=smoke", "model/backbone=cspdarknet_s",
                          "train.epochs=2", "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={sweep_dir}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sweep_dir.rglob("summary.json")]
    assert len(summaries) == 1
    s = summaries[0]
    assert (s["status"], s["world_size"], s["epochs_completed"]) == ("completed", 2, 2)
    logs = list(sweep_dir.rglob("train.log"))
    assert len(logs) == 1 and logs[0].read_text().count("epoch 2/2") == 1


def _ddp_gradients(rank: int, world: int, init_file: str, imgs, targets, out: str) -> None:
    """One rank: its half of the batch through DDP(model) in eval mode (BatchNorm on running
    statistics, so the ranks' forward passes equal the single process's), the trainer's
    loss_for_backward, backward; rank 0 saves the averaged gradients."""
    import torch
    import torch.distributed as dist

    from yolo_core import build_model
    from yolo_core.loss import compute_loss
    from yolo_core.train.distributed import DistContext, loss_for_backward

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = build_model("yolov5n", nc=3).eval()
    net = torch.nn.parallel.DistributedDataParallel(model)
    per = imgs.shape[0] // world
    mine = targets[(targets[:, 0] >= rank * per) & (targets[:, 0] < (rank + 1) * per)].clone()
    mine[:, 0] -= rank * per
    _, raw = net(imgs[rank * per:(rank + 1) * per])
    loss, _ = compute_loss(model, raw, mine)
    loss_for_backward(loss, DistContext(rank=rank, local_rank=rank, world_size=world)).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    dist.destroy_process_group()


def test_ddp_loss_gives_the_gradient_of_the_whole_batch(tmp_path: Path) -> None:
    import torch
    import torch.multiprocessing as mp

    from yolo_core import build_model
    from yolo_core.loss import compute_loss

    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(4, 3, 64, 64, generator=g)
    # the same boxes in each half, so both ranks match the same number of targets: the
    # box and class terms (means over matched targets) then add up exactly across ranks
    boxes = [[0, 0.3, 0.3, 0.2, 0.3], [1, 0.7, 0.6, 0.1, 0.1], [2, 0.5, 0.5, 0.6, 0.5]]
    targets = torch.tensor([[i, *b] for i in range(4) for b in boxes[: 2 + i % 2]], dtype=torch.float32)
    out = tmp_path / "grads.pt"
    mp.spawn(_ddp_gradients, args=(2, str(tmp_path / "init"), imgs, targets, str(out)), nprocs=2, join=True)
    ddp = torch.load(out)

    torch.manual_seed(0)
    model = build_model("yolov5n", nc=3).eval()
    _, raw = model(imgs)
    compute_loss(model, raw, targets)[0].backward()
    single = {n: p.grad for n, p in model.named_parameters()}
    assert single.keys() == ddp.keys()
    worst = max(((ddp[n] - single[n]).abs().max() / single[n].abs().max().clamp_min(1e-12)).item() for n in single)
    assert worst < 1e-4, worst
