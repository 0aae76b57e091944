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

Before any of that, check_checkpoint_file looks at the file itself: an empty file, a zip
archive cut short (torch.save writes zip archives; a copy or a write that stopped early
lacks the archive's end), and a zip whose entries declare more uncompressed bytes than
MAX_EXPANSION times the file's size (torch.save stores entries uncompressed, ~1.0x, so
more is a zip bomb or not a torch file; refused before anything is allocated). Every
failure to read a file is a CheckpointError naming the file, the cause and what to do.
"""
from __future__ import annotations

import collections
import os
import pickle
import types
import zipfile
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


MAX_EXPANSION = 2.0  # declared uncompressed bytes per byte on disk (torch.save: ~1.0)
_EXPANSION_SLACK = 1 << 20  # zip headers of tiny files
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(RuntimeError):
    """A weights or checkpoint file that cannot be used; str() names the file, the cause and
    what to do about it."""


def _cause(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def check_checkpoint_file(path: str | os.PathLike, hint: str = "") -> None:
    """Refuse, before loading, a file that is empty, a zip archive cut short, or a zip that
    would expand past MAX_EXPANSION x its size (see the module docstring)."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint{tail}")
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipfile.is_zipfile(path):
        if head == _ZIP_MAGIC:
            raise CheckpointError(f"{path}: truncated: a zip archive (torch.save's format) without its end "
                                  f"(the copy or the write of the file stopped early; {size} bytes){tail}")
        return  # torch's legacy format or a safetensors file: read by their own loaders
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged zip archive ({_cause(e)}){tail}") from None
    limit = MAX_EXPANSION * size + _EXPANSION_SLACK
    if declared > limit:
        raise CheckpointError(f"{path}: its zip entries declare {declared} bytes uncompressed from {size} bytes on "
                              f"disk (more than {MAX_EXPANSION:g}x; torch.save writes ~1x): a zip bomb or not a "
                              f"torch checkpoint, refused before loading{tail}")


def load_training_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", hint: str = "",
                             required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A checkpoint this project's trainer wrote (last.pt, best.pt): checked, loaded with
    weights_only=True, and required to be a dict holding the `required` keys; anything
    else is a CheckpointError ending with `hint` (how to continue)."""
    check_checkpoint_file(path, hint)
    tail = f"; {hint}" if hint else ""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises EOFError, RuntimeError, UnpicklingError, ...
        raise CheckpointError(f"{path}: cannot be read ({_cause(e)}): the file is damaged or not a checkpoint "
                              f"of this trainer{tail}") from e
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint of this trainer (missing {missing}){tail}")
    return state


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
    hint = "give an intact weights file (download or copy it again)"
    check_checkpoint_file(path, hint)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return from_official(_as_fp32(load_file(str(path))))
        except Exception as e:  # noqa: BLE001 - SafetensorError and friends
            raise CheckpointError(f"{path}: cannot be read as safetensors ({_cause(e)}); {hint}") from e
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refused a global: an official checkpoint (or a hostile file); the
        # restricted unpickler either makes it inert or refuses it by name.
        try:
            ckpt = load_official_pickle(path)
        except (UnsafeCheckpointError, RuntimeError) as e:
            if isinstance(e, UnsafeCheckpointError) or "TORCH_FORCE_WEIGHTS_ONLY_LOAD" in str(e):
                raise
            raise CheckpointError(f"{path}: cannot be read ({_cause(e)}); {hint}") from e
        except Exception as e:  # noqa: BLE001 - EOFError, ValueError, ... of a damaged pickle
            raise CheckpointError(f"{path}: cannot be read ({_cause(e)}); {hint}") from e
        sd = inert_state_dict(_official_model(ckpt, path))
        if not sd:
            raise ValueError(f"{path}: the model object holds no parameters") from None
        return from_official(_as_fp32(sd))
    except Exception as e:  # noqa: BLE001 - EOFError (empty pickle), RuntimeError (damaged zip), ...
        raise CheckpointError(f"{path}: cannot be read ({_cause(e)}); {hint}") from e
    return from_official(_as_fp32(_own_state_dict(ckpt, path)))
