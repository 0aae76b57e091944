"""Models: blocks, backbones, the YOLOv5 neck and head, the detector and its registry."""
from . import yolov5  # noqa: F401  (registers yolov5n..x)
from .backbone import STRIDES, Backbone
from .detector import ChannelAdapter, YOLODetector
from .facts import count_params, gflops, model_facts
from .registry import build_model, list_models, register_model

__all__ = ["Backbone", "STRIDES", "ChannelAdapter", "YOLODetector", "build_model", "list_models",
           "register_model", "count_params", "gflops", "model_facts"]
