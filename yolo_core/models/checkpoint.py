"""Load weights from official YOLOv5 `.pt` files and this project's checkpoints, safely.

An official checkpoint is a pickle of the model *object* (`models.yolo.DetectionModel`
and friends), so plain `torch.load` needs the official code on sys.path and would run
whatever a crafted file names. Here a restricted unpickler resolves every class the file
names to an inert container that only records its pickled state; the only real callables
it hands out are torch's tensor-rebuild functions and a few harmless builtins. Anything
else is refused, naming the `module.name` it refused. The inert tree is then walked like
`state_dict()` to collect parameters and buffers under the official keys, which are
renamed with official_keys.from_official.

This project's own checkpoints are plain dicts of tensors, loaded with
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

import collections
import os
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .official_keys import from_official

# Modules whose classes become inert containers (never imported, never run).
_INERT_MODULES = {"models.yolo", "models.common", "models.experimental"}
_INERT_MODULE_PREFIX = "torch.nn.modules."
# Metadata that may sit beside the model in training checkpoints (best_fitness as numpy,
# paths in opt): also inert, their values are not needed.
_INERT_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "Path"),
    ("argparse", "Namespace"),
}
# Real callables that only build data.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
    ("builtins", "slice"): slice, ("__builtin__", "slice"): slice,
    ("builtins", "complex"): complex, ("__builtin__", "complex"): complex,
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint names a global this loader will not resolve."""


class InertObject:
    """Stands in for a class of the pickle: keeps constructor args and state, runs nothing."""

    pickled_name = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.pickled_args = args

    def __setstate__(self, state: Any) -> None:
        # nn.Module pickles its __dict__ (_parameters, _buffers, _modules, ...).
        self.pickled_state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"

    @property
    def state(self) -> dict:
        s = getattr(self, "pickled_state", None)
        if isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], dict):  # (dict, slots)
            s = s[0]
        return s if isinstance(s, dict) else {}


_INERT_CLASSES: dict[str, type[InertObject]] = {}


def _inert_class(module: str, name: str) -> type[InertObject]:
    key = f"{module}.{name}"
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(f"Inert_{name}", (InertObject,), {"pickled_name": key})
    return _INERT_CLASSES[key]


def _is_inert(module: str, name: str) -> bool:
    return module in _INERT_MODULES or module.startswith(_INERT_MODULE_PREFIX) or (module, name) in _INERT_NAMES


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class resolves only the allow-list above."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if _is_inert(module, name):
            return _inert_class(module, name)
        raise UnsafeCheckpointError(
            f"refused to load {module}.{name}: the checkpoint names a global that is neither a YOLOv5/torch.nn "
            f"class nor a tensor-rebuild function, so it may run code; this loader will not resolve it")


def _restricted_pickle_module() -> types.ModuleType:
    """A stand-in 'pickle module' for torch.load(pickle_module=...)."""
    mod = types.ModuleType("yolo_core_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.UnpicklingError = pickle.UnpicklingError
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    return mod


def load_official_pickle(path: str | os.PathLike) -> Any:
    """Unpickle an official YOLOv5 checkpoint with the restricted unpickler (inert objects)."""
    try:
        # weights_only=False is what allows a custom pickle_module; the module passed is
        # the restricted one, so nothing outside the allow-list is ever resolved.
        return torch.load(path, map_location="cpu", pickle_module=_restricted_pickle_module(), weights_only=False)
    except RuntimeError as e:
        if "pickle_module" in str(e):
            raise RuntimeError(f"{path}: TORCH_FORCE_WEIGHTS_ONLY_LOAD forbids the restricted unpickler needed for "
                               f"official YOLOv5 checkpoints; unset it to load this file") from e
        raise


def inert_state_dict(module: InertObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Walk an inert nn.Module tree in state_dict() order: own params, own buffers, children."""
    state = module.state
    out: dict[str, torch.Tensor] = {}
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        for name, t in (state.get(kind) or {}).items():
            if t is None or (kind == "_buffers" and name in non_persistent):
                continue
            out[prefix + name] = t
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, InertObject):
            out.update(inert_state_dict(child, f"{prefix}{name}."))
    return out


def _as_fp32(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain tensors (no Parameter), half -> float32, everything on the CPU."""
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu() for k, v in sd.items()}


def _official_model(ckpt: Any, path: str | os.PathLike) -> InertObject:
    if isinstance(ckpt, InertObject):
        return ckpt
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"{path}: expected a checkpoint dict or model, got {type(ckpt).__name__}")
    for key in ("ema", "model"):  # EMA first, as the official attempt_load does
        if isinstance(ckpt.get(key), InertObject):
            return ckpt[key]
    raise ValueError(f"{path}: no model object under 'ema' or 'model' (keys: {sorted(map(str, ckpt))})")


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _own_state_dict(ckpt: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    if _is_tensor_dict(ckpt):  # a bare state dict (e.g. reference/yolov5s_seed0_state.pt)
        return dict(ckpt)
    if isinstance(ckpt, Mapping) and _is_tensor_dict(ckpt.get("model")):
        return dict(ckpt["model"])
    keys = sorted(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
    raise ValueError(f"{path}: not a weights file this loader knows: expected a state dict, a dict with a "
                     f"state dict under 'model', or an official YOLOv5 checkpoint (got {keys})")


def load_checkpoint_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A float32 state dict with this project's key names from any supported weights file.

    Accepts an official YOLOv5 `.pt` (the pickled model object; 'ema' preferred over
    'model'), this project's checkpoints ({'model': state_dict, ...}), a bare state dict
    and `.safetensors`. Official `model.N.*` keys are renamed (official_keys.from_official).
    Nothing a file names is executed: see the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return from_official(_as_fp32(load_file(str(path))))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refused a global: an official checkpoint (or a hostile file); the
        # restricted unpickler either makes it inert or refuses it by name.
        ckpt = load_official_pickle(path)
        sd = inert_state_dict(_official_model(ckpt, path))
        if not sd:
            raise ValueError(f"{path}: the model object holds no parameters") from None
        return from_official(_as_fp32(sd))
    return from_official(_as_fp32(_own_state_dict(ckpt, path)))
