"""Models: blocks, backbones, the YOLOv5 neck and head, the detector and its registry."""
from . import yolov5  # noqa: F401  (registers yolov5n..x)
from .backbone import STRIDES, Backbone
from .detector import ChannelAdapter, YOLODetector
from .facts import count_params, gflops, model_facts
from .registry import build_model, list_models, register_model

__all__ = ["Backbone", "STRIDES", "ChannelAdapter", "YOLODetector", "build_model", "list_models",
           "register_model", "count_params", "gflops", "model_facts"]

from .checkpoint import UnsafeCheckpointError, load_checkpoint_weights
from .transfer import TransferReport, transfer_weights

__all__ += ["load_checkpoint_weights", "UnsafeCheckpointError", "transfer_weights", "TransferReport",
            "TimmBackbone", "build_timm_detector", "PretrainedWeightsUnavailable"]

_TIMM_EXPORTS = {"TimmBackbone", "build_timm_detector", "PretrainedWeightsUnavailable"}


def __getattr__(name: str):
    """timm-backed exports are imported on first use: `import yolo_core` stays free of timm."""
    if name in _TIMM_EXPORTS:
        from . import timm_backbone

        return getattr(timm_backbone, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
