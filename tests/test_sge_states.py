"""SGE job states as the sweep's waiting loop sees them (no daemons: qstat text as SGE prints it)."""
from __future__ import annotations

import pytest

from experiments.launchers.sge import SGEInfoWatcher, parse_qstat

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
