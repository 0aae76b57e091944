"""API keys never enter a config: Hydra writes configs to .hydra/*.yaml, multirun.yaml and submitit pickles.

The Comet key is read from the environment (COMET_API_KEY, or `comet login`) by comet_ml
itself. `RefuseSecrets` (a Hydra callback, hydra.callbacks in conf/config.yaml) stops, in
on_run_start/on_multirun_start, i.e. before Hydra writes anything:
- a key-like setting anywhere in the composed config, Hydra's node included
  (`+logger.api_key=...`, `+hydra.job.env_set.COMET_API_KEY=...`);
- a launcher setup line that assigns one (`hydra.launcher.setup=['export COMET_API_KEY=...']`);
- the value of the Comet key in this environment, wherever it appears.
A refusal exits with status 2 (experiments/exits.py) and never prints the value.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from yolo_core.train import ConfigError

# whole words of a setting's name (split at _ . - and case changes): COMET_API_KEY, logger.api_key,
# HF_TOKEN, db_password; not TOKENIZERS_PARALLELISM or refuse_secrets
_SECRET_WORDS = {"apikey", "token", "secret", "password", "passwd"}
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(\S*)")
KEY_VARIABLES = ("COMET_API_KEY",)
MESSAGE = (
    "{what} is refused: an API key is read from the environment only, so that it never lands in "
    ".hydra/*.yaml, multirun.yaml, job pickles or the run's logs. Remove it and run `export COMET_API_KEY=...` "
    "(or `comet login`) before the command; Slurm and SGE jobs inherit the environment.")


class SecretInConfigError(ConfigError):
    """An API key was given as a config value, override, env_set entry or launcher setup line."""


def _is_secret_name(name: str) -> bool:
    words = [w for w in re.split(r"[_.\-\s]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if w]
    joined = {a + b for a, b in zip(words, words[1:])}  # api_key -> apikey
    return bool(_SECRET_WORDS & (set(words) | joined))


def _assigns_secret(line: str) -> bool:
    """A shell line that sets a key-like variable to a literal (`export COMET_API_KEY=abc`); one that
    reads it from elsewhere (`=$(cat file)`, `=${VAR}`) writes no key into the config."""
    return any(_is_secret_name(name) and value and not value.startswith(("$", "\"$", "'$"))
               for name, value in _ASSIGNMENT.findall(line))


def find_secrets(node: Any, path: str = "") -> list[str]:
    """Where a config holds a key: key-like setting names, setup lines assigning one, and
    strings containing the Comet key of this environment. Paths only, never values."""
    values = [v for v in (os.environ.get(k) for k in KEY_VARIABLES) if v and len(v) >= 8]
    found: list[str] = []

    def walk(n: Any, p: str) -> None:
        if isinstance(n, Mapping):
            for k, v in n.items():
                q = f"{p}.{k}" if p else str(k)
                if _is_secret_name(str(k)):
                    found.append(q)
                else:
                    walk(v, q)
        elif isinstance(n, (list, tuple)):
            for i, v in enumerate(n):
                walk(v, f"{p}[{i}]")
        elif isinstance(n, str):
            if any(v in n for v in values):
                found.append(f"{p} (holds the value of {'/'.join(KEY_VARIABLES)})")
            elif p.startswith("hydra.launcher") and _assigns_secret(n):
                found.append(f"{p} (a setup line assigning a key)")

    walk(node, path)
    return found


def refuse_secret_overrides(argv: Iterable[str]) -> None:
    """Raise SecretInConfigError for an override such as logger.api_key=...; for a plain argv."""
    for arg in argv:
        key = arg.split("=", 1)[0]
        if not key.startswith("~") and _is_secret_name(key.lstrip("+")):  # ~key deletes: no value given
            raise SecretInConfigError(MESSAGE.format(what=f"the override {key}=..."))


def refuse_secrets_in(config: DictConfig | Mapping[str, Any]) -> None:
    """Raise SecretInConfigError naming where the config holds a key (the whole tree, hydra node included)."""
    tree = OmegaConf.to_container(config, resolve=False) if isinstance(config, DictConfig) else config
    refuse_secret_overrides(OmegaConf.select(OmegaConf.create(tree), "hydra.overrides.task", default=None) or [])
    found = find_secrets(tree)
    if found:
        raise SecretInConfigError(MESSAGE.format(what=", ".join(found)))


class RefuseSecrets(Callback):
    """Hydra callback: refuse a key in the composed config before Hydra writes anything (exit status 2)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse(config)


def _refuse(config: DictConfig) -> None:
    from experiments.exits import InvalidConfig

    try:
        refuse_secrets_in(config)
    except SecretInConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise InvalidConfig(str(e)) from None
