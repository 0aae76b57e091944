"""Export a weights file to ONNX or TorchScript, and check the file against PyTorch.

The exported graph is the eval-mode forward's decoded output (B, N, 5+nc): xywh in input
pixels, objectness, class scores, as the official export.py's; NMS stays outside the
graph, so val and detect run the same NMS on every backend. BatchNorm is not folded here:
ONNX Runtime folds it itself, and keeping the graph's weights equal to the checkpoint's
keeps val's numbers equal to the checkpoint's.

Every file is checked after writing: loaded back by its own runtime (onnxruntime,
torch.jit.load), run on a fixed seeded input, and compared with the PyTorch model on that
input; beyond `tolerance` (|a - b| <= tolerance * (1 + |b|)) the export fails and the file
is removed. The ONNX exporter is torch's TorchScript-based one (dynamo=False): it needs
only the `onnx` package and exports dynamic batch and image size through the head's shape
arithmetic.
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..models.detector_file import load_detector
from ..train.config import ConfigError
from ..train.identity import file_digest
from .runtime import META_KEY, ONNX_SUFFIX, TORCHSCRIPT_SUFFIX, load_exported

LOG = logging.getLogger("yolo_core.export")
EXPORT_FORMATS = {"onnx": ONNX_SUFFIX, "torchscript": TORCHSCRIPT_SUFFIX}


@dataclass
class ExportConfig:
    weights: str = "???"
    format: str = "onnx"             # onnx | torchscript
    imgsz: int = 640                 # the input's height and width (any multiple of 32 with dynamic)
    batch_size: int = 1
    dynamic: bool = False            # ONNX: dynamic batch, height and width
    half: bool = False               # fp16 weights and input (CUDA only, as export.py)
    opset: int = 17
    device: str = "cpu"
    out: str | None = None           # None: beside the weights, <stem>.onnx / <stem>.torchscript
    tolerance: float = 1e-4


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float              # on the check input, exported vs PyTorch
    max_rel_diff: float              # max |a - b| / (1 + |b|)
    seconds: float
    meta: dict[str, Any]


class _Decoded(torch.nn.Module):
    """The graph to export: the decoded predictions only (the raw maps are for the loss)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def check_config(cfg: ExportConfig) -> None:
    """Refuse bad settings (ConfigError) before anything is loaded or written."""
    problems = []
    if not Path(cfg.weights).is_file():
        problems.append(f"weights={cfg.weights!r}: no such file")
    if cfg.format not in EXPORT_FORMATS:
        problems.append(f"format={cfg.format!r} must be one of {', '.join(EXPORT_FORMATS)}")
    if cfg.imgsz < 32 or cfg.imgsz % 32:
        problems.append(f"imgsz={cfg.imgsz} must be a positive multiple of 32 (the max stride)")
    if cfg.batch_size < 1:
        problems.append(f"batch_size={cfg.batch_size} must be >= 1")
    if cfg.dynamic and cfg.format != "onnx":
        problems.append("dynamic=true is for format=onnx (a traced TorchScript keeps its input shape)")
    if cfg.half and not str(cfg.device).startswith("cuda"):
        problems.append("half=true needs device=cuda (fp16 on the CPU is slow and inexact, as export.py refuses)")
    if cfg.opset < 17:
        problems.append(f"opset={cfg.opset}: >= 17 (LayerNormalization of the ConvNeXt trunk)")
    if problems:
        raise ConfigError("invalid export config: " + "; ".join(problems))


def _check_input(cfg: ExportConfig, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (cfg.batch_size, 3, cfg.imgsz, cfg.imgsz), generator=g, dtype=torch.uint8)
    return (x.to(device).to(dtype)) / 255


def export(cfg: ExportConfig) -> ExportResult:
    """Write cfg.weights as cfg.format and check it (see the module docstring)."""
    check_config(cfg)
    t0 = time.perf_counter()
    device = torch.device(cfg.device)
    detector = load_detector(cfg.weights)
    dtype = torch.float16 if cfg.half else torch.float32
    graph = _Decoded(detector.model).to(device=device, dtype=dtype).eval()
    out = Path(cfg.out) if cfg.out else Path(cfg.weights).with_suffix(EXPORT_FORMATS[cfg.format])
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"names": detector.names, "model_name": detector.model_name, "model_kwargs": detector.model_kwargs,
            "source": detector.source, "imgsz": cfg.imgsz, "batch_size": cfg.batch_size, "dynamic": cfg.dynamic,
            "format": cfg.format, "half": cfg.half, "weights_sha256": file_digest(cfg.weights)["sha256"],
            "stride": 32}
    x = _check_input(cfg, device, dtype)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # the suffix picks the runtime of the check
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer's notes on the forward's input checks (shape asserts become constants,
            # which is what a fixed graph wants) and torch.jit's deprecation notice
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", r"`torch\.jit\.", FutureWarning)
            warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
            warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
            expected = graph(x).float()
            if cfg.format == "onnx":
                _write_onnx(graph, x, tmp, cfg, meta)
            else:
                traced = torch.jit.trace(graph, x, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={META_KEY: json.dumps(meta)})
        got = load_exported(tmp, device)(x)[0]
        if got.shape != expected.shape:
            raise RuntimeError(f"{out}: the exported model's output shape {tuple(got.shape)} is not PyTorch's "
                               f"{tuple(expected.shape)}")
        diff = (got - expected).abs()
        max_abs, max_rel = float(diff.max()), float((diff / (1 + expected.abs())).max())
        if not max_rel <= cfg.tolerance:
            raise RuntimeError(f"{out}: the exported model differs from PyTorch by {max_rel:.3g} (relative; "
                               f"{max_abs:.3g} absolute) on the check input, more than tolerance={cfg.tolerance:g}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    LOG.info("exported %s to %s (%.1f MB, %.1fs): max difference to PyTorch %.2g (%.2g relative)", cfg.weights,
             out, out.stat().st_size / 1e6, seconds, max_abs, max_rel)
    return ExportResult(out, max_abs, max_rel, seconds, meta)


def _write_onnx(graph: torch.nn.Module, x: torch.Tensor, path: Path, cfg: ExportConfig,
                meta: dict[str, Any]) -> None:
    try:
        import onnx
    except ImportError as e:
        raise ImportError("format=onnx needs the onnx and onnxruntime packages: pip install -e '.[export]'") from e
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
    torch.onnx.export(graph, (x,), str(path), dynamo=False, opset_version=cfg.opset, do_constant_folding=True,
                      input_names=["images"], output_names=["output0"], dynamic_axes=axes if cfg.dynamic else None)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(path))
