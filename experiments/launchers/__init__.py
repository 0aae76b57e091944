"""Cluster glue for sweeps: what a Hydra launcher needs beyond submitit.

    hydra_conf.py  the launchers' structured configs (hydra/launcher=submitit_local_sweep|..._slurm_sweep|submitit_sge)
    runs.py        the run-directory facts a launcher acts on (completed? mark a lost job failed)
    pool.py        submit a list of jobs to any submitit executor (SGE: integrations/sge.py), at most N
                   at once, wait for all

The Hydra launchers themselves live in hydra_plugins/convnext_yolo_launchers (Hydra only
instantiates plugins from the hydra_plugins namespace); they are thin wrappers of these.
"""
