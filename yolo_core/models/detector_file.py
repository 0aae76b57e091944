"""A whole detector from a weights file: the model rebuilt, its weights loaded, its class names.

val, detect and export take any checkpoint a user has: this project's best.pt / last.pt
(model name, model_kwargs, nc and names stored beside the weights) or an official YOLOv5
yolov5*.pt (its model yaml and names read through the restricted unpickler of
checkpoint.py; nothing in the file is executed). The weights must fill the rebuilt model
exactly (strict load): a file of another architecture is an error naming both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (CheckpointError, _official_model, check_checkpoint_file, load_checkpoint_weights,
                         load_official_pickle)
from .registry import build_model
from .variants import YOLOV5_SIZES


@dataclass
class DetectorFile:
    """model: in eval mode on the CPU, fp32 (an exported file: its runtime's callable); names:
    class names by index; source: 'project', 'official', 'onnx' or 'torchscript'; model_name
    and model_kwargs: how it was built; meta: what else the file says (epoch, fitness; an
    exported file's input shape)."""

    model: Any
    names: list[str]
    source: str
    model_name: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)


def _names_list(names: Any, nc: int, path: Path) -> list[str]:
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if names is None:
        names = [str(i) for i in range(nc)]
    names = [str(n) for n in names]
    if len(names) != nc:
        raise CheckpointError(f"{path}: {len(names)} class names for nc={nc}")
    return names


def _official_spec(path: Path) -> tuple[str, dict[str, Any], list[str], dict[str, Any]]:
    ckpt = load_official_pickle(path)
    model = _official_model(ckpt, path)
    yaml = model.state.get("yaml")
    if not isinstance(yaml, dict):
        raise CheckpointError(f"{path}: the official model object holds no model yaml")
    size = next((s for s in YOLOV5_SIZES.values() if (s.depth_multiple, s.width_multiple)
                 == (yaml.get("depth_multiple"), yaml.get("width_multiple"))), None)
    head = yaml.get("head") or []
    if size is None or not head or head[-1][0] != [17, 20, 23]:
        raise CheckpointError(f"{path}: not a YOLOv5 n/s/m/l/x P5 model (depth_multiple="
                              f"{yaml.get('depth_multiple')}, width_multiple={yaml.get('width_multiple')}, "
                              f"outputs {head[-1][0] if head else None}); other official models are not supported")
    nc = int(yaml["nc"])
    names = _names_list(model.state.get("names"), nc, path)
    meta = {k: ckpt.get(k) for k in ("epoch", "date")} if isinstance(ckpt, dict) else {}
    return f"yolov5{size.name}", {"anchors": yaml["anchors"]}, names, meta


def _project_spec(path: Path, state: dict[str, Any]) -> tuple[str, dict[str, Any], list[str], dict[str, Any]]:
    nc = int(state["nc"])
    kwargs = dict(state.get("model_kwargs") or {})
    if "model_kwargs" not in state:  # a last.pt of older code: the run's summary.json has them
        kwargs = _run_model_kwargs(path)
    kwargs.pop("pretrained", None)  # the file's weights replace the trunk's starting weights
    meta = {k: state[k] for k in ("epoch", "fitness") if k in state}
    return str(state["model_name"]), kwargs, _names_list(state.get("names"), nc, path), meta


def _run_model_kwargs(path: Path) -> dict[str, Any]:
    import json

    summary = path.parent.parent / "summary.json"
    try:
        return dict(json.loads(summary.read_text())["identity"]["config"]["model_kwargs"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> DetectorFile:
    """The detector a weights file holds, ready for evaluation (see the module docstring).
    An exported file (.onnx, .torchscript; yolo_core.deploy) gives its runtime's callable
    (source 'onnx' or 'torchscript', meta: its input shape and whether it is dynamic),
    bound to `device`; a checkpoint's model is on the CPU (move it with .to)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} not found")
    if path.suffix in (".onnx", ".torchscript"):
        from ..deploy.runtime import load_exported  # lazy: onnxruntime only when asked for

        exported = load_exported(path, device)
        m = exported.meta
        return DetectorFile(exported, list(m["names"]), m["format"], m["model_name"], m.get("model_kwargs") or {},
                            {k: m[k] for k in ("imgsz", "batch_size", "dynamic", "half", "weights_sha256")})
    check_checkpoint_file(path, "give an intact weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an official pickle (or a damaged file) is not weights_only
        state = None
    if isinstance(state, dict) and "model_name" in state and "nc" in state:
        name, kwargs, names, meta = _project_spec(path, state)
        source = "project"
        ema = state.get("ema")  # last.pt: the EMA weights are the ones validated and saved as best.pt
        weights = ema["ema"] if isinstance(ema, dict) and isinstance(ema.get("ema"), dict) else state["model"]
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    else:
        try:
            name, kwargs, names, meta = _official_spec(path)
            weights = load_checkpoint_weights(path)  # 'ema' before 'model', fp32, this project's keys
        except Exception as e:  # noqa: BLE001 - a bare state dict, a damaged or hostile pickle, another format
            raise CheckpointError(f"{path}: neither a checkpoint of this project (model_name, nc and names beside "
                                  f"the weights: best.pt, last.pt) nor an official YOLOv5 checkpoint "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        source = "official"
    model = build_model(name, nc=len(names), **kwargs)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit {name} (nc={len(names)}, {kwargs}): "
                              f"{str(e).splitlines()[0]}") from None
    return DetectorFile(model.float().eval(), names, source, name, kwargs, meta)
