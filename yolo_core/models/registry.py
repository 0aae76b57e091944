"""Model registry and `build_model`: a name -> factory table, as timm keeps one."""
from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from .detector import YOLODetector

_FACTORIES: dict[str, Callable[..., YOLODetector]] = {}


def register_model(fn: Callable[..., YOLODetector]) -> Callable[..., YOLODetector]:
    """Register a factory `fn(nc, **kwargs) -> YOLODetector` under its function name."""
    _FACTORIES[fn.__name__] = fn
    return fn


def model_settings(name: str) -> set[str] | None:
    """The keyword arguments build_model(name, nc, **kwargs) takes (None: any), so that a
    misspelt or foreign setting (drop_path_rate for a CSPDarknet) fails before a run starts."""
    if name in _FACTORIES:
        fn = _FACTORIES[name]
    else:
        from .timm_backbone import build_timm_detector as fn  # lazy: imports timm
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - {"name", "nc"}


def list_models() -> list[str]:
    return sorted(_FACTORIES)


def build_model(name: str, nc: int = 80, **kwargs) -> YOLODetector:
    """Build a detector by name, e.g. build_model("yolov5s", nc=80).

    Registered names come first; any other name timm knows (optionally with a pretrained
    tag, "convnext_tiny.in12k_ft_in1k") builds a timm trunk with a YOLOv5 neck and head:
    build_model("convnext_tiny", nc, neck="yolov5s", pretrained=None, drop_path_rate=0.0).

    Every model is checked once at build time: its backbone must return P3/P4/P5 at
    strides 8/16/32 with the channels it declares (a wrong trunk fails here, not as a
    shape error deep inside the neck).
    """
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
        raise ValueError(f"nc (number of classes) must be an integer >= 1, got {nc!r}")
    if name in _FACTORIES:
        model = _FACTORIES[name](nc=nc, **kwargs)
    else:
        from .timm_backbone import build_timm_detector, is_timm_model  # lazy: timm is imported on demand

        if not is_timm_model(name):
            raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}, or any timm "
                             f"model with stride 8/16/32 features (e.g. convnext_tiny, resnet50, "
                             f"convnext_tiny.in12k_ft_in1k; see timm.list_models())")
        model = build_timm_detector(name, nc=nc, **kwargs)
    check_backbone_strides(model)
    return model


@torch.no_grad()
def check_backbone_strides(model: YOLODetector, probe: int = 256) -> None:
    """Run a probe image through the backbone in eval mode (no state changes)."""
    backbone = model.backbone
    was_training = backbone.training
    backbone.eval()
    try:
        p = next(backbone.parameters())
        feats = backbone(torch.zeros(1, 3, probe, probe, device=p.device, dtype=p.dtype))
    finally:
        backbone.train(was_training)
    got = [(f.shape[1], probe // f.shape[-1]) for f in feats]
    want = list(zip(backbone.out_channels, backbone.strides))
    if got != want:
        raise ValueError(f"backbone {type(backbone).__name__} returns (channels, stride) {got}, "
                         f"but declares {want}; a YOLO backbone must return P3/P4/P5 at strides 8/16/32")
