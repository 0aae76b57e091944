"""A submitit executor for (Son of) Grid Engine: submitit has Slurm and local, not SGE.

    ex = SGEExecutor(folder="multirun/x/.submitit/%j")
    ex.update_parameters(job_name="train", timeout_min=60, queue="all.q", setup=["export A=1"])
    job = ex.submit(fn, *args)     # qsub -terse; job.result() as with Slurm

How it follows the pitfalls in shared/cluster/README.md:
- every job gets an explicit `-N` (a name derived from a command with `;` breaks qsub),
  sanitised to what SGE accepts;
- `qsub -terse` prints `ID` (or `ID.1-N:1` for an array): the id is the part before '.';
- state: `qstat` lists queued/running jobs only; once a job is gone from it, `qacct -j ID`
  has `failed` and `exit_status` (137 after a qdel of a running job). A job deleted
  before it started has no accounting record at all: after `gone_grace_s` without one it
  counts as DELETED, so a wait never hangs;
- SGE cannot create the per-job log directory before the job starts (`-o` into a missing
  directory puts the job in error state), so the job script creates it and redirects
  its own output there; `-o`/`-e` only catch the script's first lines in the
  id-independent folder.
- requeue (submitit checkpointing: timeout/preemption signal -> checkpoint() -> requeue)
  uses SGE's own convention: the job exits with status 99 and SGE puts it back in the
  queue.
Array jobs are not used: one qsub per call (the Hydra launcher limits how many run).
submitit finds the executor and the job environment through its plugin entry points
(group `submitit`, names `executor` and `job_environment`, declared in pyproject.toml), so
a job runs submitit's own `python -m submitit.core._submit FOLDER`: `pip install -e .`.
"""
from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from submitit.core import core, job_environment, utils

LOG = logging.getLogger(__name__)

REQUEUE_EXIT_CODE = 99       # SGE reschedules a job whose script exits with 99

# states of a job that has not ended: submitit's list (core.InfoWatcher.is_done) plus SUSPENDED,
# which qstat reports for s/S/T and submitit's list lacks
_INCOMPLETE = ("READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED", "SUSPENDED")


def _qstat_state(code: str) -> str:
    """Map a qstat state code (qw, hqw, r, t, Rr, dr, s, Eqw, ...) to a submitit-style state."""
    if "E" in code:
        return "ERROR"            # stays in the queue forever (e.g. Eqw): counts as ended
    if "d" in code:
        return "COMPLETING"       # being deleted
    if code.endswith("qw") or code in ("qw", "hqw", "hRwq", "Rq"):
        return "PENDING"
    if any(c in code for c in "sST"):
        return "SUSPENDED"
    return "RUNNING"              # r, t, Rr, ...


def parse_qstat(text: str) -> dict[str, str]:
    """{job id: qstat state code} from plain `qstat -u '*'` output (two header lines)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].isdigit():
            states.setdefault(parts[0], parts[4])
    return states


def parse_qacct(text: str) -> dict[str, str]:
    """The last accounting record of `qacct -j ID` as {field: value} (a requeued job has several)."""
    records: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("====="):
            records.append({})
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            if not records:
                records.append({})
            records[-1][parts[0]] = parts[1].strip()
    return records[-1] if records else {}


def accounting_state(record: dict[str, str]) -> str:
    """COMPLETED for failed=0 and exit_status=0, REQUEUED for exit 99, else FAILED."""
    failed = record.get("failed", "0").split()[0]
    exit_status = record.get("exit_status", "0").split()[0]
    if exit_status == str(REQUEUE_EXIT_CODE):
        return "REQUEUED"
    return "COMPLETED" if failed == "0" and exit_status == "0" else "FAILED"


class SGEInfoWatcher(core.InfoWatcher):
    """Job states for all registered jobs from one qstat call, plus qacct for jobs that left it."""

    gone_grace_s = 60.0   # a job absent from qstat with no qacct record for this long was deleted

    def __init__(self, delay_s: int = 30) -> None:
        super().__init__(delay_s)
        self._gone_since: dict[str, float] = {}

    def _make_command(self) -> list[str] | None:
        return ["qstat", "-u", "*"] if self._registered - self._finished else None

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        """submitit's test, with a suspended job counted as not done (the sweep keeps waiting)."""
        return self.get_state(job_id, mode=mode).upper() not in _INCOMPLETE

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        return {jid: {"JobID": jid, "State": _qstat_state(code), "qstat": code}
                for jid, code in parse_qstat(text).items()}

    def update(self) -> None:
        """qstat for the live jobs; qacct for registered ones that are no longer listed."""
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        try:
            self._output = subprocess.check_output(command, stderr=subprocess.STDOUT, timeout=60)
        except Exception as e:  # keep the last known states; the next call retries
            LOG.warning("qstat failed (%s); job states may be stale", e)
            self._last_status_check = time.time()
            return
        live = self.read_info(self._output)
        self._info_dict.update(live)
        now = time.time()
        for jid in self._registered - self._finished - set(live):
            self._info_dict[jid] = self._finished_info(jid, now)
        self._last_status_check = now
        for jid in self._registered - self._finished:
            if self.is_done(jid, mode="cache"):
                self._finished.add(jid)

    def _finished_info(self, jid: str, now: float) -> dict[str, str]:
        try:
            out = subprocess.run(["qacct", "-j", jid], capture_output=True, text=True, timeout=60)
            record = parse_qacct(out.stdout) if out.returncode == 0 else {}
        except Exception:  # qacct missing or hanging: treat as no record yet
            record = {}
        if record:
            state = accounting_state(record)
            if state != "REQUEUED":
                self._gone_since.pop(jid, None)
                return {"JobID": jid, "State": state, "failed": record.get("failed", ""),
                        "exit_status": record.get("exit_status", "")}
        first = self._gone_since.setdefault(jid, now)
        if now - first >= self.gone_grace_s:
            return {"JobID": jid, "State": "DELETED" if not record else "FAILED",
                    "exit_status": record.get("exit_status", "")}
        return {"JobID": jid, "State": "REQUEUED" if record else "UNKNOWN"}


class SGEJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = SGEInfoWatcher()


class SGEJobEnvironment(job_environment.JobEnvironment):
    """Inside an SGE job: JOB_ID is the id; one task per job (no MPI-style tasks)."""

    _env = {
        "job_id": "JOB_ID",
        "num_tasks": "SUBMITIT_SGE_NTASKS",
        "num_nodes": "SUBMITIT_SGE_NNODES",
        "node": "SUBMITIT_SGE_NODEID",
        "global_rank": "SUBMITIT_SGE_GLOBALID",
        "local_rank": "SUBMITIT_SGE_LOCALID",
    }

    def _requeue(self, countdown: int) -> None:
        """submitit's requeue hook: exit with 99 (before submitit's own exit -1), so that SGE reschedules the job."""
        LOG.info("job %s: requeue requested (%d timeouts left); exiting with %d", self.job_id, countdown,
                 REQUEUE_EXIT_CODE)
        raise SystemExit(REQUEUE_EXIT_CODE)


_VALID = {"job_name", "timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb", "queue", "project", "pe",
          "gpu_resource", "mem_resource", "additional_args", "setup", "stderr_to_stdout", "tasks_per_node",
          "nodes", "rerunnable", "export_env"}


class SGEExecutor(core.PicklingExecutor):
    """submitit executor that submits each call as one `qsub` job (see the module docstring).

    Parameters (update_parameters): job_name, timeout_min (-> -l h_rt), queue (-q),
    project (-P), cpus_per_task with pe (-pe PE N; SGE has no default PE), gpus_per_node
    (-l GPU_RESOURCE=N, default resource name `gpu`), mem_gb (-l MEM_RESOURCE=NG, default
    h_vmem, which SGE counts per slot), additional_args (raw qsub arguments), setup
    (shell lines run before the job), stderr_to_stdout, rerunnable (-r y, default),
    export_env (-V: the submitter's environment, default, as sbatch does).
    """

    job_class = SGEJob

    def __init__(self, folder: str | Path, max_num_timeout: int = 3, max_pickle_size_gb: float = 1.0,
                 python: str | None = None) -> None:
        super().__init__(folder, max_num_timeout=max_num_timeout, max_pickle_size_gb=max_pickle_size_gb)
        if shutil.which("qsub") is None:
            raise RuntimeError("qsub not found: is this a Grid Engine submit host (SGE_ROOT, PATH)?")
        if f"{__name__}:SGEJobEnvironment" not in {ep.value for ep in metadata.entry_points(group="submitit")}:
            raise RuntimeError("submitit's entry points lack the SGE job environment, so jobs could not start: "
                               "pip install -e . (pyproject.toml declares them)")
        self.python = shlex.quote(sys.executable) if python is None else python
        self.parameters.setdefault("job_name", "submitit")
        utils.JobPaths.get_first_id_independent_folder(self.folder).mkdir(parents=True, exist_ok=True)

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return set(_VALID)

    def _internal_update_parameters(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - _VALID)
        if unknown:
            raise ValueError(f"unknown SGE parameter(s) {unknown}; valid: {sorted(_VALID)}")
        for key in ("tasks_per_node", "nodes"):
            if kwargs.get(key) not in (None, 1):
                raise ValueError(f"{key}={kwargs[key]}: the SGE executor runs one task on one node per job")
        if kwargs.get("cpus_per_task") not in (None, 1) and not (kwargs.get("pe") or self.parameters.get("pe")):
            LOG.warning("cpus_per_task=%s without a parallel environment (pe=...): SGE reserves one slot",
                        kwargs["cpus_per_task"])
        super()._internal_update_parameters(**{k: v for k, v in kwargs.items() if v is not None})

    @property
    def _submitit_command_str(self) -> str:
        return " ".join([self.python, "-u -m submitit.core._submit", shlex.quote(str(self.folder))])

    def _num_tasks(self) -> int:
        return 1

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return make_job_script(command, self.folder, **self.parameters)

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return ["qsub", "-terse", str(submission_file_path)]

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        text = string.decode() if isinstance(string, bytes) else string
        m = re.search(r"^\s*(\d+)(?:\.\S+)?\s*$", text, re.MULTILINE) or re.search(r"Your job (\d+)", text)
        if m is None:
            raise utils.FailedSubmissionError(f"could not read a job id from qsub's output {text!r}")
        return m.group(1)

    @classmethod
    def affinity(cls) -> int:
        return -1 if shutil.which("qsub") is None else 1


def sge_job_name(name: str) -> str:
    """A name qsub accepts: letters, digits, _ . - only, not starting with a digit, <= 64 chars."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "job"
    if not clean[0].isalpha():
        clean = "j" + clean
    return clean[:64]


def _shell_path(path: str | Path, task: int = 0) -> str:
    """A submitit path with %j/%t placeholders as a shell word with $JOB_ID expanded at run time."""
    text = str(path).replace("%t", str(task))
    return '"${JOB_ID}"'.join(shlex.quote(part) if part else "" for part in text.split("%j")) or "''"


def make_job_script(command: str, folder: str | Path, job_name: str = "submitit", timeout_min: float | None = None,
                    queue: str | None = None, project: str | None = None, pe: str | None = None,
                    cpus_per_task: int | None = None, gpus_per_node: int | None = None,
                    gpu_resource: str = "gpu", mem_gb: float | None = None, mem_resource: str = "h_vmem",
                    additional_args: list[str] | None = None, setup: list[str] | None = None,
                    stderr_to_stdout: bool = False, rerunnable: bool = True, export_env: bool = True,
                    **_: Any) -> str:
    """The qsub script: #$ directives, setup lines, then the submitit command with logs in the job folder."""
    indep = utils.JobPaths.get_first_id_independent_folder(folder)
    paths = utils.JobPaths(folder)
    lines = ["#!/bin/bash", f"#$ -N {sge_job_name(job_name)}", "#$ -S /bin/bash", "#$ -cwd",
             f"#$ -r {'y' if rerunnable else 'n'}", f"#$ -o {indep}", "#$ -j y"]
    if export_env:  # as sbatch does by default: the venv, OMP_*, HF_HUB_OFFLINE, ... reach the job
        lines.append("#$ -V")
    if timeout_min:
        secs = int(round(float(timeout_min) * 60))
        lines.append(f"#$ -l h_rt={secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}")
    if queue:
        lines.append(f"#$ -q {queue}")
    if project:
        lines.append(f"#$ -P {project}")
    if pe and cpus_per_task:
        lines.append(f"#$ -pe {pe} {int(cpus_per_task)}")
    if gpus_per_node:
        lines.append(f"#$ -l {gpu_resource}={int(gpus_per_node)}")
    if mem_gb:
        lines.append(f"#$ -l {mem_resource}={mem_gb:g}G")
    if additional_args:
        lines.append("#$ " + " ".join(shlex.quote(str(a)) for a in additional_args))
    out, err = _shell_path(paths.stdout), _shell_path(paths.stderr)
    lines += ["", "# setup", *(setup or []), "", "# command",
              f"mkdir -p {_shell_path(paths.folder)}",
              f"exec >> {out} 2>> {out if stderr_to_stdout else err}",
              "export SUBMITIT_EXECUTOR=sge",
              command, ""]
    return "\n".join(lines)
