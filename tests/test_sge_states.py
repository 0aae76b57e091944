"""SGE without daemons: job states as the sweep's waiting loop sees them (qstat text as SGE prints it),
the submitit plugin entry points, and the job side's requeue exit status."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from integrations.sge import SGEExecutor, SGEInfoWatcher, SGEJobEnvironment, parse_qstat

QSTAT = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID
-----------------------------------------------------------------------------------------------------------------
     11 0.55500 submitit   root         r     11/26/2026 08:00:01 all.q@vm                           1
     12 0.55500 submitit   root         qw    11/26/2026 08:00:02                                    1
     13 0.55500 submitit   root         s     11/26/2026 08:00:03 all.q@vm                           1
     14 0.55500 submitit   root         S     11/26/2026 08:00:04 all.q@vm                           1
     15 0.55500 submitit   root         T     11/26/2026 08:00:05 all.q@vm                           1
     16 0.55500 submitit   root         Eqw   11/26/2026 08:00:06                                    1
"""


@pytest.mark.parametrize("job,state,done", [("11", "RUNNING", False), ("12", "PENDING", False),
                                            ("13", "SUSPENDED", False), ("14", "SUSPENDED", False),
                                            ("15", "SUSPENDED", False), ("16", "ERROR", True)])
def test_a_suspended_job_is_not_done(job: str, state: str, done: bool) -> None:
    watcher = SGEInfoWatcher()
    watcher._info_dict.update(watcher.read_info(QSTAT))
    assert parse_qstat(QSTAT)[job] and watcher.get_state(job, mode="cache") == state
    assert watcher.is_done(job, mode="cache") is done


def test_submitit_finds_the_sge_executor_and_environment_through_its_entry_points() -> None:
    from submitit.core import plugins

    eps = {ep.name: ep.value for ep in metadata.entry_points(group="submitit")}
    assert eps.items() >= {"executor": "integrations.sge:SGEExecutor",
                           "job_environment": "integrations.sge:SGEJobEnvironment"}.items()
    assert plugins.get_executors()["sge"] is SGEExecutor
    assert type(plugins.get_job_environments()["sge"]) is SGEJobEnvironment


def test_submitits_own_job_entry_recognises_sge_and_a_requeue_exits_99(tmp_path: Path) -> None:
    """What qsub runs: python -m submitit.core._submit FOLDER; submitit's signal -> requeue -> exit 99."""
    import submitit
    from submitit.core.utils import JobPaths

    delayed = submitit.helpers.DelayedSubmission(signal.raise_signal, signal.SIGUSR2)
    delayed.set_timeout(60, 3)
    delayed.dump(JobPaths(tmp_path, job_id="7").submitted_pickle)
    env = {**os.environ, "SUBMITIT_EXECUTOR": "sge", "JOB_ID": "7", "SUBMITIT_PREEMPT_SIGNAL": "USR2"}
    out = subprocess.run([sys.executable, "-u", "-m", "submitit.core._submit", str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 99, out.stdout[-3000:] + out.stderr[-3000:]
