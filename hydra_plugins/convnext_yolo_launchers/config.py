"""Registers this project's launcher configs when Hydra scans its plugins (see experiments/launchers/hydra_conf.py)."""

from experiments.launchers.hydra_conf import register_launcher_configs

register_launcher_configs()
