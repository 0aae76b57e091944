"""What the entry points of val, detect and export share: their yolo_core dataclass as the
Hydra schema (conf_tools/), its construction and check, and unusable weights as a refusal."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from experiments.schema import structured_node

T = TypeVar("T")


def register_tool(name: str, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """`<name>_schema` in Hydra's ConfigStore: cls's fields less `exclude` (set by the entry point)."""
    ConfigStore.instance().store(name=f"{name}_schema", node=structured_node(cls, exclude, f"{cls.__name__}Node"))


def tool_config(cls: type[T], cfg: DictConfig, check: Callable[[T], Any], **fixed: Any) -> T:
    """cls of a composed config plus `fixed` fields, checked by `check` (ConfigError: exit 2)."""
    obj = cls(**OmegaConf.to_container(cfg, resolve=True), **fixed)  # type: ignore[arg-type]
    check(obj)
    return obj


@contextlib.contextmanager
def weights_refused(tool: str) -> Iterator[None]:
    """A weights file that is missing or cannot be used is a refusal (exit 2: nothing was done)."""
    from yolo_core.models.checkpoint import CheckpointError
    from yolo_core.train.config import ConfigError

    try:
        yield
    except (FileNotFoundError, CheckpointError) as e:
        raise ConfigError(f"{tool}: {e}") from None
