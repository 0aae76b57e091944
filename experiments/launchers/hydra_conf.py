"""Structured configs of this project's Hydra launchers (hydra/launcher options).

Each adds to hydra-submitit-launcher's queue configs:
  max_parallel  jobs running at once (None: submit all; Slurm then uses one job array)
  setup         shell lines run before each job (cpus_per_task also sets OMP_NUM_THREADS)
  poll_s        how often job states are polled while waiting

Why here and not only in hydra_plugins/: every composition needs these options (the
default cluster=local selects one), also where Hydra's plugin scan cannot see the
plugin package (an install that predates it); experiments.schema.register_configs()
stores them. The launcher classes (_target_) are only needed when a multirun launches.
"""
from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf

_PKG = "hydra_plugins.convnext_yolo_launchers.launcher"


@dataclass
class LocalSweepConf(LocalQueueConf):
    """Jobs as separate local processes (submitit's local executor), at most max_parallel at once."""

    _target_: str = f"{_PKG}.LocalSweepLauncher"
    timeout_min: int = 1440
    max_parallel: Optional[int] = 2
    max_num_timeout: int = 3
    setup: List[str] = field(default_factory=list)
    poll_s: float = 1.0


@dataclass
class SlurmSweepConf(SlurmQueueConf):
    """hydra-submitit-launcher's Slurm launcher that waits for every job and skips completed runs."""

    _target_: str = f"{_PKG}.SlurmSweepLauncher"
    max_parallel: Optional[int] = None
    poll_s: float = 2.0


@dataclass
class SGEQueueConf(BaseQueueConf):
    """Son of Grid Engine through integrations.sge.SGEExecutor (qsub/qstat/qacct)."""

    _target_: str = f"{_PKG}.SGELauncher"
    queue: Optional[str] = None                 # qsub -q
    project: Optional[str] = None               # qsub -P
    pe: Optional[str] = None                    # parallel environment for cpus_per_task (-pe PE N)
    gpu_resource: str = "gpu"                   # -l <gpu_resource>=gpus_per_node
    mem_resource: str = "h_vmem"                # -l <mem_resource>=<mem_gb>G (per slot)
    additional_args: List[str] = field(default_factory=list)   # raw qsub arguments
    rerunnable: bool = True                     # qsub -r y (requeue by exit 99 needs it on some sites)
    export_env: bool = True                     # qsub -V: the submitting environment reaches the job
    python: Optional[str] = None                # interpreter on the execution hosts (default: this one)
    max_num_timeout: int = 3
    max_parallel: Optional[int] = None
    setup: List[str] = field(default_factory=list)
    poll_s: float = 2.0



def register_launcher_configs() -> None:
    """hydra/launcher=submitit_local_sweep | submitit_slurm_sweep | submitit_sge, hydra/sweeper=grid (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group="hydra/launcher", name="submitit_local_sweep", node=LocalSweepConf, provider="convnext_yolo")
    cs.store(group="hydra/launcher", name="submitit_slurm_sweep", node=SlurmSweepConf, provider="convnext_yolo")
    cs.store(group="hydra/launcher", name="submitit_sge", node=SGEQueueConf, provider="convnext_yolo")
    from hydra_plugins.convnext_yolo_launchers.sweeper import GridSweeperConf

    cs.store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="convnext_yolo")
