"""The composed config's `logger` group -> a yolo_core RunLogger (conf/logger/{local,comet}.yaml).

    local  the trainer's own files only (results.csv, summary.json, train.log): a no-op RunLogger
    comet  integrations.comet.CometLogger (online, or an offline archive in <run_dir>/comet/)

The Comet API key is read from the environment only (experiments/secret_guard.py refuses it
in a config, before Hydra writes one; build_logger checks again for a key that got in some other way).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from integrations.comet import CometLogger
from experiments.secret_guard import refuse_secrets_in
from yolo_core.loggers import RunLogger

LOGGERS = ("local", "comet")


def build_logger(cfg: DictConfig | Mapping[str, Any]) -> RunLogger:
    """The RunLogger the composed config asks for (no `logger` node: local)."""
    c: Any = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    refuse_secrets_in({k: v for k, v in c.items() if k != "hydra"})  # a key that reached the config some other way
    lc = c.get("logger") or {"name": "local"}
    name = lc.get("name", "local")
    if name == "local":
        return RunLogger()
    if name == "comet":
        return CometLogger(project=lc.get("project"), workspace=lc.get("workspace"),
                           name=lc.get("experiment_name"), tags=list(lc.get("tags") or ()),
                           offline=bool(lc.get("offline", False)), log_env=bool(lc.get("log_env", False)),
                           log_model=bool(lc.get("log_model", False)), log_images=int(lc.get("log_images") or 0),
                           probe_timeout_s=float(lc.get("probe_timeout_s", 2.5)), params=c)
    raise ValueError(f"logger.name={name!r} is not a logger; choose one of {', '.join(LOGGERS)} "
                     f"(conf/logger/<name>.yaml)")
