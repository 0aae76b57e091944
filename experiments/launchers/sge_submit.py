"""Job-side entry point of SGE jobs:  python -m experiments.launchers.sge_submit FOLDER

submitit's own `python -m submitit.core._submit FOLDER` would not recognise the job's
environment (SGE is not a built-in submitit cluster), so this registers it first. A
requeue asked for by submitit's checkpointing (SGEJobEnvironment._requeue) becomes exit
status 99, which makes SGE reschedule the job.
"""
from __future__ import annotations

import sys

from experiments.launchers.sge import REQUEUE_EXIT_CODE, register_with_submitit, requeue_requested


def main() -> None:
    register_with_submitit()
    from submitit.core.submission import submitit_main

    try:
        submitit_main()
    except SystemExit:
        if requeue_requested():
            sys.exit(REQUEUE_EXIT_CODE)
        raise
    if requeue_requested():
        sys.exit(REQUEUE_EXIT_CODE)


if __name__ == "__main__":
    main()
