"""The composed config's `logger` group -> a yolo_core RunLogger (conf/logger/{local,comet}.yaml).

    local  the trainer's own files only (results.csv, summary.json, train.log): a no-op RunLogger
    comet  experiments.comet_logger.CometLogger (online, or an offline archive in <run_dir>/comet/)

The Comet API key is read from the environment (COMET_API_KEY, or `comet login`), never
from the config: a config value would be written to .hydra/config.yaml and overrides.yaml.
`RefuseSecretsCallback` (a Hydra callback, hydra.callbacks in conf/config.yaml) stops a
`+logger.api_key=...` override before Hydra writes anything, in runs and multiruns alike;
`refuse_secret_overrides(argv)` is the same check for a plain argv; `build_logger` refuses a
key that reached the config some other way.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from yolo_core.loggers import RunLogger

from experiments.comet_logger import CometLogger

LOGGERS = ("local", "comet")
_SECRET_WORDS = ("api_key", "apikey", "api-key")

SECRET_MESSAGE = (
    "{what} is refused: the Comet API key is read from the environment only, so that it never lands in "
    ".hydra/config.yaml, overrides.yaml or the run's logs. Remove it and run `export COMET_API_KEY=...` "
    "(or `comet login`) instead.")


class SecretInConfigError(ValueError):
    """An API key was given as a config value or override."""


def refuse_secret_overrides(argv: Iterable[str]) -> None:
    """Raise SystemExit (with a clear message) for an override such as logger.api_key=...; call before Hydra."""
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~").lower()
        if any(w in key for w in _SECRET_WORDS):
            raise SystemExit("error: " + SECRET_MESSAGE.format(what=f"the override {key}=..."))


class RefuseSecretsCallback(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): refuse an API key among the overrides or the
    composed config in on_run_start/on_multirun_start, i.e. before Hydra writes .hydra/*.yaml."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_in_hydra_config(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_in_hydra_config(config)


def _refuse_in_hydra_config(config: DictConfig) -> None:
    overrides = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
    refuse_secret_overrides(overrides)
    task = {k: config[k] for k in config if k != "hydra"}
    secrets = _find_secret_keys(OmegaConf.to_container(OmegaConf.create(task), resolve=False))
    if secrets:
        raise SystemExit("error: " + SECRET_MESSAGE.format(what="the config value " + ", ".join(secrets)))


def _find_secret_keys(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, Mapping):
        for k, v in node.items():
            p = f"{path}.{k}" if path else str(k)
            if any(w in str(k).lower() for w in _SECRET_WORDS):
                found.append(p)
            found += _find_secret_keys(v, p)
    return found


def build_logger(cfg: DictConfig | Mapping[str, Any]) -> RunLogger:
    """The RunLogger the composed config asks for (no `logger` node: local)."""
    c: Any = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    secrets = _find_secret_keys(c)
    if secrets:
        raise SecretInConfigError(SECRET_MESSAGE.format(what="the config value " + ", ".join(secrets)))
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
