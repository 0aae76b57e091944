"""Third-party services behind the project's own interfaces, usable without Hydra:

    comet.py  CometLogger, a yolo_core.loggers.RunLogger (online, or offline archives in the run dir)
    sge.py    SGEExecutor, a submitit executor for (Son of) Grid Engine, registered through
              submitit's plugin entry points (pyproject.toml [project.entry-points.submitit])

experiments/ builds them from the Hydra config; yolo_core never imports them.
"""
