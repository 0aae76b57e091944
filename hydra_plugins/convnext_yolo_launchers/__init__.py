"""Hydra launchers of this project (hydra/launcher=submitit_local_sweep|submitit_slurm_sweep|submitit_sge).

Hydra only instantiates plugins found in the `hydra_plugins` namespace package, hence
this small package; the cluster logic is in experiments/launchers/.
"""
