"""An exported detector (ONNX Runtime or TorchScript) as the callable evaluate() takes:
uint8-scaled images (B, 3, H, W) float in [0, 1] -> (decoded (B, N, 5+nc), None).

The file carries what val needs beside the graph (class names, the model it came from,
its input shape, whether batch and size are dynamic) in its metadata, written by export.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ONNX_SUFFIX, TORCHSCRIPT_SUFFIX = ".onnx", ".torchscript"
META_KEY = "yolo_core"  # ONNX metadata_props key / TorchScript extra file name (JSON)


@dataclass
class ExportedDetector:
    """meta: names, model_name, model_kwargs, imgsz, batch_size, dynamic, format, half."""

    path: Path
    meta: dict[str, Any]
    _run: Any

    @property
    def dynamic(self) -> bool:
        return bool(self.meta.get("dynamic"))

    def __call__(self, imgs: torch.Tensor) -> tuple[torch.Tensor, None]:
        if not self.dynamic:
            want = (self.meta["batch_size"], 3, self.meta["imgsz"], self.meta["imgsz"])
            if tuple(imgs.shape) != want:
                raise ValueError(f"{self.path} was exported for input shape {want} (dynamic=false), got "
                                 f"{tuple(imgs.shape)}; export with dynamic=true for other shapes")
        return self._run(imgs), None


def _onnx_runner(path: Path, device: torch.device):
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"{path}: ONNX needs onnxruntime: pip install -e '.[export]'") from e
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), providers=providers)
    meta = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    name = session.get_inputs()[0].name
    half = "float16" in session.get_inputs()[0].type

    def run(imgs: torch.Tensor) -> torch.Tensor:
        x = imgs.detach().cpu().numpy().astype("float16" if half else "float32")
        return torch.from_numpy(session.run(None, {name: x})[0]).float().to(imgs.device)

    return run, meta


def _torchscript_runner(path: Path, device: torch.device):
    import warnings

    extra = {META_KEY: ""}
    with warnings.catch_warnings():  # torch.jit is deprecated; TorchScript files are what export.py users have
        warnings.filterwarnings("ignore", r"`torch\.jit\.", FutureWarning)
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    module.eval()

    def run(imgs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            p = next(module.parameters(), None)
            return module(imgs.to(p.dtype) if p is not None else imgs).float()

    return run, extra[META_KEY] or None


def load_exported(path: str | os.PathLike, device: str | torch.device = "cpu") -> ExportedDetector:
    """An ONNX (.onnx) or TorchScript (.torchscript) file written by export()."""
    path, device = Path(path), torch.device(device)
    if path.suffix == ONNX_SUFFIX:
        run, meta = _onnx_runner(path, device)
    elif path.suffix == TORCHSCRIPT_SUFFIX:
        run, meta = _torchscript_runner(path, device)
    else:
        raise ValueError(f"{path}: not an exported model (.onnx or .torchscript)")
    if not meta:
        raise ValueError(f"{path}: no {META_KEY!r} metadata (class names, input shape): export it with "
                         f"`make export` (yolo_core.deploy.export)")
    return ExportedDetector(path, json.loads(meta), run)
