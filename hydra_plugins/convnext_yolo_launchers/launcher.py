"""Hydra launchers that run a grid the way a study needs it (built on hydra-submitit-launcher).

Per sweep (main process, `launch`):
- runs whose summary.json says `completed` under the job's config (the run identity,
  as far as it is known before the run starts) are skipped without submitting anything, so
  re-running a sweep directory finishes only what is missing (interrupted runs resume
  from their last.pt, since the job directory is the same);
- the rest go to the submitit executor, at most max_parallel at once, and every job is
  waited for: one failing job never stops the others, and the sweep returns only when
  all have ended (the grid sweeper then raises the first failure, so the command exits non-zero);
- a job that ended without a result (killed, crashed) becomes a FAILED return and its
  run directory is marked failed with the reason.
Per job (`__call__`, inside the job): the same completed-skip (a requeued job that already
finished), Hydra's run_job, then: a run the trainer recorded as `preempted` because of
submitit's preemption/timeout signal is requeued through submitit's checkpoint
mechanism (resuming from last.pt); a run that failed before the trainer wrote anything
gets a `failed` summary.json with the error.
"""
# No `from __future__ import annotations` here: Hydra execs plugin modules before they are in
# sys.modules, and dataclasses cannot resolve string annotations then.

import logging
import os
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

from experiments.launchers import pool, runs

log = logging.getLogger(__name__)

_LAUNCH_KEYS = ("max_parallel", "poll_s", "setup", "max_num_timeout", "submitit_folder", "python")
REPO_ROOT = Path(__file__).resolve().parents[2]   # holds hydra_plugins/ and experiments/


class JobLostError(RuntimeError):
    """A job ended without returning a result (killed, out of memory, node failure, ...)."""


@dataclass
class _Planned:
    idx: int
    overrides: List[str]
    run_dir: Path
    cfg: DictConfig


def _completed_or_refused(cfg: DictConfig, run_dir: Path, overrides: Sequence[str]) -> Optional[JobReturn]:
    """For a run_dir that holds a completed run: COMPLETED when it is this job's config (not run
    again), FAILED when it is another's (refused before run_job rewrites its .hydra/; nothing
    changed). None when there is nothing to decide here: no completed run, train.resume=false,
    or a config that does not convert (the job then fails with its own error)."""
    done = runs.completed_summary(run_dir)
    if done is None or OmegaConf.select(cfg, "train.resume", default=True) is False:
        return None
    from experiments.adapter import skippable  # lazy: imports torch via yolo_core
    from yolo_core.train import IdentityMismatch

    try:
        skip, why = skippable(cfg, run_dir, done)
    except Exception:  # noqa: BLE001 - a config that does not convert: the job runs and reports it itself
        return None
    ret = JobReturn(overrides=list(overrides), cfg=None, hydra_cfg=None, working_dir=os.getcwd(),
                    task_name=str(cfg.hydra.job.name), status=JobStatus.COMPLETED)
    if skip:
        log.info("%s already completed: not run again", run_dir)
        ret.return_value = runs.final_map(done)
        return ret
    error = IdentityMismatch(f"{run_dir} completed under another config; nothing was changed. Differences "
                             f"(stored -> requested): {why}. To train this config, give another "
                             f"hydra.sweep.dir, or train.resume=false to start the run over.")
    log.error("%s", error)
    ret.status, ret._return_value = JobStatus.FAILED, error
    return ret


def _first_line(text: object, limit: int = 400) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


def requeue_signal(exc: object) -> Optional[signal.Signals]:
    """submitit's preemption signal (SIG + the public JobEnvironment.USR_SIG) if it stopped the run, else None."""
    import submitit
    from yolo_core.train import Preempted  # lazy: imports torch

    usr = signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]
    return usr if isinstance(exc, Preempted) and exc.signum == usr else None


class _SweepLauncher(BaseSubmititLauncher):
    """Common launch/wait/skip logic; subclasses only build their submitit executor."""

    _EXECUTOR = "abstract"

    # ------------------------------------------------------------------ job side
    def __call__(self, sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: Dict[type, Singleton]) -> JobReturn:
        import submitit

        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        Singleton.set_state(singleton_state)
        setup_globals()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(sweep_overrides))
        job_env = submitit.JobEnvironment()
        with open_dict(cfg.hydra.job) as job:
            job.id = job_env.job_id
            cfg.hydra.job.num = job_num
        if job_env.num_tasks > 1:
            # tasks_per_node x nodes > 1: one DDP process per task (yolo_core reads RANK, WORLD_SIZE,
            # MASTER_ADDR/PORT); every task sees all GPUs of its node and takes cuda:LOCAL_RANK
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        run_dir = runs.sweep_job_dir(cfg)
        decided = _completed_or_refused(cfg, run_dir, sweep_overrides)  # a requeued job that had finished
        if decided is not None:
            return decided
        ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=cfg,
                      job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")
        if ret.status == JobStatus.FAILED:
            exc = ret._return_value
            if runs.run_status(run_dir) == "preempted":
                self._requeue_if_signalled(exc)
            else:
                runs.mark_failed(run_dir, f"{type(exc).__name__}: {exc}", sweep_overrides)
        return ret

    @staticmethod
    def _requeue_if_signalled(exc: BaseException) -> None:
        """Hand a run preempted by submitit's signal (time limit, preemption) back to submitit.

        The trainer raises Preempted(signum) and the run ends `preempted`; submitit's own
        handler (the trainer has restored it by then) decides: checkpoint() + requeue
        (Slurm: scontrol requeue; SGE: exit 99; local: restart) or, past max_num_timeout,
        give up. A SIGTERM (scancel, qdel) is a cancellation and is left alone.
        """
        usr = requeue_signal(exc)
        handler = signal.getsignal(usr) if usr is not None else None
        owner = type(getattr(handler, "__self__", None)).__module__
        if usr is not None and owner.split(".")[0] == "submitit":  # submitit's handler, not the trainer's
            log.warning("run preempted by %s: handing it to submitit for requeue", usr.name)
            signal.raise_signal(usr)

    # ------------------------------------------------------------------ sweep side
    def _setup_lines(self) -> List[str]:
        """Shell lines run before each job: passive OpenMP, threads = cpus_per_task, importable plugins."""
        lines = ["export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}"]
        threads = self.params.get("cpus_per_task")
        if threads:
            lines.append(f"export OMP_NUM_THREADS={int(threads)} MKL_NUM_THREADS={int(threads)}")
        lines.append(f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}")
        return lines + list(self.params.get("setup") or [])

    def _make_executor(self) -> Any:
        raise NotImplementedError

    def _on_interrupt(self, jobs: List[Any]) -> None:
        from experiments.sweep_lock import record_running_jobs

        ids = [str(j.job_id) for j in jobs]
        record_running_jobs(str(self.config.hydra.sweep.dir), ids)  # type: ignore[union-attr]
        log.warning("%d job(s) keep running on the cluster (%s); the sweep dir stays locked until they have "
                    "ended (then delete its .sweep.lock and re-run: completed runs are skipped); cancel them "
                    "with your scheduler if needed", len(jobs), " ".join(ids))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))

        planned: List[_Planned] = []
        for i, overrides in enumerate(job_overrides):
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = initial_job_idx + i
            planned.append(_Planned(initial_job_idx + i, list(overrides), runs.sweep_job_dir(cfg), cfg))

        returns: Dict[int, JobReturn] = {}
        todo: List[_Planned] = []
        for p in planned:
            decided = _completed_or_refused(p.cfg, p.run_dir, p.overrides)
            if decided is None:
                todo.append(p)
            else:
                returns[p.idx] = decided
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        log.info(f"{len(planned)} job(s): {len(planned) - len(todo)} already completed (skipped), {len(todo)} to run"
                 + (f", at most {self.params['max_parallel']} at once" if self.params.get("max_parallel") else ""))
        for p in planned:
            tag = "" if p in todo else "  [completed, skipped]"
            log.info(f"\t#{p.idx} : {' '.join(filter_overrides(p.overrides))}{tag}")
        if not todo:
            return [returns[p.idx] for p in planned]

        executor = self._make_executor()
        calls = [(p.overrides, "hydra.sweep.dir", p.idx, f"job_id_for_{p.idx}", Singleton.get_state()) for p in todo]
        jobs = pool.run_all(executor, self, calls, max_parallel=self.params.get("max_parallel"),
                            poll_s=float(self.params.get("poll_s") or 1.0), on_interrupt=self._on_interrupt)
        for p, job in zip(todo, jobs):
            returns[p.idx] = self._job_return(p, job)
        return [returns[p.idx] for p in planned]

    def _job_return(self, p: _Planned, job: Any) -> JobReturn:
        """The job's JobReturn, or a FAILED one (and a failed summary.json) when it left none."""
        try:
            return job.results()[0]
        except Exception as e:  # died outside run_job: killed, OOM, exception in the launcher itself
            state = getattr(job, "state", "?")
            detail = "" if "has not produced any output" in str(e) else f": {_first_line(e)}"
            err = (f"job {job.job_id} ended without a result (killed? scheduler state {state}){detail}; "
                   f"logs in {job.paths.folder}")
            log.error("#%d %s", p.idx, err)
            runs.mark_failed(p.run_dir, err, p.overrides)
            return JobReturn(overrides=p.overrides, working_dir=os.getcwd(), task_name=str(p.cfg.hydra.job.name),
                             status=JobStatus.FAILED, _return_value=JobLostError(err))

    def _executor_params(self) -> Dict[str, Any]:
        """Queue parameters for the executor: everything but this launcher's own keys, no Nones."""
        return {k: v for k, v in self.params.items() if k not in _LAUNCH_KEYS and v is not None}


class LocalSweepLauncher(_SweepLauncher):
    """Jobs as separate processes on this machine (submitit LocalExecutor)."""

    _EXECUTOR = "local"

    def _make_executor(self) -> Any:
        from submitit import LocalExecutor

        ex = LocalExecutor(folder=self.params["submitit_folder"], max_num_timeout=int(self.params["max_num_timeout"]))
        p = self._executor_params()
        ex.update_parameters(timeout_min=p.get("timeout_min", 60), tasks_per_node=p.get("tasks_per_node", 1),
                             gpus_per_node=p.get("gpus_per_node") or 0, nodes=p.get("nodes", 1),
                             stderr_to_stdout=p.get("stderr_to_stdout", False), setup=self._setup_lines())
        return ex

    def _on_interrupt(self, jobs: List[Any]) -> None:
        """Local jobs die with the sweep: SIGTERM first, so the trainers record `preempted`."""
        log.warning("stopping %d local job(s); re-run the same sweep dir to resume them", len(jobs))
        pool.stop_local_jobs(jobs)


class SlurmSweepLauncher(_SweepLauncher):
    """Slurm through submitit's SlurmExecutor (a job array when max_parallel is unset)."""

    _EXECUTOR = "slurm"

    def _make_executor(self) -> Any:
        import submitit

        ex = submitit.AutoExecutor(cluster="slurm", folder=self.params["submitit_folder"],
                                   slurm_max_num_timeout=int(self.params.get("max_num_timeout") or 0))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        p = self._executor_params()
        p["setup"] = self._setup_lines()
        ex.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in p.items()})
        return ex


class SGELauncher(_SweepLauncher):
    """Son of Grid Engine through integrations.sge.SGEExecutor (a submitit plugin, see pyproject.toml)."""

    _EXECUTOR = "sge"

    def _make_executor(self) -> Any:
        from integrations.sge import SGEExecutor

        ex = SGEExecutor(self.params["submitit_folder"], max_num_timeout=int(self.params.get("max_num_timeout") or 0),
                         python=self.params.get("python"))
        p = self._executor_params()
        p["job_name"] = p.pop("name", "submitit")
        p["setup"] = self._setup_lines()
        ex.update_parameters(**p)
        return ex
