"""Optimisation: parameter groups (schedules and EMA live beside them)."""
from .param_groups import build_param_groups

__all__ = ["build_param_groups"]
